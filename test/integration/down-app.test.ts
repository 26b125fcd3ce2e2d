// `meshdemo down` after a full `up` WITH the app, and after an `up` killed (SIGKILL, with what it started) right
// after "images" and "app-deploy" started. REAL API server + controller manager, REAL dockerd and registry, REAL
// local release server; simulated: the node and istioctl (the stand-in in the archive).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { startNodeSimulator, type NodeSimulator } from '../support/node-simulator.js';
import { buildReleaseArchive } from '../support/release-archive.js';
import { startReleaseServer, type ReleaseServer } from '../support/release-server.js';
import { startDockerEnv, type DockerEnv } from '../support/docker-env.js';
import { runMeshdemo, type CliResult } from '../support/cli.js';
import { killOwned } from '../support/reaper.js';
import { snapshotCluster } from '../support/snapshot.js';
import { skipUnless } from '../support/requirements.js';

describe('down after up with the app', { skip: skipUnless('control-plane', 'docker'), timeout: 1_500_000 }, () => {
  let cp: ControlPlane;
  let sim: NodeSimulator;
  let server: ReleaseServer;
  let docker: DockerEnv;
  let tmp: string;
  let baseline: Record<string, string[]>;

  const meshdemo = (args: string[], opts: { onEvent?: (e: any, child: ChildProcess) => void } = {}): Promise<CliResult> =>
    runMeshdemo(['--kubeconfig', cp.kubeconfigPath, '--cache-dir', path.join(tmp, 'cache'), '--timeout', '3m', '--json', ...args], {
      env: { DOCKER_HOST: docker.dockerHost },
      timeoutMs: 600_000,
      onEvent: opts.onEvent,
    });
  const upArgs = () => ['up', '--yes', '--istio-mirror', server.url, '--registry', `${docker.registry}/micro-service`, '--base-image', docker.baseImage];
  const done = (r: CliResult) => r.events().filter((e) => e.type === 'step' && e.status === 'done').map((e) => e.id);

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-down-app-'));
    const archive = await buildReleaseArchive({ outDir: path.join(tmp, 'release') });
    server = await startReleaseServer({ '1.8.4/istio-1.8.4-linux-amd64.tar.gz': archive.path });
    [cp, docker] = await Promise.all([startControlPlane(), startDockerEnv()]);
    sim = await startNodeSimulator(cp.kubeconfigPath);
    baseline = await snapshotCluster(cp);
  });
  after(async () => {
    await sim?.stop();
    await cp?.stop();
    await docker?.stop();
    await server?.close();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a full up with the app, then down: every phase does real work, and the cluster is back to its prior state', async () => {
    const u = await meshdemo(upArgs());
    assert.equal(u.code, 0, u.stderr + u.stdout.slice(-3000));
    assert.ok(done(u).includes('app-deploy'));
    const d = await meshdemo(['down', '--yes']);
    assert.equal(d.code, 0, d.stderr + d.stdout);
    // (down-dashboards has nothing to revert: up created the dashboard Services, so they go with the addons)
    assert.deepEqual(done(d), ['down-app', 'down-addons', 'down-istio', 'down-namespaces', 'down-inventory']);
    assert.match(d.events().find((e) => e.id === 'down-app' && e.status === 'done').message, /deleted [1-9]\d* app object/);
    assert.deepEqual(await snapshotCluster(cp), baseline);
  });

  for (const step of ['images', 'app-deploy']) {
    it(`up killed (SIGKILL) right after "${step}" started, then down: back to the prior state`, async () => {
      let killed = false;
      const u = await meshdemo(upArgs(), {
        onEvent: (e, child) => {
          if (!killed && e.type === 'step' && e.id === step && e.status === 'start') {
            killed = true;
            killOwned(child);
          }
        },
      });
      assert.ok(killed, `up was killed after "${step}" started:\n${u.stdout}\n${u.stderr}`);
      assert.notEqual(u.code, 0);
      const d = await meshdemo(['down', '--yes']);
      assert.equal(d.code, 0, d.stderr + d.stdout);
      assert.deepEqual(await snapshotCluster(cp), baseline);
    });
  }
});
