/**
 * One HTTP/1.1 GET straight over a socket (node:net, or node:tls for https), for a download's body: the socket reads
 * into one buffer that is reused (net's `onread`), and the body is handed on in 1 MiB blocks taken from a BlockPool
 * and given back by the consumer (`recycle`). node:http allocates a fresh 64 kB buffer for every read, and on a
 * virtual machine the page faults of that fresh memory cost more CPU than the hash (src/download/block-pool.ts).
 *
 * What it speaks: a request with `Connection: close` and `Accept-Encoding: identity`; a response body framed by
 * Content-Length, by chunked transfer coding, or by the end of the connection (RFC 9112 §6.3). Redirects are the
 * caller's (the response is returned as it is, its body unread).
 */
import type { IncomingHttpHeaders } from 'node:http';
import net from 'node:net';
import tls from 'node:tls';
import { BlockPool } from './block-pool.js';

export const BLOCK_SIZE = 1 << 20;
/** Blocks read ahead of the consumer before the socket is paused. */
const READ_AHEAD = 4;
/** A block the consumer waits for is handed on part-filled once no more bytes came for this long (slow networks). */
const PARTIAL_AFTER_MS = 20;
/** A response head larger than this is refused (real ones are a few kB). */
const MAX_HEAD = 64 << 10;

export interface RawResponse {
  statusCode: number;
  headers: IncomingHttpHeaders;
  body: AsyncIterable<Buffer>;
  /** The consumer is done with a block of the body: its memory is reused for the next ones. */
  recycle(block: Buffer): void;
  /** Closes the connection without reading the rest. */
  close(): void;
}

/** The response ended before its framing said it would (what node:http reports as "aborted"). */
function connectionReset(message: string): Error {
  return Object.assign(new Error(message), { code: 'ECONNRESET' });
}

export function rawGet(url: URL, o: { headers?: Record<string, string>; signal?: AbortSignal; idleTimeoutMs: number; onIdle: () => Error }): Promise<RawResponse> {
  const secure = url.protocol === 'https:';
  const port = Number(url.port) || (secure ? 443 : 80);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const pool = new BlockPool(BLOCK_SIZE);
  const readBuffer = Buffer.allocUnsafeSlow(256 << 10);

  return new Promise<RawResponse>((resolve, reject) => {
    let settled = false;
    let head: Buffer[] = [];
    let headBytes = 0;
    let response: RawResponse | undefined;
    // body state
    let framing: 'length' | 'chunked' | 'close' = 'close';
    let left = 0; // bytes of body (length) or of the current chunk (chunked) still to come
    let chunkState: 'size' | 'data' | 'data-end' | 'trailer' = 'size';
    let line = '';
    let block: Buffer | undefined;
    let fill = 0;
    const ready: Buffer[] = [];
    let finished = false;
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    /** Reading stopped by the read callback (net's onread: returning false stops reading; resume() restarts it). */
    let paused = false;
    const resume = () => {
      if (!paused || finished) return;
      paused = false;
      socket.resume();
    };

    let partialTimer: NodeJS.Timeout | undefined;
    const notify = () => {
      clearTimeout(partialTimer);
      const w = wake;
      wake = undefined;
      w?.();
    };
    const fail = (err: Error) => {
      if (finished || failure) return;
      pushBlock(); // every byte received is handed on: a resume starts right after it
      failure = err;
      if (!settled) {
        settled = true;
        reject(err);
      }
      notify();
    };
    const pushBlock = () => {
      if (!block || fill === 0) return;
      ready.push(fill === block.length ? block : block.subarray(0, fill));
      block = undefined;
      fill = 0;
    };
    const finish = () => {
      if (finished) return;
      pushBlock();
      finished = true;
      socket.destroy();
      notify();
    };
    const append = (src: Buffer, start: number, end: number) => {
      while (start < end) {
        block ??= pool.take();
        const n = Math.min(end - start, block.length - fill);
        src.copy(block, fill, start, start + n);
        fill += n;
        start += n;
        if (fill === block.length) pushBlock();
      }
    };
    /** Body bytes of the read buffer from `start` to `end`, through the framing. */
    const body = (buf: Buffer, start: number, end: number) => {
      if (framing === 'close') return append(buf, start, end);
      if (framing === 'length') {
        const n = Math.min(left, end - start);
        append(buf, start, start + n);
        left -= n;
        if (left === 0) finish();
        return;
      }
      let i = start;
      while (i < end && !finished) {
        if (chunkState === 'data') {
          const n = Math.min(left, end - i);
          append(buf, i, i + n);
          left -= n;
          i += n;
          if (left === 0) chunkState = 'data-end';
          continue;
        }
        const nl = buf.indexOf(10, i);
        const stop = nl < 0 || nl >= end ? end : nl;
        line += buf.toString('latin1', i, stop);
        i = stop;
        if (nl < 0 || nl >= end) {
          if (line.length > 4096) return fail(new Error('malformed chunked response: line too long'));
          break;
        }
        i++; // the LF
        const text = line.replace(/\r$/, '');
        line = '';
        if (chunkState === 'data-end') {
          if (text !== '') return fail(new Error('malformed chunked response: no CRLF after a chunk'));
          chunkState = 'size';
        } else if (chunkState === 'size') {
          const size = /^([0-9a-fA-F]{1,12})(?:[ \t]*;.*)?$/.exec(text);
          if (!size) return fail(new Error(`malformed chunked response: chunk size ${JSON.stringify(text.slice(0, 40))}`));
          left = Number.parseInt(size[1], 16);
          chunkState = left === 0 ? 'trailer' : 'data';
        } else if (text === '') {
          finish(); // the empty line after the trailer fields
        }
      }
    };
    const onHead = (buf: Buffer, start: number, end: number) => {
      head.push(Buffer.from(buf.subarray(start, end)));
      headBytes += end - start;
      const all = Buffer.concat(head, headBytes);
      const endOfHead = all.indexOf('\r\n\r\n');
      if (endOfHead < 0) {
        if (headBytes > MAX_HEAD) fail(new Error(`response head larger than ${MAX_HEAD} bytes`));
        else head = [all];
        return;
      }
      head = [];
      const [statusLine, ...fields] = all.toString('latin1', 0, endOfHead).split('\r\n');
      const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
      if (!status) return fail(new Error(`malformed HTTP response: ${JSON.stringify(statusLine.slice(0, 80))}`));
      const headers: Record<string, string> = {};
      for (const field of fields) {
        const colon = field.indexOf(':');
        if (colon <= 0) return fail(new Error(`malformed HTTP header: ${JSON.stringify(field.slice(0, 80))}`));
        const name = field.slice(0, colon).trim().toLowerCase();
        const value = field.slice(colon + 1).trim();
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      }
      const statusCode = Number(status[1]);
      if (/\bchunked\b/i.test(headers['transfer-encoding'] ?? '')) framing = 'chunked';
      else if (headers['content-length'] !== undefined) {
        if (!/^\d+$/.test(headers['content-length'])) return fail(new Error(`malformed Content-Length: ${headers['content-length']}`));
        framing = 'length';
        left = Number(headers['content-length']);
      }
      if (statusCode === 204 || statusCode === 304 || (framing === 'length' && left === 0)) finish();
      response = { statusCode, headers, body: iterate(), recycle: (b) => pool.give(b), close: () => finish() };
      settled = true;
      resolve(response);
      const rest = endOfHead + 4;
      if (rest < all.length && !finished) body(all, rest, all.length);
    };

    async function* iterate(): AsyncGenerator<Buffer> {
      try {
        for (;;) {
          const next = ready.shift();
          if (next) {
            if (ready.length < READ_AHEAD) resume();
            yield next;
            continue;
          }
          if (failure) throw failure;
          if (finished) return;
          resume();
          if (fill > 0) {
            partialTimer = setTimeout(() => {
              pushBlock();
              notify();
            }, PARTIAL_AFTER_MS);
          }
          await new Promise<void>((r) => (wake = r));
        }
      } finally {
        clearTimeout(partialTimer);
        // the consumer stopped early (an error, a refused archive): the connection goes
        if (!finished) socket.destroy();
      }
    }

    const options = {
      host,
      port,
      onread: {
        buffer: readBuffer,
        callback: (nread: number, buf: Uint8Array): boolean => {
          const b = buf as Buffer;
          if (!response) onHead(b, 0, nread);
          else if (!finished) body(b, 0, nread);
          if (ready.length) notify();
          // paused while the consumer is READ_AHEAD blocks behind; iterate() resumes
          paused = ready.length >= READ_AHEAD && !finished;
          return !paused;
        },
      },
    };
    const socket: net.Socket = secure
      ? tls.connect({ ...options, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'] })
      : net.connect(options);
    const onAbort = () => {
      fail(Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' }));
      socket.destroy();
    };
    if (o.signal?.aborted) onAbort();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    socket.setTimeout(o.idleTimeoutMs, () => {
      fail(o.onIdle());
      socket.destroy();
    });
    socket.once(secure ? 'secureConnect' : 'connect', () => {
      const fields = { Host: url.host, 'User-Agent': 'meshdemo', Accept: '*/*', 'Accept-Encoding': 'identity', Connection: 'close', ...o.headers };
      socket.write(`GET ${url.pathname}${url.search} HTTP/1.1\r\n${Object.entries(fields).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`);
    });
    socket.on('error', (err) => fail(err));
    socket.on('close', () => {
      o.signal?.removeEventListener('abort', onAbort);
      if (finished) return;
      if (!response) return fail(connectionReset('socket hang up'));
      if (framing === 'close') return finish();
      fail(connectionReset('aborted'));
    });
    socket.on('end', () => socket.destroySoon());
  });
}
