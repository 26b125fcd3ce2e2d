// micro-api: public HTTP entry point of the meshdemo.
//   POST /api/order/create {"businessId": string, "amount": int, "channel": int}
//   -> POST ${ORDER_URL} (micro-order) -> {"code":0,"message":"成功","data":{"orderId","status"}}
// Build context: /app/server.mjs, /app/common/*.mjs (no npm dependencies).

import {
  HttpError,
  createHttpService,
  createLifecycle,
  createLogger,
  envInt,
  envPort,
  envString,
  installCrashHandlers,
  parseOrderRequest,
  pickTraceHeaders,
  readBody,
  sendJson,
  servedBy,
  shutdownConfig,
} from './common/runtime.mjs';

const SVC = 'micro-api';
const CODE_OK = 0;
const CODE_BAD_REQUEST = 9998;
const CODE_DOWNSTREAM = 9999;

const logger = createLogger(SVC);
installCrashHandlers(logger);

let config;
try {
  config = {
    host: envString('HOST', '0.0.0.0'),
    port: envPort('PORT', 9090),
    orderUrl: new URL(envString('ORDER_URL', 'http://micro-order/order/create')).toString(),
    orderTimeoutMs: envInt('ORDER_TIMEOUT_MS', 3000, { min: 1 }),
    shutdown: shutdownConfig(),
  };
} catch (err) {
  logger.error('invalid configuration', { error: err.message });
  process.exit(1);
}

const who = servedBy();
const lifecycle = createLifecycle({ logger, ...config.shutdown });

/** The tutorial's ResponseResult wrapper. */
const result = (code, message, data = null) => ({ code, message, data });

function describeFetchError(err) {
  if (err?.name === 'TimeoutError') return `micro-order did not answer within ${config.orderTimeoutMs}ms`;
  if (err?.name === 'AbortError') return 'request aborted';
  const cause = err?.cause;
  if (cause?.code) return `micro-order unreachable: ${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  return `micro-order call failed: ${cause?.message ?? err?.message ?? String(err)}`;
}

async function createOrder(req, res, ctx) {
  let text;
  try {
    text = await readBody(req);
  } catch (err) {
    if (err instanceof HttpError) {
      return sendJson(res, err.status, result(CODE_BAD_REQUEST, `invalid field 'body': ${err.message}`), {
        connection: 'close',
      });
    }
    return; // client went away
  }

  const parsed = parseOrderRequest(text);
  if (parsed.error) {
    const { field, message } = parsed.error;
    return sendJson(res, 400, result(CODE_BAD_REQUEST, `invalid field '${field}': ${message}`));
  }

  // abort the downstream call on timeout or when our client disconnects
  const clientGone = new AbortController();
  res.on('close', () => {
    if (!res.writableFinished) clientGone.abort();
  });
  const signal = AbortSignal.any([AbortSignal.timeout(config.orderTimeoutMs), clientGone.signal]);

  let upstream;
  let upstreamText;
  try {
    upstream = await fetch(config.orderUrl, {
      method: 'POST',
      headers: {
        ...pickTraceHeaders(req.headers),
        'content-type': 'application/json',
        accept: 'application/json',
      },
      body: JSON.stringify(parsed.value),
      redirect: 'manual',
      signal,
    });
    upstreamText = await upstream.text();
  } catch (err) {
    const message = describeFetchError(err);
    logger.warn('micro-order call failed', { traceId: ctx.traceId, url: config.orderUrl, error: message });
    return sendJson(res, 500, result(CODE_DOWNSTREAM, message));
  }

  const downstreamHeaders = {};
  const orderServedBy = upstream.headers.get('x-served-by');
  const payServedBy = upstream.headers.get('x-pay-served-by');
  if (orderServedBy) downstreamHeaders['x-order-served-by'] = orderServedBy;
  if (payServedBy) downstreamHeaders['x-pay-served-by'] = payServedBy;

  let body = null;
  try {
    body = JSON.parse(upstreamText);
  } catch {
    // handled below
  }

  if (upstream.status < 200 || upstream.status > 299) {
    const detail = body && typeof body === 'object' && typeof body.message === 'string' ? `: ${body.message}` : '';
    const message = `micro-order answered HTTP ${upstream.status}${detail}`;
    logger.warn('micro-order call failed', { traceId: ctx.traceId, url: config.orderUrl, error: message });
    return sendJson(res, 500, result(CODE_DOWNSTREAM, message), downstreamHeaders);
  }

  if (!body || typeof body.orderId !== 'string' || body.orderId === '' || !Number.isInteger(body.status)) {
    const message = 'micro-order returned an invalid response';
    logger.warn('micro-order call failed', { traceId: ctx.traceId, url: config.orderUrl, error: message });
    return sendJson(res, 500, result(CODE_DOWNSTREAM, message), downstreamHeaders);
  }

  return sendJson(res, 200, result(CODE_OK, '成功', { orderId: body.orderId, status: body.status }), downstreamHeaders);
}

const http = createHttpService({
  logger,
  lifecycle,
  servedBy: who,
  async handle(req, res, ctx) {
    if (ctx.path !== '/api/order/create') {
      return sendJson(res, 404, result(404, `no route for ${req.method} ${ctx.path}`));
    }
    if (req.method !== 'POST') {
      return sendJson(res, 405, result(405, `method ${req.method} not allowed, use POST`), { allow: 'POST' });
    }
    return createOrder(req, res, ctx);
  },
});

lifecycle.onShutdown('http', () => http.close(), () => http.force());
lifecycle.installSignalHandlers();

try {
  const port = await http.listen(config.port, config.host);
  lifecycle.markReady();
  logger.info('listening', {
    host: config.host,
    port,
    servedBy: who,
    orderUrl: config.orderUrl,
    orderTimeoutMs: config.orderTimeoutMs,
  });
} catch (err) {
  logger.error('cannot listen', { host: config.host, port: config.port, error: err.message });
  process.exit(1);
}
