// Shared runtime for the meshdemo services: configuration, JSON logs, trace
// header propagation, request validation, an HTTP server with health probes,
// and graceful shutdown. Plain Node.js (>= 20), no dependencies.
//
// Layout, the same in templates/services/ and in an image's /app:
//   common/runtime.mjs, common/paycore.mjs, paycore.proto, <service>/server.mjs (imports ../common/…).

import http from 'node:http';
import os from 'node:os';
import { performance } from 'node:perf_hooks';

/**
 * Headers every hop forwards: the tutorial's list (Istio's "trace context propagation" headers: request id,
 * Zipkin B3, OpenTracing, Datadog, routing by end-user / user-agent) plus W3C trace context.
 */
export const TRACE_HEADERS = Object.freeze([
  'x-request-id',
  'x-b3-traceid',
  'x-b3-spanid',
  'x-b3-parentspanid',
  'x-b3-sampled',
  'x-b3-flags',
  'x-ot-span-context',
  'x-datadog-trace-id',
  'x-datadog-parent-id',
  'x-datadog-sampled',
  'traceparent',
  'tracestate',
  'end-user',
  'user-agent',
]);

/** The original services' GlobalCodeEnum codes carried in the ResponseResult wrapper. */
export const CODES = Object.freeze({
  OK: 0,
  /** unsupported HTTP method */
  METHOD_NOT_SUPPORTED: 9996,
  /** request parameters failed validation */
  BAD_REQUEST: 9998,
  /** system error: a call downstream failed */
  SYSTEM_ERROR: 9999,
});

/**
 * The tutorial's ResponseResult: `{"code":0,"message":"成功","data":{…}}`; errors carry no data:
 * `{"code":9998,"message":"…"}`.
 */
export function responseResult(code, message, data) {
  return data === undefined ? { code, message } : { code, message, data };
}

export const SUCCESS_MESSAGE = '成功';

/**
 * gRPC's HTTP/2 transport owns the `user-agent` header (grpc-js overwrites it
 * with its own), so the caller's user agent travels as this metadata key.
 */
export const FORWARDED_USER_AGENT = 'x-forwarded-user-agent';

export const MAX_INT32 = 2147483647;

// ---------------------------------------------------------------------------
// configuration

export function envString(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  return raw.trim();
}

export function envInt(name, fallback, { min = 0, max = Number.MAX_SAFE_INTEGER } = {}) {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw.trim());
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new Error(`environment variable ${name} must be an integer in [${min}, ${max}], got ${JSON.stringify(raw)}`);
  }
  return value;
}

export function envPort(name, fallback) {
  return envInt(name, fallback, { min: 0, max: 65535 });
}

/** `<POD_NAME or hostname>/<VERSION or v1>` */
export function servedBy() {
  return `${envString('POD_NAME', os.hostname())}/${envString('VERSION', 'v1')}`;
}

/** Shutdown timings shared by all services. */
export function shutdownConfig() {
  return {
    // SIGTERM only: keep serving (with /ready = 503) this long so the endpoint
    // is removed from the Service before we stop accepting connections.
    delayMs: envInt('SHUTDOWN_DELAY_MS', 1000, { max: 60_000 }),
    // after the delay: how long in-flight work may take before a forced exit.
    timeoutMs: envInt('SHUTDOWN_TIMEOUT_MS', 5000, { min: 1, max: 120_000 }),
  };
}

/** Formats host:port, bracketing IPv6 literals. */
export function hostPort(host, port) {
  return host.includes(':') && !host.startsWith('[') ? `[${host}]:${port}` : `${host}:${port}`;
}

// ---------------------------------------------------------------------------
// logging: one JSON object per line on stdout

const LEVELS = { debug: 10, info: 20, warn: 30, error: 40 };

export function createLogger(svc) {
  const min = LEVELS[String(process.env.LOG_LEVEL ?? 'info').toLowerCase()] ?? LEVELS.info;
  const write = (level, msg, fields) => {
    if (LEVELS[level] < min) return;
    const ts = new Date().toISOString();
    let line;
    try {
      line = JSON.stringify({ ts, level, svc, msg, ...fields });
    } catch {
      line = JSON.stringify({ ts, level, svc, msg });
    }
    process.stdout.write(line + '\n');
  };
  return {
    debug: (msg, fields) => write('debug', msg, fields),
    info: (msg, fields) => write('info', msg, fields),
    warn: (msg, fields) => write('warn', msg, fields),
    error: (msg, fields) => write('error', msg, fields),
  };
}

export function installCrashHandlers(logger) {
  process.on('uncaughtException', (err) => {
    logger.error('uncaught exception', { error: String(err?.stack ?? err) });
    process.exit(1);
  });
  process.on('unhandledRejection', (err) => {
    logger.error('unhandled rejection', { error: String(err?.stack ?? err) });
    process.exit(1);
  });
}

// ---------------------------------------------------------------------------
// trace propagation

/** Single string value of an incoming HTTP header, or undefined. */
export function headerValue(headers, name) {
  const v = headers[name];
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v.join(', ') : String(v);
}

/** The trace headers present on an incoming HTTP request. */
export function pickTraceHeaders(headers) {
  const out = {};
  for (const name of TRACE_HEADERS) {
    const v = headerValue(headers, name);
    if (v !== undefined && v !== '') out[name] = v;
  }
  return out;
}

/** Trace id for logs: B3 trace id, else W3C traceparent's trace id, else x-request-id. */
export function traceIdFrom(get) {
  const b3 = get('x-b3-traceid');
  if (b3) return b3;
  const tp = get('traceparent');
  if (tp) {
    const parts = tp.trim().split('-');
    if (parts.length >= 4 && /^[0-9a-f]{32}$/i.test(parts[1])) return parts[1].toLowerCase();
  }
  return get('x-request-id') || null;
}

// ---------------------------------------------------------------------------
// request bodies and validation

export class HttpError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

/** Reads the request body as UTF-8 text, rejecting with HttpError(413) past `limit` bytes. */
export function readBody(req, limit = 64 * 1024) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    let settled = false;
    const settle = (fn, value) => {
      if (settled) return;
      settled = true;
      fn(value);
    };
    req.on('data', (chunk) => {
      if (settled) return;
      size += chunk.length;
      if (size > limit) {
        settle(reject, new HttpError(413, `request body exceeds ${limit} bytes`));
        req.resume();
        return;
      }
      chunks.push(chunk);
    });
    req.on('end', () => settle(resolve, Buffer.concat(chunks).toString('utf8')));
    req.on('error', (err) => settle(reject, err));
    req.on('close', () => settle(reject, new Error('client closed the connection before the body was complete')));
  });
}

function checkInt32(obj, field, min) {
  if (!Object.hasOwn(obj, field) || obj[field] === null) return `${field} is required`;
  const v = obj[field];
  if (typeof v !== 'number' || !Number.isInteger(v)) return `${field} must be an integer`;
  if (v < min || v > MAX_INT32) return `${field} must be an integer between ${min} and ${MAX_INT32}`;
  return null;
}

/**
 * Parses and validates `{"businessId": string, "amount": int, "channel": int}`.
 * Returns `{ value }` or `{ error: { field, message } }`.
 */
export function parseOrderRequest(text) {
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    return { error: { field: 'body', message: 'body must be valid JSON' } };
  }
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    return { error: { field: 'body', message: 'body must be a JSON object' } };
  }
  if (!Object.hasOwn(body, 'businessId') || body.businessId === null) {
    return { error: { field: 'businessId', message: 'businessId is required' } };
  }
  if (typeof body.businessId !== 'string' || body.businessId.trim() === '') {
    return { error: { field: 'businessId', message: 'businessId must be a non-empty string' } };
  }
  if (body.businessId.length > 256) {
    return { error: { field: 'businessId', message: 'businessId must be at most 256 characters' } };
  }
  for (const field of ['amount', 'channel']) {
    const message = checkInt32(body, field, 0);
    if (message) return { error: { field, message } };
  }
  return { value: { businessId: body.businessId, amount: body.amount, channel: body.channel } };
}

// ---------------------------------------------------------------------------
// responses

export function sendJson(res, status, body, headers = {}) {
  if (res.headersSent || res.destroyed) return;
  const payload = JSON.stringify(body);
  res.writeHead(status, {
    ...headers,
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(payload),
  });
  res.end(payload);
}

// ---------------------------------------------------------------------------
// lifecycle: readiness + graceful shutdown

export function createLifecycle({ logger, delayMs, timeoutMs }) {
  let state = 'starting'; // starting -> ready -> draining
  const closers = [];

  async function shutdown(signal) {
    if (state === 'draining') {
      logger.warn('second signal during shutdown, exiting now', { signal });
      process.exit(1);
    }
    state = 'draining';
    const delay = signal === 'SIGTERM' ? delayMs : 0;
    logger.info('shutdown started', { signal, delayMs: delay, timeoutMs });
    const force = setTimeout(() => {
      logger.error('graceful shutdown timed out, forcing exit', { timeoutMs });
      for (const c of closers) {
        try {
          c.force();
        } catch {
          // exiting anyway
        }
      }
      process.exit(1);
    }, delay + timeoutMs);
    if (delay > 0) await new Promise((r) => setTimeout(r, delay));
    const results = await Promise.allSettled(closers.map((c) => c.close()));
    clearTimeout(force);
    results.forEach((r, i) => {
      if (r.status === 'rejected') logger.warn('close failed', { what: closers[i].name, error: String(r.reason) });
    });
    logger.info('shutdown complete');
    process.exit(0);
  }

  return {
    get draining() {
      return state === 'draining';
    },
    isReady: () => state === 'ready',
    markReady() {
      if (state === 'starting') state = 'ready';
    },
    /** Registers something to close on shutdown: close() drains, force() aborts. */
    onShutdown(name, close, force = () => {}) {
      closers.push({ name, close, force });
    },
    installSignalHandlers() {
      process.on('SIGTERM', () => void shutdown('SIGTERM'));
      process.on('SIGINT', () => void shutdown('SIGINT'));
    },
  };
}

// ---------------------------------------------------------------------------
// HTTP server with /healthz, /ready, request logging, x-served-by, draining

const PROBES = new Set(['/healthz', '/ready']);

/**
 * handle(req, res, ctx) serves everything except the probes;
 * ctx = { path, traceId, header(name) }.
 */
export function createHttpService({ logger, lifecycle, servedBy: who, handle }) {
  let inflight = 0;
  let closing = false;

  const server = http.createServer((req, res) => {
    const started = performance.now();
    inflight++;
    let path = '/';
    try {
      path = new URL(req.url ?? '/', 'http://localhost').pathname;
    } catch {
      path = String(req.url ?? '/');
    }
    const header = (name) => headerValue(req.headers, name);
    const traceId = traceIdFrom(header);

    res.setHeader('x-served-by', who);
    if (lifecycle.draining) res.setHeader('connection', 'close');

    res.on('close', () => {
      inflight--;
      const fields = {
        method: req.method,
        path,
        status: res.statusCode,
        ms: Math.round((performance.now() - started) * 10) / 10,
        traceId,
      };
      if (!res.writableFinished) fields.aborted = true;
      const level = PROBES.has(path) ? 'debug' : res.statusCode >= 500 ? 'error' : 'info';
      logger[level]('request', fields);
      // once a response is done during shutdown, its keep-alive socket is idle: drop it
      if (closing) setImmediate(() => server.closeIdleConnections());
    });

    const run = async () => {
      if (PROBES.has(path)) {
        if (req.method !== 'GET' && req.method !== 'HEAD') {
          return sendJson(res, 405, { error: 'method_not_allowed' }, { allow: 'GET, HEAD' });
        }
        if (path === '/healthz') return sendJson(res, 200, { status: 'ok', servedBy: who });
        const ready = lifecycle.isReady();
        const status = ready ? 'ready' : lifecycle.draining ? 'draining' : 'starting';
        return sendJson(res, ready ? 200 : 503, { status, servedBy: who });
      }
      return handle(req, res, { path, traceId, header });
    };
    run().catch((err) => {
      logger.error('handler failed', { path, traceId, error: String(err?.stack ?? err) });
      sendJson(res, 500, responseResult(CODES.SYSTEM_ERROR, 'internal error'));
    });
  });

  // Behind the Envoy sidecar connections are pooled: outlive its reuse window
  // so that Node does not close a socket Envoy is about to use.
  server.keepAliveTimeout = 65_000;
  server.headersTimeout = 66_000;

  return {
    server,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          resolve(server.address().port);
        });
      });
    },
    /** Stops accepting, lets in-flight requests finish, resolves when all sockets closed. */
    close() {
      closing = true;
      return new Promise((resolve) => {
        if (!server.listening) return resolve();
        server.close(() => resolve());
        server.closeIdleConnections();
        if (inflight === 0) setImmediate(() => server.closeAllConnections());
      });
    },
    force() {
      server.closeAllConnections();
    },
  };
}
