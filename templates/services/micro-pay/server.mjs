// micro-pay: gRPC PayService.doPay on GRPC_PORT, answering status = 2 (PAY_STATUS),
// or failing every call with the gRPC status PAY_FAIL names (e.g. INTERNAL: the circuit-breaker demo's failing pod),
// plus HTTP on HTTP_PORT: /healthz, /ready and GET /debug/last-metadata
// (the trace metadata and request of the most recent doPay call).
// Runs in place (node templates/services/micro-pay/server.mjs) and in the image (/app/micro-pay/server.mjs).

import { performance } from 'node:perf_hooks';
import {
  createHttpService,
  createLifecycle,
  createLogger,
  envInt,
  envPort,
  envString,
  hostPort,
  installCrashHandlers,
  sendJson,
  servedBy,
  shutdownConfig,
  traceIdFrom,
  MAX_INT32,
} from '../common/runtime.mjs';
import { grpc, loadPayService, metadataToObject, traceFromMetadata } from '../common/paycore.mjs';

const SVC = 'micro-pay';

const logger = createLogger(SVC);
installCrashHandlers(logger);

let config;
let PayService;
try {
  config = {
    host: envString('HOST', '0.0.0.0'),
    grpcPort: envPort('GRPC_PORT', 18888),
    httpPort: envPort('HTTP_PORT', 9092),
    payStatus: envInt('PAY_STATUS', 2, { min: -MAX_INT32 - 1, max: MAX_INT32 }),
    payFail: envGrpcStatus('PAY_FAIL'),
    shutdown: shutdownConfig(),
  };
  PayService = loadPayService();
} catch (err) {
  logger.error('invalid configuration', { error: err.message });
  process.exit(1);
}

/** A gRPC status name (INTERNAL, UNAVAILABLE, …) other than OK, or undefined when unset. */
function envGrpcStatus(name) {
  const raw = envString(name, undefined);
  if (raw === undefined) return undefined;
  const code = grpc.status[raw];
  if (typeof code !== 'number' || code === grpc.status.OK) {
    throw new Error(`environment variable ${name} must name a gRPC error status (e.g. INTERNAL, UNAVAILABLE), got ${JSON.stringify(raw)}`);
  }
  return code;
}

const who = servedBy();
const lifecycle = createLifecycle({ logger, ...config.shutdown });

/** What the last doPay call received; served by GET /debug/last-metadata. */
let lastCall = null;

function doPay(call, callback) {
  const started = performance.now();
  const trace = traceFromMetadata(call.metadata);
  const traceId = traceIdFrom((key) => trace[key]);
  const request = { orderId: call.request.orderId, amount: call.request.amount };
  lastCall = {
    receivedAt: new Date().toISOString(),
    servedBy: who,
    method: call.getPath(),
    request,
    trace,
    metadata: metadataToObject(call.metadata),
  };

  const finish = (code, err, response) => {
    logger[code === grpc.status.OK ? 'info' : 'warn']('request', {
      method: 'grpc',
      path: call.getPath(),
      status: code,
      ms: Math.round((performance.now() - started) * 10) / 10,
      traceId,
      orderId: request.orderId,
      amount: request.amount,
      trace,
    });
    callback(err, response);
  };

  if (config.payFail !== undefined) {
    // Answered before any metadata, so the status goes out trailers-only (in the response headers): Envoy counts a
    // grpc-status as a 5xx for outlier detection only there (envoy source/common/router/router.cc onUpstreamHeaders).
    return finish(config.payFail, { code: config.payFail, details: `${who} fails every payment (PAY_FAIL=${grpc.status[config.payFail]})` });
  }

  const initial = new grpc.Metadata();
  initial.set('x-served-by', who);
  call.sendMetadata(initial);

  if (typeof request.orderId !== 'string' || request.orderId === '') {
    return finish(grpc.status.INVALID_ARGUMENT, {
      code: grpc.status.INVALID_ARGUMENT,
      details: 'orderId is required',
    });
  }
  return finish(grpc.status.OK, null, { status: config.payStatus });
}

const grpcServer = new grpc.Server();
grpcServer.addService(PayService.service, { doPay });

const http = createHttpService({
  logger,
  lifecycle,
  servedBy: who,
  async handle(req, res, ctx) {
    if (ctx.path === '/debug/last-metadata') {
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        return sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
      }
      if (!lastCall) return sendJson(res, 404, { error: 'not_found', message: 'no doPay call received yet' });
      return sendJson(res, 200, lastCall);
    }
    return sendJson(res, 404, { error: 'not_found', message: `no route for ${req.method} ${ctx.path}` });
  },
});

function bindGrpc() {
  return new Promise((resolve, reject) => {
    grpcServer.bindAsync(
      hostPort(config.host, config.grpcPort),
      grpc.ServerCredentials.createInsecure(),
      (err, port) => (err ? reject(err) : resolve(port)),
    );
  });
}

lifecycle.onShutdown('http', () => http.close(), () => http.force());
lifecycle.onShutdown(
  'grpc',
  () => new Promise((resolve, reject) => grpcServer.tryShutdown((err) => (err ? reject(err) : resolve()))),
  () => grpcServer.forceShutdown(),
);
lifecycle.installSignalHandlers();

try {
  const grpcPort = await bindGrpc();
  const httpPort = await http.listen(config.httpPort, config.host);
  lifecycle.markReady();
  logger.info('listening', { host: config.host, grpcPort, httpPort, servedBy: who, payStatus: config.payStatus, ...(config.payFail !== undefined ? { payFail: grpc.status[config.payFail] } : {}) });
} catch (err) {
  logger.error('cannot listen', {
    host: config.host,
    grpcPort: config.grpcPort,
    httpPort: config.httpPort,
    error: err.message,
  });
  process.exit(1);
}
