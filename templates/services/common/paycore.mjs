// gRPC helpers shared by micro-order (client) and micro-pay (server).
// Reads ../paycore.proto (templates/services/paycore.proto, /app/paycore.proto in an image; override with
// PROTO_PATH); @grpc/grpc-js and @grpc/proto-loader resolve from node_modules above (the repository's, or /app's).

import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { FORWARDED_USER_AGENT, TRACE_HEADERS, envString } from './runtime.mjs';

export { grpc };

export const PAY_SERVICE_NAME = 'com.wudimanong.pay.client.PayService';

export function defaultProtoPath() {
  return envString('PROTO_PATH', fileURLToPath(new URL('../paycore.proto', import.meta.url)));
}

/** Loads paycore.proto and returns the generated PayService constructor. */
export function loadPayService(protoPath = defaultProtoPath()) {
  const definition = protoLoader.loadSync(protoPath, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
  });
  const pkg = grpc.loadPackageDefinition(definition);
  const PayService = pkg?.com?.wudimanong?.pay?.client?.PayService;
  if (typeof PayService !== 'function') {
    throw new Error(`${protoPath} does not define ${PAY_SERVICE_NAME}`);
  }
  return PayService;
}

/**
 * gRPC metadata carrying the trace headers of an incoming HTTP request.
 * `user-agent` is reserved by the gRPC transport, so it is sent as
 * `x-forwarded-user-agent`. Values gRPC cannot carry (non-ASCII) are skipped.
 */
export function metadataFromTraceHeaders(traceHeaders) {
  const md = new grpc.Metadata();
  for (const [name, value] of Object.entries(traceHeaders)) {
    const key = name === 'user-agent' ? FORWARDED_USER_AGENT : name;
    try {
      md.set(key, value);
    } catch {
      // illegal metadata value: drop it rather than fail the call
    }
  }
  return md;
}

/** Trace-related entries of received gRPC metadata (first value of each key). */
export function traceFromMetadata(md) {
  const out = {};
  for (const key of [...TRACE_HEADERS, FORWARDED_USER_AGENT]) {
    const values = md.get(key);
    if (values.length > 0) out[key] = String(values[0]);
  }
  return out;
}

/** All text metadata as a plain object (binary `-bin` values as base64). */
export function metadataToObject(md) {
  const out = {};
  for (const [key, values] of Object.entries(md.getMap())) {
    out[key] = Buffer.isBuffer(values) ? values.toString('base64') : String(values);
  }
  return out;
}
