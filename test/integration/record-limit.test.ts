// A record that would outgrow its ConfigMap (1 MiB of data, the API server's limit) is refused before the change it
// would record is made. Against a REAL Kubernetes 1.20.2 API server; simulated: istioctl (the stand-in in the
// archive), never reached here.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { type ControlPlane, kubeJson } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import type { ReleaseArchive } from '../support/release-archive.js';
import { errorLines, runMeshdemo } from '../support/cli.js';
import { skipUnless } from '../support/requirements.js';

const CONFIGMAPS = '/api/v1/namespaces/default/configmaps';
const LIMIT = 1024 * 1024;

describe('the record at its size limit', { skip: skipUnless('control-plane'), timeout: 300_000 }, () => {
  const demo = withDemoCluster({ name: 'record-limit', controlPlane: { controllerManager: false }, release: 'archive' });
  let cp: ControlPlane;
  let tmp: string;
  let archive: ReleaseArchive;
  before(() => ({ cp, tmp, archive } = demo));

  it('a change whose record would not fit is refused before it is made: exit 3, one line with the way on, nothing changed', async () => {
    // a record (as an earlier up with many images would leave it) a few bytes short of what a ConfigMap holds
    const data = { version: 1, namespace: 'default', createdNamespaces: [], created: [], changed: [], images: ['x'], steps: {} };
    const size = (d: object) => Buffer.byteLength('inventory.json') + Buffer.byteLength(JSON.stringify(d, null, 1));
    data.images = ['x'.repeat(LIMIT - size(data) - 8)];
    assert.equal(size(data), LIMIT - 9, "9 bytes short of the limit: recording any change takes more");
    const text = JSON.stringify(data, null, 1);
    const created = await kubeJson(cp, CONFIGMAPS, {
      method: 'POST',
      body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'meshdemo-inventory', labels: { 'app.kubernetes.io/managed-by': 'meshdemo' } }, data: { 'inventory.json': text } },
    });
    assert.equal(created.status, 201, 'the API server takes a record of that size');

    const r = await runMeshdemo(['--kubeconfig', cp.kubeconfigPath, '--cache-dir', path.join(tmp, 'cache'), 'up', '--yes', '--no-app', '--istio-archive', archive.path], { timeoutMs: 200_000 });
    assert.equal(r.code, 3, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^error: the meshdemo record \(ConfigMap default\/meshdemo-inventory\) would grow to \d+ bytes with the change about to be made, over the 1048576 bytes a ConfigMap holds; stopped before that change — run meshdemo down/);
    assert.equal((await kubeJson(cp, '/api/v1/namespaces/istio-system')).status, 404, 'istio-system was not created');
    assert.equal((await kubeJson(cp, `${CONFIGMAPS}/meshdemo-inventory`)).body.data['inventory.json'], text, 'the record is as it was');
  });
});
