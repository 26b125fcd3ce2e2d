// `meshdemo down` after a full `up` WITH the app, and after an `up` killed (SIGKILL, with what it started) right
// after "images" and "app-deploy" started. REAL API server + controller manager, REAL dockerd and registry, REAL
// local release server; simulated: the node and istioctl (the stand-in in the archive).
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import type { ControlPlane } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import type { ReleaseServer } from '../support/release-server.js';
import type { DockerEnv } from '../support/docker-env.js';
import type { CliResult } from '../support/cli.js';
import { killOwned } from '../support/reaper.js';
import { snapshotCluster } from '../support/snapshot.js';
import { skipUnless } from '../support/requirements.js';

describe('down after up with the app', { skip: skipUnless('control-plane', 'docker'), timeout: 1_500_000 }, () => {
  const demo = withDemoCluster({ name: 'down-app', release: 'server', docker: true, meshdemo: { args: ['--timeout', '3m', '--json'], timeoutMs: 600_000 } });
  let cp: ControlPlane;
  let server: ReleaseServer;
  let docker: DockerEnv;
  let baseline: Record<string, string[]>;

  const meshdemo = (args: string[], opts: { onEvent?: (e: any, child: ChildProcess) => void } = {}): Promise<CliResult> => demo.meshdemo(args, { onEvent: opts.onEvent });
  const upArgs = () => ['up', '--yes', '--istio-mirror', server.url, '--registry', `${docker.registry}/micro-service`, '--base-image', docker.baseImage];
  const done = (r: CliResult) => r.events().filter((e) => e.type === 'step' && e.status === 'done').map((e) => e.id);

  before(async () => {
    ({ cp, server, docker } = demo);
    baseline = await snapshotCluster(cp);
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
