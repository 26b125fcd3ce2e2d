// How meshdemo reads the real tools (issue 10): istioctl 1.8.4's waits and its own readiness failure.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { UsageError } from '../../src/core/errors.js';
import { loadKubeconfig } from '../../src/kube/kubeconfig.js';
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

describe('kubeconfig file references, as kubectl resolves them', () => {
  it('relative certificate-authority, client-certificate, client-key and tokenFile are relative to the kubeconfig file', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-kc-rel-'));
    const elsewhere = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-cwd-'));
    const cwd = process.cwd();
    try {
      fs.mkdirSync(path.join(dir, 'kube', 'pki'), { recursive: true });
      fs.writeFileSync(path.join(dir, 'kube', 'pki', 'ca.crt'), 'CA');
      fs.writeFileSync(path.join(dir, 'kube', 'pki', 'me.crt'), 'CERT');
      fs.writeFileSync(path.join(dir, 'kube', 'pki', 'me.key'), 'KEY');
      fs.writeFileSync(path.join(dir, 'kube', 'token'), 'tok-from-file\n');
      const file = path.join(dir, 'kube', 'config');
      fs.writeFileSync(
        file,
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443", certificate-authority: pki/ca.crt}}]',
          'users: [{name: certs, user: {client-certificate: pki/me.crt, client-key: ./pki/me.key}}, {name: tok, user: {tokenFile: token}}]',
          'contexts: [{name: certs, context: {cluster: c, user: certs}}, {name: tok, context: {cluster: c, user: tok}}]',
          'current-context: certs',
          '',
        ].join('\n'),
      );
      process.chdir(elsewhere);
      const certs = await loadKubeconfig({ kubeconfig: path.relative(elsewhere, file) });
      const o: any = {};
      await certs.applyToHTTPSOptions(o);
      assert.deepEqual([String(o.ca), String(o.cert), String(o.key)], ['CA', 'CERT', 'KEY']);
      const tok = await loadKubeconfig({ kubeconfig: file, context: 'tok' });
      const t: any = {};
      await tok.applyToHTTPSOptions(t);
      assert.equal(t.headers.Authorization, 'Bearer tok-from-file');
      assert.ok(tok.secrets.includes('tok-from-file'), 'a token read from a file is masked like any other');
      // client-node's KubeConfig (auth plugins, port-forward) gets the same absolute paths
      const kc = await certs.kubeConfig();
      assert.equal(kc.getCurrentCluster()?.caFile, path.join(dir, 'kube', 'pki', 'ca.crt'));
      assert.equal(kc.getCurrentUser()?.keyFile, path.join(dir, 'kube', 'pki', 'me.key'));

      fs.rmSync(path.join(dir, 'kube', 'pki', 'ca.crt'));
      const gone = await loadKubeconfig({ kubeconfig: file });
      await assert.rejects(
        gone.applyToHTTPSOptions({}),
        (e: unknown) => e instanceof UsageError && e.exitCode === 2 && e.message.includes(path.join(dir, 'kube', 'pki', 'ca.crt')),
      );
    } finally {
      process.chdir(cwd);
      fs.rmSync(dir, { recursive: true, force: true });
      fs.rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});

describe('minikube profiles in the kubeconfig', () => {
  it('a cluster entry with minikube\'s extension names its provider (minikube pkg/minikube/kubeconfig/extension.go)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-kc-mk-'));
    try {
      const file = path.join(dir, 'config');
      fs.writeFileSync(
        file,
        [
          'apiVersion: v1',
          'kind: Config',
          'clusters:',
          '- name: demo',
          '  cluster:',
          '    server: https://127.0.0.1:8443',
          '    extensions:',
          '    - name: cluster_info',
          '      extension: {provider: minikube.sigs.k8s.io, version: v1.25.0, last-update: "Mon, 30 Nov 2026 10:00:00 UTC"}',
          '- name: other',
          '  cluster: {server: https://127.0.0.1:6443}',
          'users: [{name: demo, user: {token: t}}]',
          'contexts: [{name: demo, context: {cluster: demo, user: demo}}, {name: other, context: {cluster: other, user: demo}}]',
          'current-context: demo',
          '',
        ].join('\n'),
      );
      assert.equal((await loadKubeconfig({ kubeconfig: file })).clusterProvider, 'minikube.sigs.k8s.io');
      assert.equal((await loadKubeconfig({ kubeconfig: file, context: 'other' })).clusterProvider, undefined);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('image platform', () => {
  it('the same sources for another platform have another content hash', async () => {
    const { planContext } = await import('../../src/images/context.js');
    const amd = await planContext('micro-pay', 'node:22-alpine', undefined, 'linux/amd64');
    const arm = await planContext('micro-pay', 'node:22-alpine', undefined, 'linux/arm64');
    assert.notEqual(amd.tag, arm.tag);
    assert.equal(arm.platform, 'linux/arm64');
    assert.equal((await planContext('micro-pay', 'node:22-alpine', undefined, 'linux/arm64')).tag, arm.tag, 'stable');
  });
});

describe('installed Istio, as istioctl 1.8.4 leaves it', () => {
  // Just the three reads istioInstallation makes, over a fixed set of objects.
  const fakeKube = (objects: any[]) =>
    ({
      serves: async () => true,
      get: async (ref: any) => objects.find((o) => o.kind === ref.kind && o.metadata.name === ref.name && (o.metadata.namespace ?? undefined) === ref.namespace),
      list: async (_v: string, kind: string, opts: any = {}) => objects.filter((o) => o.kind === kind && (!opts.namespace || o.metadata.namespace === opts.namespace)),
    }) as any;
  const iop = (name: string, spec: any, labels?: Record<string, string>) => ({ kind: 'IstioOperator', metadata: { name, namespace: 'istio-system', labels }, spec });
  const istiod = (name: string, version: string) => ({ kind: 'Deployment', metadata: { name, namespace: 'istio-system', labels: { 'operator.istio.io/version': version } } });

  it('--set revision=canary: installed-state-canary, version from istiod-canary, tag kept apart', async () => {
    const { istioInstallation, revisionOf } = await import('../../src/demo/facts.js');
    assert.equal(revisionOf(['tag=x', 'revision=canary']), 'canary');
    const kube = fakeKube([iop('installed-state-canary', { profile: 'demo', tag: '1.8.4-custom', revision: 'canary' }), istiod('istiod-canary', '1.8.4')]);
    assert.deepEqual(await istioInstallation(kube, { revision: 'canary' }), {
      version: '1.8.4',
      profile: 'demo',
      tag: '1.8.4-custom',
      revision: 'canary',
      stateName: 'installed-state-canary',
      managedBy: undefined,
    });
    // asked for the default revision, the canary one still says Istio is there
    assert.equal((await istioInstallation(kube))?.stateName, 'installed-state-canary');
  });

  it('a custom tag with no istiod label: no version guessed from the tag', async () => {
    const { istioInstallation } = await import('../../src/demo/facts.js');
    const kube = fakeKube([iop('installed-state', { profile: 'demo', tag: 'my-build' }, { 'app.kubernetes.io/managed-by': 'meshdemo' })]);
    const found = await istioInstallation(kube);
    assert.equal(found?.version, undefined);
    assert.equal(found?.tag, 'my-build');
    assert.equal(found?.managedBy, 'meshdemo');
    assert.equal(await istioInstallation(fakeKube([])), undefined);
  });
});
