// No error swallowed: what the user is told is what happened. Against a REAL Kubernetes 1.20.2 API server.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { type ControlPlane, kubeJson } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import { FIXTURES } from '../support/release-archive.js';
import { errorLines } from '../support/cli.js';
import { snapshotCluster } from '../support/snapshot.js';
import { skipUnless } from '../support/requirements.js';

const STACK = /^\s+at .*(:\d+:\d+\)?|\(node:.*\))$/m;
const RECORD = '/api/v1/namespaces/default/configmaps/meshdemo-inventory';

describe('errors are reported as what they are', { skip: skipUnless('control-plane'), timeout: 600_000 }, () => {
  const demo = withDemoCluster({ name: 'errors', controlPlane: { controllerManager: false }, meshdemo: { timeoutMs: 120_000 } });
  let cp: ControlPlane;
  let tmp: string;
  before(() => ({ cp, tmp } = demo));
  const meshdemo = (args: string[], cacheDir?: string) => demo.meshdemo(args, { cacheDir });

  it('a corrupted record: one line naming the ConfigMap and how to recover, exit 3, nothing changed', async () => {
    const cm = { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'meshdemo-inventory', namespace: 'default' }, data: { 'inventory.json': '{"version":1,"created":[{"kind":"Deployment"' } };
    assert.equal((await kubeJson(cp, '/api/v1/namespaces/default/configmaps', { method: 'POST', body: cm })).status, 201);
    const before = await snapshotCluster(cp);
    for (const args of [['down', '--yes'], ['down', '--dry-run'], ['up', '--yes', '--no-app', '--istio-mirror', 'http://127.0.0.1:1/releases'], ['--json', 'down', '--yes']]) {
      const r = await meshdemo(args);
      assert.equal(r.code, 3, `${args}: ${r.stderr}`);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /^error: the meshdemo record \(ConfigMap default\/meshdemo-inventory\) is corrupted: data\.inventory\.json is not valid JSON \(.*\) — fix its data\.inventory\.json \(kubectl edit configmap -n default meshdemo-inventory\), or delete it \(kubectl delete configmap -n default meshdemo-inventory\)/);
      assert.doesNotMatch(r.stderr, STACK);
    }
    // valid JSON of the wrong shape is refused the same way
    await kubeJson(cp, RECORD, { method: 'PATCH', body: { data: { 'inventory.json': '{"created":{"kind":"Deployment"}}' } }, contentType: 'application/merge-patch+json' });
    const shape = await meshdemo(['down', '--yes']);
    assert.equal(shape.code, 3, shape.stderr);
    assert.match(errorLines(shape.stderr)[0], /is corrupted: "created" is not a list — /);
    assert.deepEqual(await snapshotCluster(cp), before, 'nothing changed');
    assert.equal((await kubeJson(cp, RECORD)).body.data['inventory.json'], '{"created":{"kind":"Deployment"}}', 'the record is left as it is');
    assert.equal((await kubeJson(cp, RECORD, { method: 'DELETE' })).status, 200);
  });

  it('a cached release whose addon manifest is missing is named as such, not as "not downloaded yet"', async () => {
    // a release in the cache (as istio-download leaves it) without samples/addons/kiali.yaml
    const cache = path.join(tmp, 'cache-broken');
    const release = path.join(cache, 'istio', '1.8.4', 'tree', 'istio-1.8.4');
    fs.mkdirSync(path.join(release, 'bin'), { recursive: true });
    fs.cpSync(path.join(FIXTURES, 'samples'), path.join(release, 'samples'), { recursive: true });
    fs.rmSync(path.join(release, 'samples', 'addons', 'kiali.yaml'));
    const r = await meshdemo(['plan', '--no-app'], cache);
    assert.equal(r.code, 3, r.stdout + r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.ok(lines[0].startsWith(`error: the cached Istio 1.8.4 release has no usable addon kiali: ${path.join(release, 'samples', 'addons', 'kiali.yaml')} is missing — remove the cached release (rm -rf ${release}) and re-run`), lines[0]);
    assert.doesNotMatch(r.stdout, /not downloaded yet/);

    // and with no release in the cache at all, plan says so
    const fresh = await meshdemo(['plan', '--no-app'], path.join(tmp, 'cache-empty'));
    assert.equal(fresh.code, 0, fresh.stderr);
    assert.match(fresh.stdout, /addons +Apply addons .* — apply prometheus, grafana, jaeger, kiali \(release not downloaded yet\)/);
  });
});
