// The machine-local lock of a local kind cluster (src/kind/state.ts lockLocalCluster), with real processes.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { PreflightError } from '../../src/core/errors.js';
import { pidNamespace } from '../../src/core/process.js';
import { lockLocalCluster, readState, removeState, writeState, type LocalClusterState } from '../../src/kind/state.js';
import { localClustersDir } from '../../src/core/cache-layout.js';

const state = (name: string): LocalClusterState => ({
  version: 1, name, context: `kind-${name}`, createdAt: new Date().toISOString(), kindVersion: '0.17.0', kind: 'kind', nodeImage: 'img', kubeconfig: '/k', configFile: '/c', mappings: [],
});

describe('the machine-local lock of a local cluster', () => {
  it("two runs at once: the second waits, then finds the first one's state file, which it never removes", async () => {
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-llock-'));
    const order: string[] = [];
    // each run as up --local does it: lock, write the state file, "create" (a pause), clean up if it failed
    const run = async (id: string, creates: boolean) => {
      const lock = await lockLocalCluster(cache, 'mesh', { waitMs: 10_000, onWait: () => order.push(`${id} waits`) });
      try {
        if (lock.waited && readState(cache, 'mesh')) return order.push(`${id} finds the cluster`);
        writeState(cache, state('mesh'));
        order.push(`${id} writes state`);
        await sleep(300);
        if (!creates) removeState(cache, 'mesh'); // kind failed: its own clean-up
      } finally {
        lock.release();
      }
    };
    await Promise.all([run('first', true), sleep(20).then(() => run('second', false))]);
    assert.deepEqual(order, ['first writes state', 'second waits', 'second finds the cluster']);
    assert.ok(readState(cache, 'mesh'), "the winner's state file is still there");
    assert.deepEqual(fs.readdirSync(localClustersDir(cache)), ['mesh.json'], 'the lock is released');
  });

  it('a lock left by a process that is gone is broken; one of a live process, or of another PID namespace, is waited for', async () => {
    const cache = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-llock-'));
    fs.mkdirSync(localClustersDir(cache), { recursive: true });
    const lockFile = path.join(localClustersDir(cache), 'mesh.lock');
    const dead = spawnSync('/bin/true').pid!; // a process that has exited
    fs.writeFileSync(lockFile, `${dead} ${pidNamespace()}\n`);
    const taken = await lockLocalCluster(cache, 'mesh', { waitMs: 2000 });
    assert.equal(taken.waited, false);
    taken.release();

    for (const holder of [`${process.ppid} ${pidNamespace()}`, `${dead} another-boot:4026532174`]) {
      fs.writeFileSync(lockFile, `${holder}\n`);
      await assert.rejects(lockLocalCluster(cache, 'mesh', { waitMs: 600 }), (e: unknown) => e instanceof PreflightError && /another meshdemo run \(pid \d+\) is creating or deleting the local kind cluster "mesh"/.test(e.message));
      assert.equal(fs.readFileSync(lockFile, 'utf8'), `${holder}\n`, 'left alone');
    }
  });
});
