// The "prior state" snapshot (test/support/snapshot.ts) that down's tests compare against sees every kind of change
// the demo can make: Istio custom resources, Secrets, ConfigMaps, ServiceAccounts, Roles and RoleBindings, webhooks,
// and labels and annotations on objects that existed before. Against a REAL Kubernetes 1.20.2 API server.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { apiRequest, type ControlPlane, kubeJson } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import { snapshotCluster } from '../support/snapshot.js';
import { skipUnless } from '../support/requirements.js';

describe('the prior-state snapshot', { skip: skipUnless('control-plane'), timeout: 300_000 }, () => {
  const demo = withDemoCluster({ name: 'snapshot', controlPlane: { controllerManager: false } });
  let cp: ControlPlane;
  before(() => ({ cp } = demo));

  it('sees each kind of change the demo can make', async () => {
    const api = async (path: string, method: string, body: unknown, contentType?: string) => {
      const r = await kubeJson(cp, path, { method, body, contentType });
      assert.ok(r.status >= 200 && r.status < 300, `${method} ${path}: ${r.status} ${JSON.stringify(r.body).slice(0, 200)}`);
    };
    const merge = 'application/merge-patch+json';
    const rbac = '/apis/rbac.authorization.k8s.io/v1';
    const crd = {
      apiVersion: 'apiextensions.k8s.io/v1',
      kind: 'CustomResourceDefinition',
      metadata: { name: 'gateways.networking.istio.io' },
      spec: {
        group: 'networking.istio.io',
        names: { kind: 'Gateway', plural: 'gateways', singular: 'gateway', listKind: 'GatewayList' },
        scope: 'Namespaced',
        versions: [{ name: 'v1alpha3', served: true, storage: true, schema: { openAPIV3Schema: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true } } }],
      },
    };
    await api('/apis/apiextensions.k8s.io/v1/customresourcedefinitions', 'POST', crd);
    let served = false;
    for (let i = 0; i < 100 && !served; i++) {
      // (not kubeJson: until the group is served, the answer is a plain-text 404)
      served = (await apiRequest(cp.server, { ca: fs.readFileSync(cp.caFile), token: cp.adminToken, path: '/apis/networking.istio.io/v1alpha3' })).status === 200;
      if (!served) await sleep(100);
    }
    assert.ok(served, 'the CRD is served');

    const changes: Array<[string, string, () => Promise<void>]> = [
      ['an Istio custom resource', '/apis/networking.istio.io/v1alpha3/gateways', () => api('/apis/networking.istio.io/v1alpha3/namespaces/default/gateways', 'POST', { apiVersion: 'networking.istio.io/v1alpha3', kind: 'Gateway', metadata: { name: 'g' }, spec: {} })],
      ['a Secret', '/api/v1/secrets', () => api('/api/v1/namespaces/default/secrets', 'POST', { apiVersion: 'v1', kind: 'Secret', metadata: { name: 's' }, stringData: { a: 'b' } })],
      ['a ConfigMap', '/api/v1/configmaps', () => api('/api/v1/namespaces/default/configmaps', 'POST', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'c' } })],
      ['a ServiceAccount', '/api/v1/serviceaccounts', () => api('/api/v1/namespaces/default/serviceaccounts', 'POST', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: 'sa' } })],
      ['a Role', `${rbac}/roles`, () => api(`${rbac}/namespaces/default/roles`, 'POST', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'r' }, rules: [] })],
      ['a RoleBinding', `${rbac}/rolebindings`, () => api(`${rbac}/namespaces/default/rolebindings`, 'POST', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'rb' }, roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'r' }, subjects: [] })],
      ['a validating webhook', '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations', () => api('/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations', 'POST', { apiVersion: 'admissionregistration.k8s.io/v1', kind: 'ValidatingWebhookConfiguration', metadata: { name: 'w' }, webhooks: [] })],
      ['a label on a pre-existing namespace', '/api/v1/namespaces', () => api('/api/v1/namespaces/default', 'PATCH', { metadata: { labels: { 'istio-injection': 'enabled' } } }, merge)],
      ['an annotation on a pre-existing namespace', '/api/v1/namespaces', () => api('/api/v1/namespaces/default', 'PATCH', { metadata: { annotations: { 'example.com/touched': 'yes' } } }, merge)],
      ['a label on a pre-existing Service', '/api/v1/services', () => api('/api/v1/namespaces/default/services/kubernetes', 'PATCH', { metadata: { labels: { 'example.com/touched': 'yes' } } }, merge)],
      ['an annotation on a pre-existing ConfigMap', '/api/v1/configmaps', () => api('/api/v1/namespaces/default/configmaps/c', 'PATCH', { metadata: { annotations: { 'example.com/touched': 'yes' } } }, merge)],
    ];
    for (const [what, list, change] of changes) {
      const before = await snapshotCluster(cp);
      await change();
      const after = await snapshotCluster(cp);
      assert.notDeepEqual(after[list], before[list], `${what} shows in ${list}`);
      for (const other of Object.keys(before)) if (other !== list) assert.deepEqual(after[other], before[other], `${what} changes only ${list}`);
    }
  });
});
