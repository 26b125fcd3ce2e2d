// micro-api: public HTTP entry point of the meshdemo.
//   POST /api/order/create {"businessId": string, "amount": int, "channel": int}
//   -> POST ${ORDER_URL} (micro-order) -> {"code":0,"message":"成功","data":{"orderId","status"}}
// micro-order's ResponseResult is checked: code 0 passes its data through, any other code reaches the client
// with micro-order's code and message. The request's x-b3-traceid comes back as a response header.
// Runs in place (node templates/services/micro-api/server.mjs) and in the image (/app/micro-api/server.mjs).

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
  headerValue,
  installCrashHandlers,
  parseOrderRequest,
  pickTraceHeaders,
  readBody,
  responseResult,
  sendJson,
  servedBy,
  shutdownConfig,
} from '../common/runtime.mjs';

const SVC = 'micro-api';

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

function describeFetchError(err) {
  if (err?.name === 'TimeoutError') return `micro-order did not answer within ${config.orderTimeoutMs}ms`;
  if (err?.name === 'AbortError') return 'request aborted';
  const cause = err?.cause;
  if (cause?.code) return `micro-order unreachable: ${cause.code}${cause.message ? ` (${cause.message})` : ''}`;
  return `micro-order call failed: ${cause?.message ?? err?.message ?? String(err)}`;
}

const isResult = (body) => body !== null && typeof body === 'object' && Number.isInteger(body.code) && typeof body.message === 'string';
const isOrder = (data) => data !== null && typeof data === 'object' && typeof data.orderId === 'string' && data.orderId !== '' && Number.isInteger(data.status);

async function createOrder(req, res, ctx) {
  let text;
  try {
    text = await readBody(req);
  } catch (err) {
    if (err instanceof HttpError) {
      return sendJson(res, err.status, responseResult(CODES.BAD_REQUEST, `invalid field 'body': ${err.message}`), {
        connection: 'close',
      });
    }
    return; // client went away
  }

  const parsed = parseOrderRequest(text);
  if (parsed.error) {
    const { field, message } = parsed.error;
    return sendJson(res, 400, responseResult(CODES.BAD_REQUEST, `invalid field '${field}': ${message}`));
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
    return sendJson(res, 500, responseResult(CODES.SYSTEM_ERROR, message));
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

  if (isResult(body) && body.code !== CODES.OK) {
    // micro-order's own error (bad input, micro-pay failed): the client gets its code and message
    logger.warn('micro-order answered an error', { traceId: ctx.traceId, status: upstream.status, code: body.code, error: body.message });
    const status = upstream.status >= 400 ? upstream.status : 500;
    return sendJson(res, status, responseResult(body.code, body.message), downstreamHeaders);
  }
  if (upstream.status < 200 || upstream.status > 299 || !isResult(body) || !isOrder(body.data)) {
    const detail = body && typeof body === 'object' && typeof body.message === 'string' ? `: ${body.message}` : '';
    const message = upstream.status < 200 || upstream.status > 299
      ? `micro-order answered HTTP ${upstream.status}${detail}`
      : 'micro-order returned an invalid response';
    logger.warn('micro-order call failed', { traceId: ctx.traceId, url: config.orderUrl, error: message });
    return sendJson(res, 500, responseResult(CODES.SYSTEM_ERROR, message), downstreamHeaders);
  }

  const data = { orderId: body.data.orderId, status: body.data.status };
  return sendJson(res, 200, responseResult(CODES.OK, SUCCESS_MESSAGE, data), downstreamHeaders);
}

const http = createHttpService({
  logger,
  lifecycle,
  servedBy: who,
  async handle(req, res, ctx) {
    // the trace this request belongs to (set by the sidecar, or the caller), for links to Jaeger
    const traceId = headerValue(req.headers, 'x-b3-traceid');
    if (traceId) res.setHeader('x-b3-traceid', traceId);
    if (ctx.path !== '/api/order/create') {
      return sendJson(res, 404, responseResult(404, `no route for ${req.method} ${ctx.path}`));
    }
    if (req.method !== 'POST') {
      return sendJson(res, 405, responseResult(CODES.METHOD_NOT_SUPPORTED, `unsupported HTTP method ${req.method}, use POST`), { allow: 'POST' });
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
