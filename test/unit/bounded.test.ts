import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { mapLimit } from '../../src/kube/apply.js';

describe('mapLimit (bounded concurrency behind applyAll and down)', () => {
  it('starts nothing after the first failure (items 3..n are never started)', async () => {
    const started: number[] = [];
    const items = Array.from({ length: 10 }, (_, i) => i + 1);
    await assert.rejects(
      mapLimit(items, 2, async (n) => {
        started.push(n);
        await sleep(n === 2 ? 5 : 30);
        if (n === 2) throw new Error('item 2 rejected');
      }),
      /item 2 rejected/,
    );
    await sleep(400);
    assert.deepEqual(started, [1, 2], 'nothing was started after the rejection, not even later');
  });

  it('waits for the items in flight before it rejects, and starts no more of them', async () => {
    const started: number[] = [];
    const finished: number[] = [];
    const items = Array.from({ length: 20 }, (_, i) => i + 1);
    await assert.rejects(
      mapLimit(items, 4, async (n) => {
        started.push(n);
        if (n === 2) throw new Error('item 2 rejected');
        await sleep(50);
        finished.push(n);
      }),
      /item 2 rejected/,
    );
    const settledAtRejection = [...finished];
    await sleep(200);
    assert.deepEqual(finished, settledAtRejection, 'nothing finished after the rejection: it waited for all of them');
    assert.deepEqual(started.sort((a, b) => a - b), [1, 2, 3, 4], 'only the first 4 were started');
    assert.deepEqual(finished.sort((a, b) => a - b), [1, 3, 4]);
  });

  it('reports the first failure when several fail', async () => {
    await assert.rejects(
      mapLimit([1, 2, 3], 3, async (n) => {
        await sleep(n * 10);
        throw new Error(`item ${n}`);
      }),
      /item 1/,
    );
  });
});
