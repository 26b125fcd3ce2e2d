// micro-order: creates an order and pays it through micro-pay over gRPC.
//   POST /order/create {"businessId": string, "amount": int, "channel": int}
//   -> PayService.doPay({orderId, amount}) at ${GRPC_SERVER_HOST}:${GRPC_SERVER_PORT}
//   -> {"code":0,"message":"成功","data":{"orderId": string, "status": int}}   (the tutorial's ResponseResult)
//   errors: {"code":9998|9999|9996,"message": string}
// Runs in place (node templates/services/micro-order/server.mjs) and in the image (/app/micro-order/server.mjs):
// both have ../common/*.mjs and ../paycore.proto beside it.

import { randomInt } from 'node:crypto';
import {
  CODES,
  HttpError,
  SUCCESS_MESSAGE,
  createHttpService,
  createLifecycle,
  createLogger,
  envInt,
  envPort,
  envString,
  hostPort,
  installCrashHandlers,
  parseOrderRequest,
  pickTraceHeaders,
  readBody,
  responseResult,
  sendJson,
  servedBy,
  shutdownConfig,
} from '../common/runtime.mjs';
import { grpc, loadPayService, metadataFromTraceHeaders } from '../common/paycore.mjs';

const SVC = 'micro-order';

const logger = createLogger(SVC);
installCrashHandlers(logger);

let config;
let PayService;
try {
  config = {
    host: envString('HOST', '0.0.0.0'),
    port: envPort('PORT', 9091),
    payTarget: hostPort(envString('GRPC_SERVER_HOST', 'micro-pay'), envPort('GRPC_SERVER_PORT', 18888)),
    deadlineMs: envInt('GRPC_DEADLINE_MS', 2000, { min: 1 }),
    shutdown: shutdownConfig(),
  };
  PayService = loadPayService();
} catch (err) {
  logger.error('invalid configuration', { error: err.message });
  process.exit(1);
}

const who = servedBy();
const lifecycle = createLifecycle({ logger, ...config.shutdown });
// plaintext gRPC: in the mesh the Envoy sidecars add mTLS
const payClient = new PayService(config.payTarget, grpc.credentials.createInsecure());

/** Time-based order id: yyyyMMddHHmmssSSS (UTC) + 6 random digits. */
function newOrderId() {
  const d = new Date();
  const p = (n, w = 2) => String(n).padStart(w, '0');
  const stamp =
    `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `${p(d.getUTCHours())}${p(d.getUTCMinutes())}${p(d.getUTCSeconds())}${p(d.getUTCMilliseconds(), 3)}`;
  return stamp + p(randomInt(0, 1_000_000), 6);
}

/** Unary doPay; resolves { response, payServedBy }, rejects with the gRPC error (+ payServedBy). */
function doPay(request, metadata) {
  return new Promise((resolve, reject) => {
    let payServedBy = null;
    const call = payClient.doPay(request, metadata, { deadline: Date.now() + config.deadlineMs }, (err, response) => {
      if (err) {
        err.payServedBy = payServedBy;
        reject(err);
      } else {
        resolve({ response, payServedBy });
      }
    });
    call.on('metadata', (md) => {
      const v = md.get('x-served-by');
      if (v.length > 0) payServedBy = String(v[0]);
    });
  });
}

async function createOrder(req, res, ctx) {
  let text;
  try {
    text = await readBody(req);
  } catch (err) {
    if (err instanceof HttpError) {
      return sendJson(res, err.status, responseResult(CODES.BAD_REQUEST, `invalid field 'body': ${err.message}`), { connection: 'close' });
    }
    return;
  }
  const parsed = parseOrderRequest(text);
  if (parsed.error) {
    const { field, message } = parsed.error;
    return sendJson(res, 400, responseResult(CODES.BAD_REQUEST, `invalid field '${field}': ${message}`));
  }

  const orderId = newOrderId();
  const traceHeaders = pickTraceHeaders(req.headers);
  try {
    const { response, payServedBy } = await doPay(
      { orderId, amount: parsed.value.amount },
      metadataFromTraceHeaders(traceHeaders),
    );
    const headers = payServedBy ? { 'x-pay-served-by': payServedBy } : {};
    logger.info('order paid', {
      traceId: ctx.traceId,
      orderId,
      businessId: parsed.value.businessId,
      amount: parsed.value.amount,
      channel: parsed.value.channel,
      status: response.status,
      payServedBy,
    });
    return sendJson(res, 200, responseResult(CODES.OK, SUCCESS_MESSAGE, { orderId, status: response.status }), headers);
  } catch (err) {
    const grpcStatus = grpc.status[err.code] ?? 'UNKNOWN';
    const message = `micro-pay doPay failed: ${grpcStatus}: ${String(err.details ?? err.message).trim()}`;
    logger.warn('pay call failed', { traceId: ctx.traceId, orderId, target: config.payTarget, grpcCode: err.code ?? null, error: message });
    const headers = err.payServedBy ? { 'x-pay-served-by': err.payServedBy } : {};
    return sendJson(res, 500, responseResult(CODES.SYSTEM_ERROR, message), headers);
  }
}

const http = createHttpService({
  logger,
  lifecycle,
  servedBy: who,
  async handle(req, res, ctx) {
    if (ctx.path !== '/order/create') {
      return sendJson(res, 404, responseResult(404, `no route for ${req.method} ${ctx.path}`));
    }
    if (req.method !== 'POST') {
      return sendJson(res, 405, responseResult(CODES.METHOD_NOT_SUPPORTED, `unsupported HTTP method ${req.method}, use POST`), { allow: 'POST' });
    }
    return createOrder(req, res, ctx);
  },
});

lifecycle.onShutdown(
  'http+grpc-client',
  async () => {
    await http.close();
    payClient.close();
  },
  () => http.force(),
);
lifecycle.installSignalHandlers();

try {
  const port = await http.listen(config.port, config.host);
  lifecycle.markReady();
  logger.info('listening', {
    host: config.host,
    port,
    servedBy: who,
    payTarget: config.payTarget,
    grpcDeadlineMs: config.deadlineMs,
  });
} catch (err) {
  logger.error('cannot listen', { host: config.host, port: config.port, error: err.message });
  process.exit(1);
}
