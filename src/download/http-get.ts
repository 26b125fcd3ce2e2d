/**
 * One GET, as download.ts needs it: redirects followed, an idle timeout, abort. Without a proxy it speaks HTTP/1.1
 * over the socket itself (src/download/raw-get.ts says why): undici costs a fresh process ~80 ms to import and
 * about twice node:http's CPU per byte of body, and a download is a fresh process reading 45 MB. When
 * HTTPS_PROXY/HTTP_PROXY applies to the URL (NO_PROXY honoured), or a dispatcher is given, undici's
 * EnvHttpProxyAgent (or that dispatcher) does the request.
 */
import type { Dispatcher } from 'undici';
import { DownloadError } from '../core/errors.js';
import { rawGet, type Take } from './raw-get.js';

export interface GetOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** No response headers, or no body bytes, for this long: the request fails with code IDLE_TIMEOUT. */
  idleTimeoutMs: number;
  dispatcher?: Dispatcher;
}

export interface GetResponse {
  statusCode: number;
  headers: Record<string, string | string[] | undefined>;
  /**
   * Hands the body to take, piece by piece (each valid only during the call; a promise asks to wait), until it ends
   * or stop() says so. A network error ends the body gracefully: it is returned, not thrown, so that every byte
   * received before it was taken; what take throws is thrown.
   */
  receive(take: Take, stop?: () => boolean): Promise<unknown>;
  /** Drops the rest of the body (errors ignored). */
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
    const res = o.dispatcher || proxyFor(current, process.env) ? await undiciGet(current, o) : await directGet(current, o);
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
    return {
      statusCode: res.statusCode,
      headers: res.headers,
      receive: (take, stop) => receiveIterable(res.body as AsyncIterable<Buffer>, take, stop ?? (() => false)),
      discard: () => res.body.dump().then(() => undefined, () => undefined),
    };
  } catch (err) {
    throw idle(err);
  }
}

/**
 * An async iterable body through take, waiting when it returns a promise. (A small function of its own: V8
 * optimises the loop that runs for every chunk.)
 */
async function receiveIterable(body: AsyncIterable<Buffer>, take: Take, stop: () => boolean): Promise<unknown> {
  const chunks = body[Symbol.asyncIterator]();
  for (;;) {
    let next: IteratorResult<Buffer>;
    try {
      next = await chunks.next();
    } catch (err) {
      return idle(err);
    }
    if (next.done) return undefined;
    try {
      const pending = take(next.value);
      if (pending !== undefined) await pending;
    } catch (err) {
      await chunks.return?.();
      throw err;
    }
    if (stop()) {
      await chunks.return?.();
      return undefined;
    }
  }
}

function idle(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' ? new IdleTimeoutError((err as Error).message, { cause: err }) : err;
}

async function directGet(url: URL, o: GetOptions): Promise<GetResponse> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported URL scheme ${url.protocol}`);
  return rawGet(url, { headers: o.headers, signal: o.signal, idleTimeoutMs: o.idleTimeoutMs, onIdle: () => new IdleTimeoutError(`no data for ${o.idleTimeoutMs} ms`) });
}
