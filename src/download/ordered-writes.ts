/**
 * File writes done off the main thread, in the order they were asked for: the download's .part file is written
 * while the main thread hashes and unpacks. Consecutive writes to one file are batched into one writev. The
 * caller bounds memory by looking at `bytesInFlight` and waiting for `below()`.
 */
import { close, writev } from 'node:fs';

type Op = { fd: number; data: Buffer } | { fd: number; close: true };

export class OrderedWrites {
  private readonly ops: Op[] = [];
  private running = false;
  private waiters: { ready: () => boolean; resolve: () => void }[] = [];
  /** The first error; later operations are dropped (files are still closed). */
  error: Error | undefined;
  bytesInFlight = 0;
  /** Files handed to close() and not closed yet: each still holds a file descriptor. */
  closesPending = 0;

  write(fd: number, data: Buffer): void {
    if (data.length === 0) return;
    this.ops.push({ fd, data });
    this.bytesInFlight += data.length;
    this.next();
  }

  /** Closes fd after the writes queued before it. */
  close(fd: number): void {
    this.closesPending++;
    this.ops.push({ fd, close: true });
    this.next();
  }

  /** Resolves once at most `limit` bytes wait to be written (0: everything written and closed). */
  below(limit: number): Promise<void> {
    return this.when(() => this.settled(limit));
  }

  /** Resolves once fewer than `limit` files wait to be closed. */
  closesBelow(limit: number): Promise<void> {
    return this.when(() => this.closesPending < limit);
  }

  private when(ready: () => boolean): Promise<void> {
    if (ready()) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ ready, resolve }));
  }

  private settled(limit: number): boolean {
    return limit === 0 ? !this.running && this.ops.length === 0 : this.bytesInFlight <= limit;
  }

  private next(): void {
    if (this.running) return;
    const first = this.ops[0];
    if (!first) return this.wake();
    this.running = true;
    if ('close' in first) {
      this.ops.shift();
      close(first.fd, (err) => {
        this.closesPending--;
        this.done(err, 0);
      });
      return;
    }
    let n = 0;
    while (n < this.ops.length && n < 64 && this.ops[n].fd === first.fd && !('close' in this.ops[n])) n++;
    const batch = this.ops.slice(0, n) as { fd: number; data: Buffer }[];
    const bytes = batch.reduce((sum, op) => sum + op.data.length, 0);
    if (this.error) {
      this.ops.splice(0, n);
      return this.done(null, bytes);
    }
    writev(first.fd, batch.map((op) => op.data), (err, written) => {
      if (err) {
        this.ops.splice(0, n);
        return this.done(err, bytes);
      }
      // a short write leaves the rest of the batch at the front of the queue
      let left = written;
      let consumed = 0;
      while (consumed < n && left >= batch[consumed].data.length) left -= batch[consumed++].data.length;
      this.ops.splice(0, consumed);
      if (left > 0) (this.ops[0] as { data: Buffer }).data = batch[consumed].data.subarray(left);
      this.done(null, written);
    });
  }

  private done(err: Error | null, bytes: number): void {
    if (err && !this.error) this.error = err;
    this.bytesInFlight -= bytes;
    this.running = false;
    this.next();
    this.wake();
  }

  private wake(): void {
    const ready = this.waiters.filter((w) => w.ready());
    if (ready.length === 0) return;
    this.waiters = this.waiters.filter((w) => !ready.includes(w));
    for (const w of ready) w.resolve();
  }
}
