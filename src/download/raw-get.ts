/**
 * One HTTP/1.1 GET straight over a socket (node:net, or node:tls for https) for a download without a proxy. The
 * socket reads into one buffer that is reused (net's `onread`), and the body is handed to the consumer as views of
 * it. node:http allocates a fresh 64 kB buffer for every read and copies each body chunk into another: for a 45 MB
 * release that was ~200 ms of CPU on a 2-core VM, most of it page faults on fresh memory, four times what reading,
 * hashing and writing the bytes cost.
 *
 * What it speaks: a request with `Connection: close` and `Accept-Encoding: identity`; a response body framed by
 * Content-Length, by chunked transfer coding, or by the end of the connection (RFC 9112 §6.3). Redirects are the
 * caller's (src/download/http-get.ts). TLS is node's, with its usual verification (system CAs, NODE_EXTRA_CA_CERTS,
 * the host name).
 */
import net from 'node:net';
import tls from 'node:tls';

/** Takes one piece of the body, valid only during the call; a promise asks for nothing more until it settles. */
export type Take = (piece: Buffer) => Promise<void> | undefined;

export interface RawResponse {
  statusCode: number;
  headers: Record<string, string>;
  /**
   * Hands the body to take until it ends or stop() says so. A network error or a body cut short ends it gracefully:
   * returned, not thrown (every byte before it was taken); what take throws is thrown.
   */
  receive(take: Take, stop?: () => boolean): Promise<unknown>;
  /** Closes the connection without reading the rest. */
  discard(): Promise<void>;
}

export interface RawGetOptions {
  headers?: Record<string, string>;
  signal?: AbortSignal;
  /** No response head, or no body bytes, for this long: the request fails with onIdle()'s error. */
  idleTimeoutMs: number;
  onIdle: () => Error;
}

const READ_BUFFER = 256 << 10;
/** A response head larger than this is refused (real ones are a few kB). */
const MAX_HEAD = 64 << 10;
/** A chunk-size or trailer line longer than this is refused. */
const MAX_LINE = 4096;

/** The response ended before its framing said it would (what node:http reports as "aborted"). */
function connectionReset(message: string): Error {
  return Object.assign(new Error(message), { code: 'ECONNRESET' });
}

type Framing = { kind: 'length'; left: number } | { kind: 'chunked' } | { kind: 'close' };

/** The response head: status, headers (names lower-cased, repeats joined with ", ") and how the body is framed. */
export function parseHead(text: string): { statusCode: number; headers: Record<string, string>; framing: Framing } {
  const [statusLine, ...fields] = text.split('\r\n');
  const status = /^HTTP\/1\.[01] (\d{3})(?: .*)?$/.exec(statusLine);
  if (!status) throw new Error(`malformed HTTP response: ${JSON.stringify(statusLine.slice(0, 80))}`);
  const headers: Record<string, string> = {};
  for (const field of fields) {
    const colon = field.indexOf(':');
    if (colon <= 0 || /^[ \t]/.test(field)) throw new Error(`malformed HTTP header: ${JSON.stringify(field.slice(0, 80))}`);
    const name = field.slice(0, colon).trim().toLowerCase();
    const value = field.slice(colon + 1).trim();
    headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
  }
  const statusCode = Number(status[1]);
  if (statusCode === 204 || statusCode === 304) return { statusCode, headers, framing: { kind: 'length', left: 0 } };
  if (headers['transfer-encoding'] !== undefined) {
    if (!/(^|,)\s*chunked\s*$/i.test(headers['transfer-encoding'])) throw new Error(`unsupported Transfer-Encoding: ${headers['transfer-encoding']}`);
    return { statusCode, headers, framing: { kind: 'chunked' } };
  }
  const length = headers['content-length'];
  if (length === undefined) return { statusCode, headers, framing: { kind: 'close' } };
  if (!/^\d{1,15}$/.test(length)) throw new Error(`malformed Content-Length: ${JSON.stringify(length.slice(0, 40))}`);
  return { statusCode, headers, framing: { kind: 'length', left: Number(length) } };
}

/**
 * Chunked transfer coding, decoded as bytes arrive: emits the chunks' data, says when the last chunk and the
 * trailer section have been read.
 */
class ChunkedDecoder {
  private state: 'size' | 'data' | 'data-end' | 'trailer' = 'size';
  private left = 0;
  private line = '';
  done = false;

  /** Decodes buf[start, end); data goes to emit; returns where it stopped (end, or after emit asked to wait). */
  decode(buf: Buffer, start: number, end: number, emit: (from: number, to: number) => boolean): number {
    let i = start;
    while (i < end && !this.done) {
      if (this.state === 'data') {
        const n = Math.min(this.left, end - i);
        this.left -= n;
        i += n;
        if (this.left === 0) this.state = 'data-end';
        if (!emit(i - n, i)) return i;
        continue;
      }
      const nl = buf.indexOf(10, i);
      const stop = nl < 0 || nl >= end ? end : nl;
      this.line += buf.toString('latin1', i, stop);
      if (this.line.length > MAX_LINE) throw new Error('malformed chunked response: line too long');
      i = stop;
      if (stop === end) break;
      i++; // the LF
      this.endOfLine(this.line.replace(/\r$/, ''));
      this.line = '';
    }
    return i;
  }

  private endOfLine(text: string): void {
    if (this.state === 'data-end') {
      if (text !== '') throw new Error('malformed chunked response: no CRLF after a chunk');
      this.state = 'size';
    } else if (this.state === 'size') {
      const size = /^([0-9a-fA-F]{1,12})(?:[ \t]*;.*)?$/.exec(text);
      if (!size) throw new Error(`malformed chunked response: chunk size ${JSON.stringify(text.slice(0, 40))}`);
      this.left = Number.parseInt(size[1], 16);
      this.state = this.left === 0 ? 'trailer' : 'data';
    } else if (text === '') {
      this.done = true; // the empty line after the trailer fields
    }
  }
}

export function rawGet(url: URL, o: RawGetOptions): Promise<RawResponse> {
  const secure = url.protocol === 'https:';
  const port = Number(url.port) || (secure ? 443 : 80);
  const host = url.hostname.replace(/^\[|\]$/g, '');
  return new Promise<RawResponse>((resolve, reject) => {
    const exchange = new Exchange(o, resolve, reject);
    const options = { host, port, onread: { buffer: Buffer.allocUnsafeSlow(READ_BUFFER), callback: (n: number, buf: Uint8Array) => exchange.onRead(buf as Buffer, n) } };
    const socket: net.Socket = secure ? tls.connect({ ...options, servername: net.isIP(host) ? undefined : host, ALPNProtocols: ['http/1.1'] }) : net.connect(options);
    exchange.attach(socket, secure, () => {
      const fields = { Host: url.host, 'User-Agent': 'meshdemo', Accept: '*/*', 'Accept-Encoding': 'identity', Connection: 'close', ...o.headers };
      return `GET ${url.pathname}${url.search} HTTP/1.1\r\n${Object.entries(fields).map(([k, v]) => `${k}: ${v}\r\n`).join('')}\r\n`;
    });
  });
}

/** One request and its response on one connection. */
class Exchange {
  private socket!: net.Socket;
  private head: Buffer[] = [];
  private headBytes = 0;
  private framing: Framing | undefined;
  private chunked: ChunkedDecoder | undefined;
  /** Body bytes that arrived with the head, before anyone asked for the body. */
  private early: Buffer | undefined;
  private take: Take | undefined;
  private stop: () => boolean = () => false;
  /** Where the read buffer's bytes wait while take's promise is pending (reading is paused meanwhile). */
  private held: { buf: Buffer; at: number; end: number } | undefined;
  private settledHead = false;
  private finished = false;
  private failure: unknown;
  private onDone: ((result: unknown) => void) | undefined;
  private onTakeError: ((err: unknown) => void) | undefined;

  constructor(
    private readonly o: RawGetOptions,
    private readonly resolveHead: (r: RawResponse) => void,
    private readonly rejectHead: (err: unknown) => void,
  ) {}

  attach(socket: net.Socket, secure: boolean, request: () => string): void {
    this.socket = socket;
    const onAbort = () => this.fail(Object.assign(new Error('The operation was aborted'), { name: 'AbortError', code: 'ABORT_ERR' }));
    if (this.o.signal?.aborted) onAbort();
    this.o.signal?.addEventListener('abort', onAbort, { once: true });
    socket.setTimeout(this.o.idleTimeoutMs, () => this.fail(this.o.onIdle()));
    socket.once(secure ? 'secureConnect' : 'connect', () => socket.write(request()));
    socket.on('error', (err) => this.fail(err));
    socket.on('end', () => socket.destroySoon());
    socket.on('close', () => {
      this.o.signal?.removeEventListener('abort', onAbort);
      if (this.finished) return;
      if (!this.settledHead) return this.fail(connectionReset('socket hang up'));
      if (this.framing?.kind !== 'close') return this.fail(connectionReset('aborted'));
      this.finish();
      // a take that is pending settles first; the receiver hears of the end then
      if (!this.held) this.settleIfOver();
    });
  }

  /** net's onread: false stops reading until the socket is resumed. */
  onRead(buf: Buffer, n: number): boolean {
    if (this.finished || this.failure !== undefined) return false;
    try {
      if (!this.settledHead) return this.onHeadBytes(buf, n);
      return this.deliver(buf, 0, n);
    } catch (err) {
      this.fail(err);
      return false;
    }
  }

  private onHeadBytes(buf: Buffer, n: number): boolean {
    this.head.push(Buffer.from(buf.subarray(0, n)));
    this.headBytes += n;
    let all = Buffer.concat(this.head, this.headBytes);
    for (;;) {
      const end = all.indexOf('\r\n\r\n');
      if (end < 0) {
        if (all.length > MAX_HEAD) throw new Error(`response head larger than ${MAX_HEAD} bytes`);
        this.head = [all];
        this.headBytes = all.length;
        return true;
      }
      const { statusCode, headers, framing } = parseHead(all.toString('latin1', 0, end));
      all = all.subarray(end + 4);
      // an interim response (103 Early Hints, a stray 100 Continue) precedes the real one, as node:http skips it
      if (statusCode >= 100 && statusCode < 200) continue;
      this.head = [];
      this.framing = framing;
      if (framing.kind === 'chunked') this.chunked = new ChunkedDecoder();
      if (all.length > 0) this.early = all;
      if (framing.kind === 'length' && framing.left === 0) this.finish();
      this.settledHead = true;
      this.resolveHead({ statusCode, headers, receive: (take, stop) => this.receive(take, stop), discard: async () => this.finish() });
      // nothing more is read until the body is asked for
      return false;
    }
  }

  private receive(take: Take, stop: () => boolean = () => false): Promise<unknown> {
    this.take = take;
    this.stop = stop;
    return new Promise<unknown>((resolve, reject) => {
      this.onDone = resolve;
      this.onTakeError = reject;
      const early = this.early;
      this.early = undefined;
      try {
        if (early && !this.deliver(early, 0, early.length)) return;
      } catch (err) {
        this.fail(err);
        return;
      }
      if (!this.settleIfOver()) this.resume();
    });
  }

  /**
   * The body bytes buf[at, end) through the framing to take. False when reading must pause: take asked to wait (the
   * rest is held until its promise settles), or the body is over.
   */
  private deliver(buf: Buffer, at: number, end: number): boolean {
    const framing = this.framing!;
    let waitFor: Promise<void> | undefined;
    const emit = (from: number, to: number): boolean => {
      if (from === to) return true;
      try {
        waitFor = this.take!(buf.subarray(from, to));
      } catch (err) {
        this.failTake(err);
        return false;
      }
      return waitFor === undefined && !this.stop();
    };
    let i = at;
    if (framing.kind === 'chunked') {
      i = this.chunked!.decode(buf, at, end, emit);
      if (this.chunked!.done) this.finish();
    } else {
      const n = framing.kind === 'length' ? Math.min(framing.left, end - at) : end - at;
      if (framing.kind === 'length') framing.left -= n;
      i = at + n;
      emit(at, i);
      if (framing.kind === 'length' && framing.left === 0) this.finish();
    }
    if (this.settleIfOver()) return false;
    if (this.stop()) {
      this.finish();
      this.settleIfOver();
      return false;
    }
    if (waitFor === undefined) return true;
    this.held = { buf, at: i, end };
    waitFor.then(
      () => this.continueHeld(),
      (err: unknown) => this.failTake(err),
    );
    return false;
  }

  private continueHeld(): void {
    const held = this.held!;
    this.held = undefined;
    try {
      if (held.at < held.end && !this.deliver(held.buf, held.at, held.end)) return;
      if (this.settleIfOver()) return;
    } catch (err) {
      this.fail(err);
      return;
    }
    this.resume();
  }

  private resume(): void {
    if (!this.finished && this.failure === undefined) this.socket.resume();
  }

  /** The body is over (whole, failed or closed): the receiver is told, once. */
  private settleIfOver(): boolean {
    if (!this.finished && this.failure === undefined) return false;
    const done = this.onDone;
    this.onDone = undefined;
    done?.(this.failure);
    return true;
  }

  private failTake(err: unknown): void {
    const reject = this.onTakeError;
    this.onDone = undefined;
    this.finished = true;
    this.socket.destroy();
    reject?.(err);
  }

  private fail(err: unknown): void {
    if (this.finished || this.failure !== undefined) return;
    this.failure = err;
    this.socket.destroy();
    if (!this.settledHead) {
      this.settledHead = true;
      this.rejectHead(err);
      return;
    }
    // a take that is pending settles first; the receiver hears of the failure then
    if (!this.held) this.settleIfOver();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.socket.destroy();
  }
}
