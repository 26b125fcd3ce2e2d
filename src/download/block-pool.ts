/**
 * Fixed-size buffers that a download reuses. Memory the process has not touched before costs a page fault per 4 kB
 * the first time it is written, and on a virtual machine that is the dearest part of a download: a fresh buffer for
 * every socket read (what node:http does) or every gunzip input made a 45 MB download spend more CPU on faults than
 * on hashing. A block goes back to the pool once everything that holds it (the .part write, gunzip) is done with it.
 */
export class BlockPool {
  private readonly free: Buffer[] = [];

  constructor(readonly blockSize: number) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.blockSize);
  }

  /** Gives a block (or the part of it that was filled) back; a buffer of another size is left to the garbage collector. */
  give(block: Buffer): void {
    if (block.byteOffset === 0 && block.buffer.byteLength === this.blockSize) this.free.push(Buffer.from(block.buffer, 0, this.blockSize));
  }
}

/** A function that calls `release` the `holders`-th time it is called (each holder calls it once, when done). */
export function afterAll(holders: number, release: () => void): () => void {
  let left = holders;
  return () => {
    if (--left === 0) release();
  };
}
