// Steps against fakeStepContext() (test/support/step-context.ts): what a step decides and records, without a cluster.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { namespaceLabel } from '../../src/steps/namespace-label.js';
import { INVENTORY_NAME } from '../../src/record/inventory.js';
import { fakeStepContext, InMemoryKube } from '../support/step-context.js';

describe('namespace-label step', () => {
  it('labels an existing namespace, records the value it had, and warns about pods running without a sidecar', async () => {
    const kube = new InMemoryKube({
      objects: [
        { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'shop', labels: { 'istio-injection': 'disabled' } } },
        {
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: 'web-1', namespace: 'shop' },
          spec: { containers: [{ name: 'web' }] },
          status: { phase: 'Running' },
        },
      ],
    });
    const ctx = fakeStepContext(undefined, { kube, options: { namespace: 'shop' } });
    assert.deepEqual(await namespaceLabel.check(ctx), { satisfied: false, detail: 'label shop istio-injection=enabled (now disabled)' });
    assert.equal(await namespaceLabel.run(ctx), 'shop: istio-injection=enabled (was disabled)');
    assert.equal((await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: 'shop' }))?.metadata.labels?.['istio-injection'], 'enabled');
    const record = await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace: 'shop', name: INVENTORY_NAME });
    assert.match(JSON.stringify(record?.data), /label:istio-injection.*disabled/);
    assert.ok(ctx.logged.some((e) => e.type === 'log' && e.level === 'warn' && /1 pod\(s\) in shop run without a sidecar: web-1/.test(e.message)));
    assert.deepEqual(await namespaceLabel.check(ctx), { satisfied: true, detail: 'shop has istio-injection=enabled' });
  });

  it('creates a missing namespace with the label, recorded as created by meshdemo', async () => {
    const kube = new InMemoryKube();
    const ctx = fakeStepContext(undefined, { kube, options: { namespace: 'fresh' } });
    assert.equal(await namespaceLabel.run(ctx), 'created namespace fresh with istio-injection=enabled');
    const ns = await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: 'fresh' });
    assert.equal(ns?.metadata.labels?.['istio-injection'], 'enabled');
    assert.deepEqual((await ctx.inventory()).data.createdNamespaces, ['fresh']);
  });
});
