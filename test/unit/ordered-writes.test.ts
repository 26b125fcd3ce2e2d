import assert from 'node:assert/strict';
import { fstatSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { OrderedWrites } from '../../src/download/ordered-writes.js';

describe('OrderedWrites', () => {
  let dir: string;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshdemo-ow-'));
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('writes in the order asked, to several files, and closes each after its writes', async () => {
    const w = new OrderedWrites();
    const a = openSync(join(dir, 'a'), 'w');
    const b = openSync(join(dir, 'b'), 'w');
    const expectA: Buffer[] = [];
    const expectB: Buffer[] = [];
    for (let i = 0; i < 500; i++) {
      const chunk = Buffer.from(`${i.toString().padStart(4, '0')};`);
      (i % 3 ? expectA : expectB).push(chunk);
      w.write(i % 3 ? a : b, chunk);
    }
    assert.ok(w.bytesInFlight > 0);
    w.close(a);
    w.close(b);
    await w.below(0);
    assert.equal(w.bytesInFlight, 0);
    assert.equal(w.error, undefined);
    assert.equal(readFileSync(join(dir, 'a'), 'utf8'), Buffer.concat(expectA).toString());
    assert.equal(readFileSync(join(dir, 'b'), 'utf8'), Buffer.concat(expectB).toString());
    assert.throws(() => fstatSync(a), /EBADF/);
    assert.throws(() => fstatSync(b), /EBADF/);
  });

  it('below(limit) waits until no more than limit bytes are queued', async () => {
    const w = new OrderedWrites();
    const fd = openSync(join(dir, 'f'), 'w');
    for (let i = 0; i < 64; i++) w.write(fd, Buffer.alloc(1 << 20, i));
    assert.equal(w.bytesInFlight, 64 << 20);
    await w.below(8 << 20);
    assert.ok(w.bytesInFlight <= 8 << 20, `${w.bytesInFlight} bytes still queued`);
    w.close(fd);
    await w.below(0);
    const data = readFileSync(join(dir, 'f'));
    assert.equal(data.length, 64 << 20);
    assert.equal(data[(5 << 20) + 3], 5);
  });

  it('keeps the first error, drops the writes after it and still closes the files', async () => {
    writeFileSync(join(dir, 'ro'), 'x');
    const readOnly = openSync(join(dir, 'ro'), 'r');
    const other = openSync(join(dir, 'other'), 'w');
    const w = new OrderedWrites();
    w.write(readOnly, Buffer.from('refused'));
    w.write(other, Buffer.from('dropped'));
    w.close(readOnly);
    w.close(other);
    await w.below(0);
    assert.equal((w.error as NodeJS.ErrnoException | undefined)?.code, 'EBADF');
    assert.equal(w.bytesInFlight, 0);
    assert.equal(readFileSync(join(dir, 'other'), 'utf8'), '');
    assert.throws(() => fstatSync(readOnly), /EBADF/);
    assert.throws(() => fstatSync(other), /EBADF/);
  });
});
