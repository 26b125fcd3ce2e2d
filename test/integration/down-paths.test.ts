// Paths of `meshdemo down` beyond the plain one: --keep-istio (then a later down removes Istio), and down killed
// with SIGKILL half-way, then down again. Against a REAL Kubernetes 1.20.2 API server and controller manager;
// simulated: the node and istioctl (the stand-in in the release archive, which purges the real control plane).
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ControlPlane } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import type { ReleaseArchive } from '../support/release-archive.js';
import type { CliResult } from '../support/cli.js';
import { killOwned } from '../support/reaper.js';
import { snapshotCluster } from '../support/snapshot.js';
import { skipUnless } from '../support/requirements.js';

describe('down: --keep-istio, and killed half-way', { skip: skipUnless('control-plane'), timeout: 1_200_000 }, () => {
  const demo = withDemoCluster({ name: 'down-paths', release: 'archive', meshdemo: { args: ['--timeout', '3m', '--json'], timeoutMs: 300_000 } });
  const { api, meshdemo } = demo;
  let cp: ControlPlane;
  let archive: ReleaseArchive;
  let baseline: Record<string, string[]>;

  const up = () => meshdemo(['up', '--no-app', '--yes', '--istio-archive', archive.path]);
  const done = (r: CliResult) => r.events().filter((e) => e.type === 'step' && e.status === 'done').map((e) => e.id);

  before(async () => {
    ({ cp, archive } = demo);
    baseline = await snapshotCluster(cp);
  });

  it('down --keep-istio removes the addons and reverts the label, keeps Istio and its record; a later down removes Istio', async () => {
    const u = await up();
    assert.equal(u.code, 0, u.stderr + u.stdout);
    const kept = await meshdemo(['down', '--yes', '--keep-istio']);
    assert.equal(kept.code, 0, kept.stderr + kept.stdout);
    assert.deepEqual(done(kept), ['down-addons', 'down-namespaces', 'down-inventory'], 'the Istio phase did nothing');
    assert.equal((await api('/apis/apps/v1/namespaces/istio-system/deployments/istiod')).status, 200, 'istiod is kept');
    assert.equal((await api('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualservices.networking.istio.io')).status, 200, "Istio's CRDs are kept");
    assert.equal((await api('/apis/apps/v1/namespaces/istio-system/deployments/kiali')).status, 404, 'the addons are gone');
    assert.equal((await api('/api/v1/namespaces/default')).body.metadata.labels?.['istio-injection'], undefined, 'the injection label is reverted');
    const record = JSON.parse((await api('/api/v1/namespaces/default/configmaps/meshdemo-inventory')).body.data['inventory.json']);
    assert.deepEqual(Object.keys(record.steps), ['istio-install'], 'only that meshdemo installed Istio');
    assert.deepEqual(record.createdNamespaces, ['istio-system']);
    assert.deepEqual(record.changed, []);

    const rest = await meshdemo(['down', '--yes']);
    assert.equal(rest.code, 0, rest.stderr + rest.stdout);
    assert.deepEqual(done(rest), ['down-istio', 'down-namespaces', 'down-inventory']);
    assert.deepEqual(await snapshotCluster(cp), baseline, 'back to the prior state');
  });

  it('down killed with SIGKILL while it deletes the addons: down again finishes, and the cluster is back to its prior state', async () => {
    const u = await up();
    assert.equal(u.code, 0, u.stderr + u.stdout);
    let killed = false;
    const first = await meshdemo(['down', '--yes'], {
      onEvent: (e, child) => {
        if (!killed && e.type === 'step' && e.id === 'down-addons' && e.status === 'start') {
          killed = true;
          killOwned(child);
        }
      },
    });
    assert.ok(killed, first.stdout + first.stderr);
    assert.notEqual(first.code, 0);
    const again = await meshdemo(['down', '--yes']);
    assert.equal(again.code, 0, again.stderr + again.stdout);
    assert.deepEqual(await snapshotCluster(cp), baseline, 'back to the prior state');
  });
});
