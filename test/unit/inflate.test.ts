import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import { gzipSync } from 'node:zlib';
import { createInflater, StreamInflater, SyncInflater, type Inflater } from '../../src/download/inflate.js';

interface Outcome {
  sha256: string;
  bytes: number;
  ended: boolean;
  consumedBytes: number;
  error?: string;
}

/** Feeds `data` in pieces of `piece` bytes into one buffer that is overwritten after each push, as TreeWriter does. */
async function run(make: (onOutput: (view: Buffer) => void) => Inflater, data: Buffer, piece = 100_000): Promise<Outcome> {
  const hash = createHash('sha256');
  let bytes = 0;
  const inflater = make((view) => {
    hash.update(view);
    bytes += view.length;
  });
  const reused = Buffer.alloc(piece);
  try {
    for (let at = 0; at < data.length; at += piece) {
      const n = data.copy(reused, 0, at, at + piece);
      await inflater.push(reused.subarray(0, n));
      reused.fill(0xee);
    }
    await inflater.finish();
  } catch (err) {
    return { sha256: hash.digest('hex'), bytes, ended: inflater.ended, consumedBytes: inflater.consumedBytes, error: (err as Error).message };
  }
  return { sha256: hash.digest('hex'), bytes, ended: inflater.ended, consumedBytes: inflater.consumedBytes };
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');
const text = Buffer.from('istio-1.8.4/manifests/profiles/demo.yaml\n'.repeat(80_000));
const random = randomBytes(3 << 20);
const plain = Buffer.concat([text, random]);
const gz = gzipSync(plain);

describe('inflaters (src/download/inflate.ts)', () => {
  it('on this node the native handle is there, so downloads take the synchronous path', () => {
    const inflater = createInflater(() => undefined);
    assert.ok(inflater instanceof SyncInflater);
    inflater.destroy();
  });

  for (const [name, make] of [
    ['SyncInflater (via createInflater)', (o: (v: Buffer) => void) => createInflater(o)],
    ['StreamInflater', (o: (v: Buffer) => void) => new StreamInflater(o)],
  ] as const) {
    describe(name, () => {
      it('unpacks a gzip stream fed from a reused buffer, compressible and random data alike', async () => {
        const out = await run(make, gz);
        assert.equal(out.error, undefined);
        assert.equal(out.bytes, plain.length);
        assert.equal(out.sha256, sha(plain));
        assert.equal(out.consumedBytes, gz.length);
      });

      it('reads a second gzip member as node does', async () => {
        const two = Buffer.concat([gzipSync(text), gzipSync(random)]);
        const out = await run(make, two);
        assert.equal(out.error, undefined);
        assert.equal(out.sha256, sha(plain));
      });

      it('ends at the gzip stream end when zeros follow, leaving them unconsumed', async () => {
        const out = await run(make, Buffer.concat([gz, Buffer.alloc(50_000)]), 64 << 10);
        assert.equal(out.error, undefined);
        assert.equal(out.ended, true);
        assert.equal(out.sha256, sha(plain));
        assert.ok(out.consumedBytes < gz.length + 50_000, `consumed ${out.consumedBytes} of ${gz.length + 50_000}`);
      });

      it('fails on a truncated stream, at the end', async () => {
        const out = await run(make, gz.subarray(0, gz.length - 1000));
        assert.match(out.error ?? '', /unexpected end of file/);
      });

      it('fails on corrupt data', async () => {
        const corrupt = Buffer.from(gz);
        corrupt.fill(0x55, 200, 400);
        const out = await run(make, corrupt);
        assert.match(out.error ?? '', /incorrect data check/);
      });

      it('fails on what is not gzip at all', async () => {
        const out = await run(make, Buffer.from('<html>not found</html>'));
        assert.match(out.error ?? '', /incorrect header check/);
      });

      it('stops when the consumer throws: the error is the consumer’s', async () => {
        let calls = 0;
        const inflater = make(() => {
          if (++calls === 2) throw new Error('consumer refused');
        });
        await assert.rejects(async () => {
          for (let at = 0; at < gz.length; at += 1 << 20) await inflater.push(gz.subarray(at, at + (1 << 20)));
          await inflater.finish();
        }, /consumer refused/);
        assert.equal(calls, 2);
        inflater.destroy();
      });
    });
  }
});
