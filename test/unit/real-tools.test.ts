// How meshdemo reads the real tools (issue 10): istioctl 1.8.4's waits and its own readiness failure.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { istioctlReadinessFailure, istioctlWorstCaseMs } from '../../src/steps/istio-install.js';

describe('istioctl 1.8.4 waits', () => {
  it('the worst case is the 60 s CRD wait plus one wait for Istiod and one for the gateways', () => {
    assert.equal(istioctlWorstCaseMs(40_000), 60_000 + 2 * 40_000);
    assert.equal(istioctlWorstCaseMs(300_000), 660_000);
  });
});

describe("istioctl 1.8.4's own readiness failure", () => {
  // What 1.8.4 prints without a TTY (progress.go + pb v3: "\n" before each message), split into lines.
  const output = [
    '',
    '- Processing resources for Istio core.',
    '✔ Istio core installed',
    '- Processing resources for Istiod.',
    '- Processing resources for Istiod. Waiting for Deployment/istio-system/istiod',
    '✘ Istiod encountered an error: failed to wait for resource: resources not ready after 40s: timed out waiting for the condition',
    'Deployment/istio-system/istiod',
    '- Processing resources for Egress gateways, Ingress gateways.',
    '✔ Egress gateways installed',
    '✔ Ingress gateways installed',
    '- Pruning removed resourcesError: failed to install manifests: errors occurred during operation',
  ];

  it('names the component, the wait and the resources not ready', () => {
    assert.deepEqual(istioctlReadinessFailure(output), { components: ['Istiod'], resources: ['Deployment/istio-system/istiod'], after: '40s' });
  });

  it('several components and resources', () => {
    const r = istioctlReadinessFailure([
      '✘ Ingress gateways encountered an error: failed to wait for resource: resources not ready after 5m0s: timed out waiting for the condition',
      'Deployment/istio-system/istio-ingressgateway',
      'Pod/istio-system/istio-ingressgateway-abc',
      '✘ Egress gateways encountered an error: failed to wait for resource: resources not ready after 5m0s: timed out waiting for the condition',
      'Deployment/istio-system/istio-egressgateway',
      '- Pruning removed resources',
    ]);
    assert.deepEqual(r, {
      components: ['Ingress gateways', 'Egress gateways'],
      resources: ['Deployment/istio-system/istio-ingressgateway', 'Pod/istio-system/istio-ingressgateway-abc', 'Deployment/istio-system/istio-egressgateway'],
      after: '5m0s',
    });
  });

  it('the CRD wait failing is a readiness failure too', () => {
    const r = istioctlReadinessFailure(['✘ Istio core encountered an error: failed to wait for resource: failed to verify CRD creation: timed out waiting for the condition']);
    assert.deepEqual(r, { components: ['Istio core'], resources: [], after: undefined });
  });

  it('other failures are not', () => {
    assert.equal(istioctlReadinessFailure(['✘ Istio core encountered an error: boom', '- Pruning removed resourcesError: failed to install manifests: boom']), undefined);
    assert.equal(istioctlReadinessFailure(['Error: failed to install manifests: errors occurred during operation: failed to create "Deployment/istio-system/istiod": forbidden']), undefined);
  });
});
