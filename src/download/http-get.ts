/**
 * One GET, as download.ts needs it: redirects followed, an idle timeout, abort. Without a proxy it uses
 * node:http(s) directly: undici costs a fresh process ~80 ms to import and about twice node:http's CPU per
 * byte of body (its WASM parser and body stream), and a download is a fresh process reading 45 MB. When
 * HTTPS_PROXY/HTTP_PROXY applies to the URL (NO_PROXY honoured), or a dispatcher is given, undici's
 * EnvHttpProxyAgent (or that dispatcher) does the request, with its redirect interceptor.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Dispatcher } from 'undici';
import { DownloadError } from '../core/errors.js';

export interface GetOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** No response headers, or no body bytes, for this long: the request fails with code IDLE_TIMEOUT. */
  idleTimeoutMs: number;
  dispatcher?: Dispatcher;
}

export interface GetResponse {
  statusCode: number;
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>;
  body: AsyncIterable<Buffer>;
  /** Reads and drops the rest of the body (errors ignored). */
  discard(): Promise<void>;
}

export const MAX_REDIRECTS = 5;

/** An idle timeout (what undici reports as UND_ERR_HEADERS_TIMEOUT / UND_ERR_BODY_TIMEOUT). */
export class IdleTimeoutError extends Error {
  readonly code = 'IDLE_TIMEOUT';
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);

/** Follows redirects itself (both ways), so that none leads from https to plain http. */
export async function httpGet(url: string, o: GetOptions): Promise<GetResponse> {
  let current = new URL(url);
  for (let hops = 0; ; hops++) {
    const res = o.dispatcher || proxyFor(current, process.env) ? await undiciGet(current, o) : await nodeGet(current, o);
    const location = res.headers.location;
    if (!REDIRECTS.has(res.statusCode) || typeof location !== 'string' || location === '') return res;
    await res.discard();
    if (hops === MAX_REDIRECTS) throw new Error(`more than ${MAX_REDIRECTS} redirects`);
    const next = new URL(location, current);
    if (current.protocol === 'https:' && next.protocol !== 'https:') {
      throw new DownloadError(`refusing a redirect from https to ${next.protocol}//${next.host}${next.pathname}: the download would no longer be protected by TLS`, {
        hint: 'use a mirror that serves https throughout (--istio-mirror / --kind-mirror)',
      });
    }
    current = next;
  }
}

/** The proxy URL that applies to `url` by the usual environment variables, or undefined (curl's rules). */
export function proxyFor(url: URL, env: NodeJS.ProcessEnv): string | undefined {
  const proxy = url.protocol === 'https:' ? (env.https_proxy ?? env.HTTPS_PROXY) : (env.http_proxy ?? env.HTTP_PROXY);
  if (!proxy) return undefined;
  const noProxy = (env.no_proxy ?? env.NO_PROXY ?? '').split(/[\s,]+/).filter(Boolean);
  const host = url.hostname.replace(/^\[|\]$/g, '').toLowerCase();
  const port = url.port || (url.protocol === 'https:' ? '443' : '80');
  for (const entry of noProxy) {
    if (entry === '*') return undefined;
    const [name, entryPort] = entry.toLowerCase().replace(/^\[|\]$/g, '').split(/:(?=\d+$)/);
    if (entryPort && entryPort !== port) continue;
    const bare = name.replace(/^\*?\./, '');
    if (host === bare || host.endsWith(`.${bare}`)) return undefined;
  }
  return proxy;
}

let sharedAgent: Dispatcher | undefined;

async function undiciGet(url: URL, o: GetOptions): Promise<GetResponse> {
  const { EnvHttpProxyAgent, request } = await import('undici');
  const dispatcher = o.dispatcher ?? (sharedAgent ??= new EnvHttpProxyAgent());
  try {
    const res = await request(url, { dispatcher, signal: o.signal, headers: o.headers, headersTimeout: o.idleTimeoutMs, bodyTimeout: o.idleTimeoutMs });
    const body = (async function* () {
      try {
        yield* res.body as AsyncIterable<Buffer>;
      } catch (err) {
        throw idle(err);
      }
    })();
    return {
      statusCode: res.statusCode,
      headers: res.headers,
      body,
      discard: () => res.body.dump().then(() => undefined, () => undefined),
    };
  } catch (err) {
    throw idle(err);
  }
}

function idle(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' ? new IdleTimeoutError((err as Error).message, { cause: err }) : err;
}

async function nodeGet(url: URL, o: GetOptions): Promise<GetResponse> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported URL scheme ${url.protocol}`);
  const lib = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  let timedOut: IdleTimeoutError | undefined;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = lib.get(url, { headers: o.headers, signal: o.signal, agent: false }, resolve);
    // covers the wait for headers and every gap between body chunks
    req.setTimeout(o.idleTimeoutMs, () => req.destroy((timedOut = new IdleTimeoutError(`no data for ${o.idleTimeoutMs} ms`))));
    req.once('error', reject);
  });
  return {
    statusCode: res.statusCode ?? 0,
    headers: res.headers,
    body: flowingBody(res, (err) => {
      // a timeout surfaces on the response as a plain 'aborted'
      if (err !== undefined) return timedOut ?? err;
      // a body without Content-Length ends when the connection does: only a clean end is the whole body
      if (!res.complete) return timedOut ?? Object.assign(new Error('the connection closed before the end of the body'), { code: 'ECONNRESET' });
      return undefined;
    }),
    discard: async () => {
      res.resume();
      await new Promise<void>((resolve) => {
        res.once('end', resolve);
        res.once('close', resolve);
        res.once('error', () => resolve());
      });
    },
  };
}

/** Body bytes received and not yet taken, above which the socket is paused (resumed below a quarter of it). */
const BODY_QUEUE_BYTES = 1 << 20;

/**
 * The response body as each socket read arrives, in flowing mode. (The stream's own async iterator reads in paused
 * mode: a read() per chunk through the stream's buffer machinery, which for a 45 MB body cost more CPU than the rest
 * of the JavaScript on the way, most of it V8 optimising that machinery.) failure() says, at the end, whether the
 * body ended in error (given the stream's error, if any), and which.
 */
function flowingBody(res: IncomingMessage, failure: (err: unknown) => unknown): AsyncIterable<Buffer> {
  const queue: Buffer[] = [];
  let head = 0;
  let queued = 0;
  let ended = false;
  let error: unknown;
  let wake: (() => void) | undefined;
  const notify = () => {
    const w = wake;
    wake = undefined;
    w?.();
  };
  const end = () => {
    ended = true;
    notify();
  };
  res.once('end', end);
  res.once('close', end);
  res.once('error', (err) => {
    error ??= err;
    end();
  });
  const onData = (chunk: Buffer) => {
    queue.push(chunk);
    queued += chunk.length;
    if (queued >= BODY_QUEUE_BYTES) res.pause();
    notify();
  };
  const next = async (): Promise<IteratorResult<Buffer>> => {
    while (head === queue.length && !ended) await new Promise<void>((resolve) => (wake = resolve));
    if (head < queue.length) {
      const chunk = queue[head++];
      if (head === queue.length) queue.length = head = 0;
      queued -= chunk.length;
      if (queued < BODY_QUEUE_BYTES / 4 && res.isPaused()) res.resume();
      return { value: chunk, done: false };
    }
    const err = failure(error);
    if (err !== undefined) throw err;
    return { value: undefined, done: true };
  };
  return {
    [Symbol.asyncIterator]: () => {
      // flowing from the first read on, not before: discard() may be called instead
      res.on('data', onData);
      return {
        next,
        return: async () => {
          res.destroy();
          return { value: undefined, done: true };
        },
      };
    },
  };
}
