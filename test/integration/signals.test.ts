// SIGTERM (a CI job cancelled, `kill`, a container stopped) during a real `meshdemo up --no-app` against a REAL
// Kubernetes 1.20.2 API server: the external command it runs is killed with everything that command started
// (src/exec/run.ts: each child leads its own process group), the cluster lock is released, the exit code is 130,
// and the record left behind is one `meshdemo down` uses. Simulated: the node and istioctl — here behind a shell
// wrapper that does not exec it, so the stand-in is a grandchild of meshdemo, as kind's docker calls are: a signal
// to the direct child alone would leave it running.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startControlPlane, type ControlPlane, kubeJson } from '../support/control-plane.js';
import { startNodeSimulator, type NodeSimulator } from '../support/node-simulator.js';
import { buildReleaseArchive, standinScript, type ReleaseArchive } from '../support/release-archive.js';
import { errorLines, runMeshdemo } from '../support/cli.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane');
const STACK = /^\s+at .*(:\d+:\d+\)?|\(node:.*\))$/m;

/** Live (not zombie) processes whose command line contains every marker, with their process group. */
function processesWith(...markers: string[]): Array<{ pid: number; pgid: number; cmd: string }> {
  const out: Array<{ pid: number; pgid: number; cmd: string }> = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmd = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' '); // state ppid pgrp …
      if (fields[0] === 'Z') continue;
      if (markers.every((m) => cmd.includes(m))) out.push({ pid: Number(entry), pgid: Number(fields[2]), cmd });
    } catch {
      /* gone meanwhile */
    }
  }
  return out;
}

describe('SIGTERM during up', { skip, timeout: 600_000 }, () => {
  let cp: ControlPlane;
  let sim: NodeSimulator;
  let archive: ReleaseArchive;
  let tmp: string;
  let cache: string;
  let kubeconfig: string;

  const api = (p: string, method = 'GET') => kubeJson(cp, p, { method });
  /** This file's istioctl processes: the wrapper shell and the stand-in (the kubeconfig path is unique to this file). */
  const istioctls = () => processesWith('istioctl', kubeconfig);

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-signals-'));
    cache = path.join(tmp, 'cache');
    // bin/istioctl runs the stand-in as its child instead of exec'ing it
    const wrapper = standinScript().replace(/^exec /m, '');
    assert.notEqual(wrapper, standinScript());
    archive = await buildReleaseArchive({ outDir: path.join(tmp, 'release'), istioctlScript: wrapper });
    cp = await startControlPlane();
    kubeconfig = path.join(tmp, 'kubeconfig');
    await cp.writeKubeconfig(kubeconfig);
    sim = await startNodeSimulator(cp.kubeconfigPath);
  });
  after(async () => {
    for (const p of istioctls()) process.kill(p.pid, 'SIGKILL'); // only if a test failed half-way
    await sim?.stop();
    await cp?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('kills istioctl with what it started, releases the lock, exits 130; down then removes what up recorded', async () => {
    let tree: Array<{ pid: number; pgid: number; cmd: string }> = [];
    const r = await runMeshdemo(['--kubeconfig', kubeconfig, '--cache-dir', cache, '--json', 'up', '--no-app', '--yes', '--istio-archive', archive.path], {
      env: { STANDIN_HANG: '1' },
      timeoutMs: 240_000,
      onEvent: (e, child) => {
        if (tree.length || !(e.type === 'log' && e.step === 'istio-install' && /Processing resources for Istio core/.test(e.message))) return;
        tree = istioctls();
        child.kill('SIGTERM');
      },
    });
    assert.equal(tree.length, 2, `the wrapper and the stand-in under it: ${JSON.stringify(tree)}`);
    const [shell, standin] = [tree.find((p) => !p.cmd.includes('istioctl-standin.js')), tree.find((p) => p.cmd.includes('istioctl-standin.js'))];
    assert.ok(shell && standin, JSON.stringify(tree));
    assert.equal(standin.pgid, shell.pid, "the stand-in is in the group its wrapper leads: meshdemo's child's group");

    assert.equal(r.code, 130, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^error: interrupted/);
    assert.doesNotMatch(r.stderr, STACK);
    assert.equal(r.events().at(-1).exitCode, 130);
    for (let i = 0; i < 50 && istioctls().length; i++) await sleep(100);
    assert.deepEqual(istioctls(), [], 'the wrapper and the stand-in it started were both killed');
    assert.equal((await api('/apis/coordination.k8s.io/v1/namespaces/default/leases/meshdemo-lock')).status, 404, 'the lock was released');

    const cm = await api('/api/v1/namespaces/default/configmaps/meshdemo-inventory');
    assert.equal(cm.status, 200, 'the record is there');
    const record = JSON.parse(cm.body.data['inventory.json']);
    assert.ok(record.createdNamespaces.includes('istio-system'), JSON.stringify(record));

    const down = await runMeshdemo(['--kubeconfig', kubeconfig, '--cache-dir', cache, 'down', '--yes'], { timeoutMs: 240_000 });
    assert.equal(down.code, 0, down.stderr + down.stdout);
    assert.equal((await api('/api/v1/namespaces/default/configmaps/meshdemo-inventory')).status, 404, 'the record is gone');
    assert.equal((await api('/api/v1/namespaces/istio-system')).status, 404, 'istio-system, which up created, is gone');
    assert.equal((await api('/api/v1/namespaces/default')).body.metadata.labels?.['istio-injection'], undefined, 'the label up set is reverted');
  });
});
