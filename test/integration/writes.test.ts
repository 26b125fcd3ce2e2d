// Writes stop on the first failure: applyAll (src/kube/apply.ts) against a REAL Kubernetes 1.20.2 API server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { type ControlPlane, kubeJson } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import { skipUnless } from '../support/requirements.js';
import { loadKubeconfig } from '../../src/kube/kubeconfig.js';
import { connect, KubeApiError, type KubeClient, type KubeObject } from '../../src/kube/client.js';
import { applyAll } from '../../src/kube/apply.js';

const skip = skipUnless('control-plane');
const NS = 'writes';

describe('applyAll on a real API server', { skip, timeout: 300_000 }, () => {
  const demo = withDemoCluster({ name: 'writes', controlPlane: { controllerManager: false } });
  let cp: ControlPlane;
  let kube: KubeClient;
  before(async () => {
    cp = demo.cp;
    kube = await connect(await loadKubeconfig({ kubeconfig: cp.kubeconfigPath }));
    assert.equal((await kubeJson(cp, '/api/v1/namespaces', { method: 'POST', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } } })).status, 201);
  });
  after(() => kube?.close());

  it('item 2 rejected: items 3..n are never applied, and the items in flight finish before it rejects', async () => {
    const configMap = (n: number): KubeObject => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: `cm-${n}`, namespace: NS },
      // a data key with a space is invalid: the API server refuses item 2 (422)
      data: n === 2 ? { 'not a valid key': 'x' } : { n: String(n) },
    });
    const recorded: string[] = [];
    let settled = false;
    await assert.rejects(
      applyAll(kube, Array.from({ length: 10 }, (_, i) => configMap(i + 1)), {
        defaultNamespace: NS,
        concurrency: 2,
        deadline: Date.now() + 60_000,
        onApplied: async ({ object }) => {
          // item 1 is still being recorded when item 2 is refused
          if (object.metadata.name === 'cm-1') await sleep(500);
          recorded.push(`${object.metadata.name}${settled ? ' (after applyAll rejected)' : ''}`);
        },
      }),
      (err: unknown) => err instanceof KubeApiError && err.status === 422 && /not a valid key/.test(err.message),
    );
    settled = true;
    const recordedAtRejection = [...recorded];
    await sleep(1000);
    const names = (await kubeJson(cp, `/api/v1/namespaces/${NS}/configmaps`)).body.items.map((i: any) => i.metadata.name).filter((n: string) => n.startsWith('cm-'));
    assert.deepEqual(names, ['cm-1'], 'nothing after the refused item was applied');
    assert.deepEqual(recordedAtRejection, ['cm-1'], 'item 1, in flight, was applied and recorded before applyAll rejected');
    assert.deepEqual(recorded, ['cm-1'], 'nothing was applied or recorded after applyAll rejected');
  });

  it('listNames: the names a full list has, and none (not a crash) for a kind with no objects', async () => {
    // an empty PartialObjectMetadataList comes as "items": null; no PodTemplate exists here
    assert.deepEqual(await kube.listNames('v1', 'PodTemplate', { namespace: NS }), []);
    const full = (await kube.list('v1', 'ConfigMap', { namespace: NS })).map((o) => o.metadata.name).sort();
    assert.ok(full.length > 0, 'the first test left ConfigMaps here');
    assert.deepEqual((await kube.listNames('v1', 'ConfigMap', { namespace: NS })).sort(), full);
  });
});
