/**
 * Verified, resumable downloads. Nothing here logs: progress and retries are reported through callbacks.
 */
import { createHash, type Hash } from 'node:crypto';
import { closeSync, constants, createReadStream, fchmodSync, openSync, writeSync } from 'node:fs';
import { lstat, open, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Dispatcher } from 'undici';
import { httpGet, IdleTimeoutError, type GetResponse } from './http-get.js';
import { DownloadError, InterruptedError, MeshdemoError, UsageError } from '../core/errors.js';
import { extractArchiveSafely } from './extract.js';
import { TreeWriter, type ExtractLimits } from './tree-writer.js';
import { makeDirs, withFileLock } from './cache-files.js';

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
  /** The most bytes the file may have: a server that sends more (or announces more) is refused, and nothing is kept. */
  maxBytes: number;
  /** Another process (this pid) is downloading the same file: this one waits for it, then finds the file cached. */
  onLockWait?: (pid: number) => void;
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
  /**
   * Unpack the .tar.gz while it downloads (src/download/tree-writer.ts), into a private temporary
   * directory beside dir; the tree replaces dir only once the sha256 matches. dest keeps the archive.
   */
  extractTo?: { dir: string; limits?: ExtractLimits };
}

export interface DownloadResult {
  path: string;
  sha256: string;
  bytes: number;
  resumed: boolean;
  fromCache: boolean;
  /** With extractTo, on a download: the number of entries unpacked. */
  entries?: number;
}

export interface FetchTextOptions {
  signal?: AbortSignal;
  dispatcher?: Dispatcher;
  retries?: number;
  retryBaseDelayMs?: number;
  idleTimeoutMs?: number;
}

const SHA256 = /^[0-9a-f]{64}$/i;
/** A checksum file is one line per asset: anything larger is not one. */
export const MAX_TEXT_BYTES = 64 * 1024;
/** The .part file: never through a symbolic link someone put there. */
const PART_FLAGS = constants.O_WRONLY | constants.O_CREAT | constants.O_NOFOLLOW;
const PROGRESS_INTERVAL_MS = 250;
const NETWORK_HINT = 'check the network connection and proxy settings (HTTPS_PROXY, NO_PROXY), then run again';
const TRANSIENT_CODES = new Set([
  'ECONNRESET', 'ECONNREFUSED', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'ENETUNREACH', 'EHOSTUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CLOSED', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_RES_CONTENT_LENGTH_MISMATCH', 'IDLE_TIMEOUT',
]);

/** A failure worth retrying that is not a network error object: a 5xx, a short body. */
class TransientError extends Error {}


/**
 * One download of dest at a time: `${dest}.lock` is held from the cache check to the rename, so two runs into one
 * cache never share a .part (the second waits, then finds the file cached).
 */
export async function downloadVerified(o: DownloadOptions): Promise<DownloadResult> {
  const expected = o.expectedSha256?.toLowerCase();
  if (expected !== undefined && !SHA256.test(expected)) {
    throw new UsageError(`invalid sha256 for ${o.url}: ${JSON.stringify(o.expectedSha256)}`);
  }
  await makeDirs(dirname(o.dest));
  return withFileLock(`${o.dest}.lock`, { signal: o.signal, onWait: o.onLockWait }, () => downloadLocked(o, expected));
}

async function downloadLocked(o: DownloadOptions, expected: string | undefined): Promise<DownloadResult> {
  return (await fromCache(o, expected)) ?? new Transfer(o).run(expected);
}

/** The cached file when it is there and verifies (with extractTo: unpacked again in one local pass); else undefined. */
async function fromCache(o: DownloadOptions, expected: string | undefined): Promise<DownloadResult | undefined> {
  const { dest, extractTo, signal } = o;
  if ((await sizeOf(dest)) === undefined) return undefined;
  if (extractTo) {
    // one local pass: hash and unpack together; a stale or corrupt cached archive is downloaded again
    try {
      const { sha256 } = await extractArchiveSafely(dest, extractTo.dir, { signal, expectedSha256: expected, limits: extractTo.limits });
      return { path: dest, sha256, bytes: (await sizeOf(dest)) ?? 0, resumed: false, fromCache: true };
    } catch (err) {
      if (err instanceof InterruptedError) throw err;
      await rm(dest, { force: true });
      return undefined;
    }
  }
  const sha256 = await sha256File(dest);
  if (expected !== undefined && sha256 !== expected) return undefined;
  return { path: dest, sha256, bytes: (await sizeOf(dest)) ?? 0, resumed: false, fromCache: true };
}

/**
 * One download of o.url into o.dest. Every byte received goes, in order, to the hash, to the .part file (kept for a
 * resume by a later run) and, with extractTo, to the tree writer. A retry in this process continues all three from
 * where they stopped; a fresh start (server ignores Range, 416) restarts all three.
 */
class Transfer {
  private readonly part: string;
  private readonly idleMs: number;
  private hash = createHash('sha256');
  private fed = 0;
  private writer: TreeWriter | undefined;
  private lastProgress = 0;

  constructor(private readonly o: DownloadOptions) {
    this.part = `${o.dest}.part`;
    this.idleMs = o.idleTimeoutMs ?? 30_000;
  }

  async run(expected: string | undefined): Promise<DownloadResult> {
    const { url, dest, extractTo } = this.o;
    try {
      await this.restart();
      await this.replayPart();
      const got = await withRetries(url, this.o, this.idleMs, () => this.attempt());
      if (expected !== undefined && got.sha256 !== expected) {
        throw new DownloadError(`${url} served a file with sha256 ${got.sha256}, but ${expected} was expected`, {
          hint: 'the download is corrupt or was tampered with; run again, and report it if it persists',
        });
      }
      const entries = this.writer ? (await this.writer.finish()).entries : undefined;
      await rename(this.part, dest);
      if (this.writer && extractTo) await this.writer.commit(extractTo.dir, got.sha256);
      return { path: dest, ...got, fromCache: false, ...(entries === undefined ? {} : { entries }) };
    } catch (err) {
      await this.writer?.abort();
      // a refused or unverified archive leaves nothing; an interrupted or failed transfer keeps its .part for a resume
      if (err instanceof DownloadError && !(err.cause !== undefined && isTransient(err.cause))) await rm(this.part, { force: true });
      throw err;
    }
  }

  private async restart(): Promise<void> {
    const { extractTo, url } = this.o;
    await this.writer?.abort();
    this.writer = extractTo ? await TreeWriter.open(extractTo.dir, url, extractTo.limits) : undefined;
    this.hash = createHash('sha256');
    this.fed = 0;
  }

  /** What an earlier run left in the .part file, through the hash and the tree writer as if just received. */
  private async replayPart(): Promise<void> {
    const st = await lstat(this.part).catch(() => undefined);
    // a symbolic link (or anything else) put in its place is not a partial download of ours
    if (st !== undefined && !st.isFile()) await rm(this.part, { force: true });
    if (!st?.isFile() || st.size === 0) return;
    try {
      const handle = await open(this.part, constants.O_RDONLY | constants.O_NOFOLLOW);
      for await (const chunk of handle.createReadStream({ highWaterMark: 1 << 20, signal: this.o.signal })) {
        this.hash.update(chunk as Buffer);
        this.fed += (chunk as Buffer).length;
        await this.writer?.write(chunk as Buffer);
      }
    } catch (err) {
      if (this.o.signal?.aborted) throw err;
      // a .part that does not unpack is not worth resuming
      await rm(this.part, { force: true });
      await this.restart();
    }
  }

  private async attempt(): Promise<{ sha256: string; bytes: number; resumed: boolean }> {
    const { url, signal, dispatcher, maxBytes } = this.o;
    for (;;) {
      const res = await httpGet(url, { dispatcher, signal, headers: this.fed > 0 ? { range: `bytes=${this.fed}-` } : {}, idleTimeoutMs: this.idleMs });
      if (await this.startsOver(res)) continue;
      const resumed = res.statusCode === 206;
      if (!resumed && this.fed > 0) await this.restart();
      const length = Number(res.headers['content-length']);
      const total = Number.isFinite(length) ? this.fed + length : undefined;
      if (total !== undefined && total > maxBytes) {
        await res.discard();
        throw tooLarge(url, maxBytes, `the server announces ${total}`);
      }
      await this.receiveBody(res, total);
      // an interruption may look like the end of a body without Content-Length: it is not the whole file
      if (signal?.aborted) throw new InterruptedError(`download of ${url} interrupted`);
      if (total !== undefined && this.fed !== total) {
        throw new TransientError(`connection closed after ${this.fed} of ${total} bytes`);
      }
      this.progress(total, true);
      return { sha256: this.hash.digest('hex'), bytes: this.fed, resumed };
    }
  }

  /**
   * True when the answer says to start again from byte 0 at once (416: our .part is not a prefix the server
   * recognises, e.g. already complete or from another file); throws when it is no body to take.
   */
  private async startsOver(res: GetResponse): Promise<boolean> {
    const status = res.statusCode;
    const { url } = this.o;
    if (status === 200) return false;
    const continues = status === 206 && rangeStart(res.headers['content-range']) === this.fed;
    if (continues) return false;
    await res.discard();
    if (status === 416 && this.fed > 0) {
      await rm(this.part, { force: true });
      await this.restart();
      return true;
    }
    if (status >= 500) throw new TransientError(`HTTP ${status}`);
    if (status !== 206) {
      throw new DownloadError(`${url} answered HTTP ${status}`, {
        hint: status === 404 ? 'the release asset does not exist; check the version and platform' : NETWORK_HINT,
      });
    }
    const from = this.fed;
    await rm(this.part, { force: true });
    await this.restart();
    throw new TransientError(`server answered range ${String(res.headers['content-range'])} to a request from byte ${from}`);
  }

  /**
   * The body into the .part file. A network error ends the body gracefully instead of throwing, so every byte
   * received so far is in the .part file and the retry can resume from it.
   */
  private async receiveBody(res: GetResponse, total: number | undefined): Promise<void> {
    const { url, maxBytes } = this.o;
    const fd = openSync(this.part, PART_FLAGS | (this.fed > 0 ? constants.O_APPEND : constants.O_TRUNC), 0o644);
    let bodyError: unknown;
    try {
      fchmodSync(fd, 0o644);
      // each piece is hashed, written (a full disk stops the download at once) and unpacked before the next is read
      bodyError = await res.receive((piece) => {
        if (this.fed + piece.length > maxBytes) throw tooLarge(url, maxBytes, 'the server sent more');
        this.hash.update(piece);
        for (let at = 0; at < piece.length; ) at += writeSync(fd, piece, at);
        this.fed += piece.length;
        this.progress(total);
        return this.writer?.write(piece);
      });
    } finally {
      closeSync(fd);
    }
    if (bodyError !== undefined) throw bodyError;
  }

  /** At most every PROGRESS_INTERVAL_MS, and once at the end (force). */
  private progress(total: number | undefined, force = false): void {
    const now = Date.now();
    if (!this.o.onProgress || (!force && now - this.lastProgress < PROGRESS_INTERVAL_MS)) return;
    this.lastProgress = now;
    this.o.onProgress({ received: this.fed, total, url: this.o.url });
  }
}

/** A small text file (a checksum file): at most MAX_TEXT_BYTES, else refused without reading further. */
export async function fetchText(url: string, o: FetchTextOptions = {}): Promise<string> {
  const idle = o.idleTimeoutMs ?? 30_000;
  return withRetries(url, o, idle, async () => {
    const res = await httpGet(url, { dispatcher: o.dispatcher, signal: o.signal, idleTimeoutMs: idle });
    if (res.statusCode >= 500) {
      await res.discard();
      throw new TransientError(`HTTP ${res.statusCode}`);
    }
    if (res.statusCode !== 200) {
      await res.discard();
      throw new DownloadError(`${url} answered HTTP ${res.statusCode}`, { hint: NETWORK_HINT });
    }
    const length = Number(res.headers['content-length']);
    if (Number.isFinite(length) && length > MAX_TEXT_BYTES) {
      await res.discard();
      throw tooLarge(url, MAX_TEXT_BYTES, `the server announces ${length}`);
    }
    const chunks: Buffer[] = [];
    let received = 0;
    const bodyError = await res.receive((piece) => {
      received += piece.length;
      if (received > MAX_TEXT_BYTES) throw tooLarge(url, MAX_TEXT_BYTES, 'the server sent more');
      chunks.push(Buffer.from(piece));
      return undefined;
    });
    if (bodyError !== undefined) throw bodyError;
    return Buffer.concat(chunks).toString('utf8');
  });
}

function tooLarge(url: string, limit: number, detail: string): DownloadError {
  return new DownloadError(`${url} is larger than the limit of ${limit} bytes for this file (${detail})`, {
    hint: 'the server does not serve the expected file; check the mirror (--istio-mirror / --kind-mirror)',
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
  if (err instanceof IdleTimeoutError) return `stalled: no data for ${idleTimeoutMs} ms`;
  const message = err instanceof Error ? err.message : String(err);
  return typeof code === 'string' ? `${code}: ${message}` : message;
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


function rangeStart(contentRange: string | string[] | undefined): number | undefined {
  const m = typeof contentRange === 'string' ? /^bytes (\d+)-/.exec(contentRange) : null;
  return m ? Number(m[1]) : undefined;
}
