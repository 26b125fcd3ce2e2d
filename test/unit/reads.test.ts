// ClusterReads.namesOf: which request answers an existence check, and that each is asked once per run.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { KubeObject } from '../../src/kube/client.js';
import { ClusterReads } from '../../src/kube/reads.js';
import { InMemoryKube } from '../support/step-context.js';

class CountingKube extends InMemoryKube {
  readonly calls: string[] = [];

  override async list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, opts: { namespace?: string } = {}): Promise<T[]> {
    this.calls.push(`list ${kind} ${opts.namespace ?? ''}`);
    return super.list<T>(apiVersion, kind, opts);
  }

  override async listNames(apiVersion: string, kind: string, opts: { namespace?: string } = {}): Promise<string[]> {
    this.calls.push(`names ${kind} ${opts.namespace ?? ''}`);
    return super.listNames(apiVersion, kind, opts);
  }
}

const object = (apiVersion: string, kind: string, name: string, namespace?: string): KubeObject => ({ apiVersion, kind, metadata: { name, namespace } });

describe('ClusterReads.namesOf', () => {
  const objects = () => [
    object('v1', 'ConfigMap', 'grafana', 'istio-system'),
    object('v1', 'ConfigMap', 'istio-grafana-dashboards', 'istio-system'),
    object('v1', 'ConfigMap', 'elsewhere', 'default'),
    object('v1', 'Service', 'kiali', 'istio-system'),
  ];

  it('asks a kind no check reads in full for its names alone, once per run', async () => {
    const kube = new CountingKube({ objects: objects() });
    const reads = new ClusterReads(kube);
    const [first, second] = await Promise.all([reads.namesOf('v1', 'ConfigMap', { namespace: 'istio-system' }), reads.namesOf('v1', 'ConfigMap', { namespace: 'istio-system' })]);
    assert.deepEqual(first.sort(), ['grafana', 'istio-grafana-dashboards']);
    assert.deepEqual(second.sort(), first);
    assert.deepEqual(kube.calls, ['names ConfigMap istio-system']);
  });

  it('takes the names of a kind read in full (a LISTED kind) from that one list', async () => {
    const kube = new CountingKube({ objects: objects() });
    const reads = new ClusterReads(kube);
    assert.deepEqual(await reads.namesOf('v1', 'Service', { namespace: 'istio-system' }), ['kiali']);
    assert.equal((await reads.get({ apiVersion: 'v1', kind: 'Service', namespace: 'istio-system', name: 'kiali' }))?.metadata.name, 'kiali');
    assert.deepEqual(kube.calls, ['list Service istio-system']);
  });

  it('takes them from a full list already asked, and asks again after a change', async () => {
    const kube = new CountingKube({ objects: objects() });
    const reads = new ClusterReads(kube);
    await reads.list('v1', 'ConfigMap', { namespace: 'istio-system' });
    assert.equal((await reads.namesOf('v1', 'ConfigMap', { namespace: 'istio-system' })).length, 2);
    await kube.delete({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'istio-system', name: 'grafana' });
    assert.deepEqual(await reads.namesOf('v1', 'ConfigMap', { namespace: 'istio-system' }), ['istio-grafana-dashboards']);
    assert.deepEqual(kube.calls, ['list ConfigMap istio-system', 'names ConfigMap istio-system']);
  });
});
