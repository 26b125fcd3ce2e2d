/**
 * Verified, resumable downloads. Nothing here logs: progress and retries are reported through callbacks.
 */
import { createHash, type Hash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { EnvHttpProxyAgent, interceptors, request, type Dispatcher } from 'undici';
import { DownloadError, InterruptedError, MeshdemoError, UsageError } from '../core/errors.js';

export interface DownloadProgress {
  received: number;
  total?: number;
  url: string;
}

export interface RetryInfo {
  attempt: number;
  reason: string;
  delayMs: number;
}

export interface DownloadOptions {
  url: string;
  /** Final path; partial data goes to `${dest}.part`. */
  dest: string;
  /** 64 hex digits, case-insensitive. */
  expectedSha256?: string;
  signal?: AbortSignal;
  /** Called at most ~4 times a second, plus once at the end. */
  onProgress?: (p: DownloadProgress) => void;
  onRetry?: (info: RetryInfo) => void;
  /** Retries after the first attempt; default 4. */
  retries?: number;
  /** First backoff delay, doubled on each retry; default 250. */
  retryBaseDelayMs?: number;
  /** No bytes (or no response headers) for this long counts as a connection error; default 30000. */
  idleTimeoutMs?: number;
  /** Default: a shared EnvHttpProxyAgent, so HTTPS_PROXY/HTTP_PROXY/NO_PROXY are honoured. */
  dispatcher?: Dispatcher;
}

export interface DownloadResult {
  path: string;
  sha256: string;
  bytes: number;
  resumed: boolean;
  fromCache: boolean;
}

export interface FetchTextOptions {
  signal?: AbortSignal;
  dispatcher?: Dispatcher;
  retries?: number;
  retryBaseDelayMs?: number;
  idleTimeoutMs?: number;
}

const SHA256 = /^[0-9a-f]{64}$/i;
const PROGRESS_INTERVAL_MS = 250;
const MAX_REDIRECTS = 5;
const NETWORK_HINT = 'check the network connection and proxy settings (HTTPS_PROXY, NO_PROXY), then run again';
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH',
]);

/** A failure worth retrying that is not a network error object: a 5xx, a short body. */
class TransientError extends Error {}

let sharedAgent: Dispatcher | undefined;
function withRedirects(d: Dispatcher | undefined): Dispatcher {
  return (d ?? (sharedAgent ??= new EnvHttpProxyAgent())).compose(interceptors.redirect({ maxRedirections: MAX_REDIRECTS }));
}

export async function downloadVerified(o: DownloadOptions): Promise<DownloadResult> {
  const expected = o.expectedSha256?.toLowerCase();
  if (expected !== undefined && !SHA256.test(expected)) {
    throw new UsageError(`invalid sha256 for ${o.url}: ${JSON.stringify(o.expectedSha256)}`);
  }
  const { url, dest, signal } = o;
  const part = `${dest}.part`;
  const idle = o.idleTimeoutMs ?? 30_000;
  const dispatcher = withRedirects(o.dispatcher);

  const cachedBytes = await sizeOf(dest);
  if (cachedBytes !== undefined) {
    const sha256 = await sha256File(dest);
    if (expected === undefined || sha256 === expected) {
      return { path: dest, sha256, bytes: cachedBytes, resumed: false, fromCache: true };
    }
  }
  await mkdir(dirname(dest), { recursive: true });

  let lastProgress = 0;
  const progress = (received: number, total: number | undefined, force = false) => {
    const now = Date.now();
    if (!o.onProgress || (!force && now - lastProgress < PROGRESS_INTERVAL_MS)) return;
    lastProgress = now;
    o.onProgress({ received, total, url });
  };

  const attempt = async () => {
    let offset = (await sizeOf(part)) ?? 0;
    for (;;) {
      const res = await request(url, {
        dispatcher,
        signal,
        headers: offset > 0 ? { range: `bytes=${offset}-` } : {},
        headersTimeout: idle,
        bodyTimeout: idle,
      });
      const status = res.statusCode;
      if (status === 416 && offset > 0) {
        // Our .part is not a prefix the server recognises (e.g. already complete or from another file).
        await discard(res.body);
        await rm(part, { force: true });
        offset = 0;
        continue;
      }
      if (status >= 500) {
        await discard(res.body);
        throw new TransientError(`HTTP ${status}`);
      }
      if (status !== 200 && status !== 206) {
        await discard(res.body);
        throw new DownloadError(`${url} answered HTTP ${status}`, {
          hint: status === 404 ? 'the release asset does not exist; check the version and platform' : NETWORK_HINT,
        });
      }
      const resumed = status === 206;
      if (resumed && rangeStart(res.headers['content-range']) !== offset) {
        await discard(res.body);
        await rm(part, { force: true });
        throw new TransientError(`server answered range ${String(res.headers['content-range'])} to a request from byte ${offset}`);
      }
      if (!resumed) offset = 0;

      const hash = createHash('sha256');
      if (resumed) await hashInto(hash, part);
      const length = Number(res.headers['content-length']);
      const total = Number.isFinite(length) ? offset + length : undefined;
      let received = offset;
      const meter = new Transform({
        transform(chunk: Buffer, _enc, cb) {
          hash.update(chunk);
          received += chunk.length;
          progress(received, total);
          cb(null, chunk);
        },
      });
      // A network error ends the body gracefully instead of tearing down the pipeline, so every byte
      // received so far reaches the .part file and the retry can resume from it.
      let bodyError: unknown;
      // a 1 MB buffer lets chunks that arrive during a write go out together (writev): far fewer write calls
      const file = createWriteStream(part, { flags: resumed ? 'a' : 'w', highWaterMark: 1 << 20 });
      await pipeline(untilError(res.body, (err) => (bodyError = err)), meter, file, { signal });
      if (bodyError !== undefined) throw bodyError;
      if (total !== undefined && received !== total) {
        throw new TransientError(`connection closed after ${received} of ${total} bytes`);
      }
      progress(received, total, true);
      return { sha256: hash.digest('hex'), bytes: received, resumed };
    }
  };

  const got = await withRetries(url, o, idle, attempt);
  if (expected !== undefined && got.sha256 !== expected) {
    await rm(part, { force: true });
    throw new DownloadError(`${url} served a file with sha256 ${got.sha256}, but ${expected} was expected`, {
      hint: 'the download is corrupt or was tampered with; run again, and report it if it persists',
    });
  }
  await rename(part, dest);
  return { path: dest, ...got, fromCache: false };
}

export async function fetchText(url: string, o: FetchTextOptions = {}): Promise<string> {
  const dispatcher = withRedirects(o.dispatcher);
  const idle = o.idleTimeoutMs ?? 30_000;
  return withRetries(url, o, idle, async () => {
    const res = await request(url, { dispatcher, signal: o.signal, headersTimeout: idle, bodyTimeout: idle });
    if (res.statusCode >= 500) {
      await discard(res.body);
      throw new TransientError(`HTTP ${res.statusCode}`);
    }
    if (res.statusCode !== 200) {
      await discard(res.body);
      throw new DownloadError(`${url} answered HTTP ${res.statusCode}`, { hint: NETWORK_HINT });
    }
    return res.body.text();
  });
}

/**
 * The digest from a sha256sum-style file: lines of `<64 hex> <name>` (one or two spaces, `*` before
 * the name in binary mode). With assetName, the line naming that file (compared by basename) wins;
 * a single line without a name is accepted for any asset.
 */
export function parseSha256File(text: string, assetName?: string): string {
  const lines = text.split(/\r?\n/).map((l) => l.trim()).filter((l) => l !== '');
  const entries = lines.map((line) => {
    const m = /^([0-9a-fA-F]{64})(?:[ \t]{1,2}\*?(\S.*))?$/.exec(line);
    if (!m) throw new DownloadError(`malformed sha256 file: ${JSON.stringify(line.slice(0, 100))}`);
    return { sha256: m[1].toLowerCase(), name: m[2] };
  });
  if (entries.length === 0) throw new DownloadError('malformed sha256 file: it is empty');
  if (assetName === undefined) {
    if (entries.length > 1) throw new DownloadError('sha256 file lists several files; name the asset to pick one');
    return entries[0].sha256;
  }
  if (entries.length === 1 && entries[0].name === undefined) return entries[0].sha256;
  const wanted = basename(assetName);
  const hit = entries.find((e) => e.name !== undefined && basename(e.name) === wanted);
  if (!hit) throw new DownloadError(`sha256 file has no entry for ${wanted}`);
  return hit.sha256;
}

export async function sha256File(path: string): Promise<string> {
  const hash = createHash('sha256');
  await hashInto(hash, path);
  return hash.digest('hex');
}

async function withRetries<T>(
  url: string,
  o: { signal?: AbortSignal; retries?: number; retryBaseDelayMs?: number; onRetry?: (i: RetryInfo) => void },
  idleTimeoutMs: number,
  fn: () => Promise<T>,
): Promise<T> {
  const retries = o.retries ?? 4;
  const base = o.retryBaseDelayMs ?? 250;
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (o.signal?.aborted) throw new InterruptedError(`download of ${url} interrupted`, { cause: err });
      if (err instanceof MeshdemoError) throw err;
      const reason = describe(err, idleTimeoutMs);
      if (!isTransient(err)) throw new DownloadError(`download of ${url} failed: ${reason}`, { cause: err });
      if (attempt >= retries) {
        throw new DownloadError(`download of ${url} failed after ${attempt + 1} attempts: ${reason}`, {
          hint: NETWORK_HINT,
          cause: err,
        });
      }
      const delayMs = base * 2 ** attempt;
      o.onRetry?.({ attempt: attempt + 1, reason, delayMs });
      try {
        await sleep(delayMs, undefined, { signal: o.signal });
      } catch (e) {
        throw new InterruptedError(`download of ${url} interrupted`, { cause: e });
      }
    }
  }
}

function isTransient(err: unknown): boolean {
  if (err instanceof TransientError) return true;
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && TRANSIENT_CODES.has(code)) return true;
  const cause = (err as { cause?: unknown } | null)?.cause;
  return cause !== undefined && cause !== err && isTransient(cause);
}

function describe(err: unknown, idleTimeoutMs: number): string {
  const code = (err as { code?: unknown } | null)?.code;
  if (code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_HEADERS_TIMEOUT') return `stalled: no data for ${idleTimeoutMs} ms`;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === 'string' ? `${code}: ${message}` : message;
}

async function* untilError(body: AsyncIterable<Buffer>, onError: (err: unknown) => void): AsyncGenerator<Buffer> {
  try {
    yield* body;
  } catch (err) {
    onError(err);
  }
}

async function sizeOf(path: string): Promise<number | undefined> {
  try {
    return (await stat(path)).size;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function hashInto(hash: Hash, path: string): Promise<void> {
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
}

async function discard(body: Dispatcher.ResponseData['body']): Promise<void> {
  await body.dump().catch(() => {});
}

function rangeStart(contentRange: string | string[] | undefined): number | undefined {
  const m = typeof contentRange === 'string' ? /^bytes (\d+)-/.exec(contentRange) : null;
  return m ? Number(m[1]) : undefined;
}
