/**
 * gunzip for the download's one pass, in the two ways node offers.
 *
 * SyncInflater runs zlib on the calling thread into one reused output buffer: the same native inflate a zlib stream
 * runs (its `_handle.writeSync`, what node's own `gunzipSync` calls), without the stream around it. A zlib stream
 * hands every output chunk over from a libuv thread in a freshly allocated buffer: for a 45 MB release that was
 * ~700 thread round trips and 45 MB of fresh pages, about 250 ms of CPU on a 2-core VM, more than inflating itself.
 * The handle is not public API, so it is used only when it has the shape SyncInflater needs (node 20's has; it is
 * checked at run time); otherwise StreamInflater, the public stream, does the same work.
 *
 * Both hand each output to `onOutput` as a view that is valid only during the call: the consumer copies what it
 * keeps. Both report the gzip stream's end as node's Gunzip does: what follows a member that is not another member
 * is left unconsumed (`ended`, `consumedBytes`), trailing zeros included.
 */
import { constants, createGunzip, type Gunzip, type ZlibOptions } from 'node:zlib';

export interface Inflater {
  /** Compressed bytes in. A promise when the caller must wait before pushing more (the stream's backpressure). */
  push(input: Buffer): Promise<void> | undefined;
  /** No more input: the rest is inflated; throws (or rejects) when the gzip stream is incomplete. */
  finish(): Promise<void>;
  /** The gzip stream (its last member) has ended. */
  readonly ended: boolean;
  /** Compressed bytes that were part of the gzip stream. */
  readonly consumedBytes: number;
  destroy(): void;
}

/** Output per call of the native inflate: one buffer, reused. */
const OUTPUT_BYTES = 256 << 10;

interface ZlibHandle {
  writeSync(flush: number, input: Buffer, inOff: number, inLen: number, out: Buffer, outOff: number, outLen: number): void;
}

/** The zlib stream's handle and its [availOut, availIn] state, when node gives them the shape SyncInflater needs. */
function nativeParts(g: Gunzip): { handle: ZlibHandle; state: Uint32Array } | undefined {
  const internals = g as unknown as { _handle?: Partial<ZlibHandle> | null; _writeState?: unknown };
  const handle = internals._handle;
  const state = internals._writeState;
  if (typeof handle?.writeSync !== 'function' || !(state instanceof Uint32Array) || state.length < 2) return undefined;
  return { handle: handle as ZlibHandle, state };
}

export function createInflater(onOutput: (view: Buffer) => void): Inflater {
  const gunzip = createGunzip();
  const parts = nativeParts(gunzip);
  if (parts) return new SyncInflater(gunzip, parts.handle, parts.state, onOutput);
  gunzip.destroy();
  return new StreamInflater(onOutput);
}

export class SyncInflater implements Inflater {
  ended = false;
  consumedBytes = 0;
  private readonly out = Buffer.allocUnsafe(OUTPUT_BYTES);

  constructor(
    private readonly gunzip: Gunzip,
    private readonly handle: ZlibHandle,
    private readonly state: Uint32Array,
    private readonly onOutput: (view: Buffer) => void,
  ) {
    // zlib reports a data error by destroying the stream (synchronously: `errored` is set); the 'error' event that
    // follows on the next tick is that same error, already thrown from run()
    gunzip.on('error', () => undefined);
  }

  push(input: Buffer): undefined {
    if (!this.ended) this.run(input, constants.Z_NO_FLUSH);
    return undefined;
  }

  async finish(): Promise<void> {
    if (!this.ended) this.run(Buffer.alloc(0), constants.Z_FINISH);
    this.ended = true;
    this.destroy();
  }

  destroy(): void {
    if (!this.gunzip.destroyed) this.gunzip.destroy();
  }

  private run(input: Buffer, flush: number): void {
    let offset = 0;
    let left = input.length;
    for (;;) {
      if (this.gunzip.destroyed) throw this.gunzip.errored ?? new Error('inflate stopped');
      this.handle.writeSync(flush, input, offset, left, this.out, 0, OUTPUT_BYTES);
      if (this.gunzip.errored) throw this.gunzip.errored;
      const availOut = this.state[0];
      const availIn = this.state[1];
      this.consumedBytes += left - availIn;
      offset += left - availIn;
      left = availIn;
      if (availOut < OUTPUT_BYTES) this.onOutput(this.out.subarray(0, OUTPUT_BYTES - availOut));
      if (availOut === 0) continue;
      // output space left over while input is left: zlib took no more, the gzip stream has ended (node's Gunzip ends there too)
      if (left > 0) this.ended = true;
      return;
    }
  }
}

export class StreamInflater implements Inflater {
  ended = false;
  private readonly gunzip: Gunzip;
  private failure: Error | undefined;

  constructor(onOutput: (view: Buffer) => void) {
    this.gunzip = createGunzip({ chunkSize: 64 << 10, writableHighWaterMark: 1 << 20 } as ZlibOptions);
    this.gunzip.on('data', (chunk: Buffer) => {
      if (this.failure) return;
      try {
        onOutput(chunk);
      } catch (err) {
        this.failure = err as Error;
        this.gunzip.destroy();
      }
    });
    this.gunzip.on('end', () => (this.ended = true));
    this.gunzip.on('error', (err) => (this.failure ??= err));
  }

  get consumedBytes(): number {
    return this.gunzip.bytesWritten;
  }

  push(input: Buffer): Promise<void> | undefined {
    this.throwIfFailed();
    // a copy: the caller may reuse its buffer as soon as this returns, and the stream consumes it later
    if (this.gunzip.write(Buffer.from(input))) return undefined;
    return this.settled('drain');
  }

  async finish(): Promise<void> {
    this.throwIfFailed();
    if (!this.ended) {
      const done = this.settled('end');
      this.gunzip.end();
      await done;
    }
    this.throwIfFailed();
  }

  destroy(): void {
    this.gunzip.destroy();
  }

  private settled(event: 'drain' | 'end'): Promise<void> {
    return new Promise<void>((resolve) => {
      const done = () => {
        this.gunzip.off(event, done);
        this.gunzip.off('close', done);
        resolve();
      };
      this.gunzip.on(event, done);
      this.gunzip.on('close', done);
    }).then(() => this.throwIfFailed());
  }

  private throwIfFailed(): void {
    if (this.failure) throw this.failure;
  }
}
