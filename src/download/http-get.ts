/**
 * One GET, as download.ts needs it: redirects followed, an idle timeout, abort. Without a proxy it uses
 * node:http(s) directly: undici costs a fresh process ~80 ms to import and about twice node:http's CPU per
 * byte of body (its WASM parser and body stream), and a download is a fresh process reading 45 MB. When
 * HTTPS_PROXY/HTTP_PROXY applies to the URL (NO_PROXY honoured), or a dispatcher is given, undici's
 * EnvHttpProxyAgent (or that dispatcher) does the request, with its redirect interceptor.
 */
import type { IncomingHttpHeaders, IncomingMessage } from 'node:http';
import type { Dispatcher } from 'undici';

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
  text(): Promise<string>;
}

export const MAX_REDIRECTS = 5;

/** An idle timeout (what undici reports as UND_ERR_HEADERS_TIMEOUT / UND_ERR_BODY_TIMEOUT). */
export class IdleTimeoutError extends Error {
  readonly code = 'IDLE_TIMEOUT';
}

export async function httpGet(url: string, o: GetOptions): Promise<GetResponse> {
  if (o.dispatcher || proxyFor(new URL(url), process.env)) return undiciGet(url, o);
  return nodeGet(new URL(url), o, MAX_REDIRECTS);
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

async function undiciGet(url: string, o: GetOptions): Promise<GetResponse> {
  const { EnvHttpProxyAgent, interceptors, request } = await import('undici');
  const dispatcher = (o.dispatcher ?? (sharedAgent ??= new EnvHttpProxyAgent())).compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTS }));
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
      text: () => res.body.text(),
    };
  } catch (err) {
    throw idle(err);
  }
}

function idle(err: unknown): unknown {
  const code = (err as { code?: unknown } | null)?.code;
  return code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT' ? new IdleTimeoutError((err as Error).message, { cause: err }) : err;
}

async function nodeGet(url: URL, o: GetOptions, redirectsLeft: number): Promise<GetResponse> {
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error(`unsupported URL scheme ${url.protocol}`);
  const lib = url.protocol === 'https:' ? await import('node:https') : await import('node:http');
  let timedOut: IdleTimeoutError | undefined;
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = lib.get(url, { headers: o.headers, signal: o.signal, agent: false }, resolve);
    // covers the wait for headers and every gap between body chunks
    req.setTimeout(o.idleTimeoutMs, () => req.destroy((timedOut = new IdleTimeoutError(`no data for ${o.idleTimeoutMs} ms`))));
    req.once('error', reject);
  });
  const status = res.statusCode ?? 0;
  const location = res.headers.location;
  if ([301, 302, 303, 307, 308].includes(status) && location) {
    res.resume();
    if (redirectsLeft === 0) throw new Error(`more than ${MAX_REDIRECTS} redirects`);
    return nodeGet(new URL(location, url), o, redirectsLeft - 1);
  }
  return {
    statusCode: status,
    headers: res.headers,
    body: (async function* () {
      try {
        yield* res as AsyncIterable<Buffer>;
      } catch (err) {
        // a timeout surfaces on the response as a plain 'aborted'
        throw timedOut ?? err;
      }
    })(),
    discard: async () => {
      res.resume();
      await new Promise<void>((resolve) => {
        res.once('end', resolve);
        res.once('close', resolve);
        res.once('error', () => resolve());
      });
    },
    text: async () => {
      const chunks: Buffer[] = [];
      for await (const c of res) chunks.push(c as Buffer);
      return Buffer.concat(chunks).toString('utf8');
    },
  };
}
