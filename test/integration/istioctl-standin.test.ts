// Self-test of the release archive builder and the istioctl stand-in (test/support/release-archive.ts,
// test/support/istioctl-standin.ts), the install part against a real control plane + node simulator.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { list } from 'tar';
import type { V1Pod } from '@kubernetes/client-node';
import { extractArchiveSafely } from '../../src/download/extract.js';
import { apiRequest } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import { buildReleaseArchive, FIXTURES, type ReleaseArchive } from '../support/release-archive.js';
import { JWT_WARNING, planInstall, waitTimeoutMs } from '../support/istioctl-standin.js';
import { skipUnless } from '../support/requirements.js';

const skipCluster = skipUnless('control-plane');

interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function run(cmd: string, args: string[], env: NodeJS.ProcessEnv = {}, timeoutMs = 120_000): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
  });
}

const show = (r: RunResult) => `exit ${r.code}\n--- stdout\n${r.stdout}--- stderr\n${r.stderr}`;

let work: string;
let archive: ReleaseArchive;
let istioctl: string;

before(async () => {
  work = await mkdtemp(path.join(tmpdir(), 'meshdemo-standin-'));
  archive = await buildReleaseArchive({ outDir: path.join(work, 'out') });
  await extractArchiveSafely(archive.path, path.join(work, 'tree'));
  istioctl = path.join(work, 'tree', 'istio-1.8.4', 'bin', 'istioctl');
});

after(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('release archive', () => {
  it('is release-shaped, with a real-format .sha256 beside it', async () => {
    assert.equal(archive.name, 'istio-1.8.4-linux-amd64.tar.gz');
    const data = await readFile(archive.path);
    assert.equal(archive.bytes, data.length);
    assert.equal(archive.sha256, createHash('sha256').update(data).digest('hex'));
    // release-builder (release-1.8) pkg/util/files.go CreateSha: "%x %s\n", one space
    assert.equal(await readFile(`${archive.path}.sha256`, 'utf8'), `${archive.sha256} ${archive.name}\n`);

    const entries: string[] = [];
    await list({ file: archive.path, onReadEntry: (e) => entries.push(e.path) });
    assert.ok(entries.every((e) => e.startsWith('istio-1.8.4/')), entries.join('\n'));
    for (const f of [
      'bin/istioctl',
      'samples/addons/grafana.yaml',
      'samples/addons/jaeger.yaml',
      'samples/addons/kiali.yaml',
      'samples/addons/prometheus.yaml',
      'samples/addons/extras/zipkin.yaml',
      'samples/addons/extras/prometheus-operator.yaml',
      'manifests/profiles/demo.yaml',
      'manifests/charts/base/crds/crd-all.gen.yaml',
      'manifests/charts/base/files/gen-istio-cluster.yaml',
      'manifests/charts/istio-control/istio-discovery/files/gen-istio.yaml',
    ]) {
      assert.ok(entries.includes(`istio-1.8.4/${f}`), `missing ${f}`);
    }
    assert.ok(!entries.some((e) => e.includes('rendered')), 'rendered/ is not part of a real release');
    assert.equal((await stat(istioctl)).mode & 0o777, 0o755);
    // byte-identical to the fixtures
    for (const f of ['samples/addons/kiali.yaml', 'manifests/profiles/demo.yaml']) {
      assert.ok((await readFile(path.join(work, 'tree', 'istio-1.8.4', f))).equals(await readFile(path.join(FIXTURES, f))), f);
    }
  });

  it('honours version, assetName, padBytes and istioctlScript', async () => {
    const a = await buildReleaseArchive({
      outDir: path.join(work, 'out2'),
      version: '1.9.0',
      assetName: 'custom.tar.gz',
      padBytes: 3 * 1024 * 1024,
      istioctlScript: '#!/bin/sh\necho custom "$@"\n',
    });
    assert.equal(a.name, 'custom.tar.gz');
    assert.ok(a.bytes > 3 * 1024 * 1024, `padding is incompressible (${a.bytes} bytes)`);
    assert.match(await readFile(`${a.path}.sha256`, 'utf8'), /^[0-9a-f]{64} custom\.tar\.gz\n$/);
    await extractArchiveSafely(a.path, path.join(work, 'tree2'));
    const r = await run(path.join(work, 'tree2', 'istio-1.9.0', 'bin', 'istioctl'), ['version']);
    assert.equal(r.stdout, 'custom version\n');
  });

  it('a ~45 MB benchmark archive builds in reasonable time', async () => {
    const t0 = Date.now();
    const a = await buildReleaseArchive({ outDir: path.join(work, 'bench'), padBytes: 45 * 1024 * 1024 });
    console.log(`# 45 MB archive built in ${((Date.now() - t0) / 1000).toFixed(1)} s (${(a.bytes / 1048576).toFixed(1)} MB)`);
    assert.ok(a.bytes > 45 * 1024 * 1024);
    await rm(path.join(work, 'bench'), { recursive: true, force: true });
  });
});

describe('istioctl stand-in (no cluster)', () => {
  it('version --remote=false prints the version; STANDIN_VERSION overrides it', async () => {
    const r = await run(istioctl, ['version', '--remote=false']);
    assert.equal(r.code, 0, show(r));
    assert.equal(r.stdout, '1.8.4\n');
    const r2 = await run(istioctl, ['version', '--remote=false'], { STANDIN_VERSION: '1.7.0' });
    assert.equal(r2.stdout, '1.7.0\n');
  });

  it('an archive built for another version reports that version', async () => {
    const a = await buildReleaseArchive({ outDir: path.join(work, 'out3'), version: '1.9.1' });
    await extractArchiveSafely(a.path, path.join(work, 'tree3'));
    const r = await run(path.join(work, 'tree3', 'istio-1.9.1', 'bin', 'istioctl'), ['version', '--remote=false']);
    assert.equal(r.stdout, '1.9.1\n');
  });

  it('unknown commands and flags exit 64', async () => {
    for (const args of [['frobnicate'], [], ['x', 'nope'], ['install', '--bogus']]) {
      const r = await run(istioctl, args);
      assert.equal(r.code, 64, `${args.join(' ')}: ${show(r)}`);
      assert.match(r.stderr, /^Error: /);
    }
    assert.equal((await run(istioctl, ['frobnicate'])).stderr, 'Error: unknown command\n');
  });

  it('STANDIN_LOG records every invocation; STANDIN_FAIL fails install without contacting a cluster', async () => {
    const log = path.join(work, 'istioctl.log');
    const r = await run(istioctl, ['install', '--set', 'profile=demo', '-y', '--kubeconfig', '/nonexistent'], { STANDIN_LOG: log, STANDIN_FAIL: '1' });
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /Error: failed to install manifests: boom/);
    await run(istioctl, ['version', '--remote=false'], { STANDIN_LOG: log });
    const lines = (await readFile(log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines, [
      ['install', '--set', 'profile=demo', '-y', '--kubeconfig', '/nonexistent'],
      ['version', '--remote=false'],
    ]);
  });

  it('STANDIN_HANG prints one progress line (stderr) and sleeps until killed', async () => {
    const child = spawn(istioctl, ['install', '-y'], { env: { ...process.env, STANDIN_HANG: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    await new Promise<void>((resolve) => child.stderr.on('data', (d) => ((stdout += d), stdout.includes('Istio core.') && resolve())));
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(child.exitCode, null);
    child.kill('SIGTERM');
    const [code, signal] = await new Promise<[number | null, string | null]>((r) => child.once('close', (c, s) => r([c, s])));
    assert.equal(code, null);
    assert.equal(signal, 'SIGTERM');
    assert.equal(stdout, '\n- Processing resources for Istio core.');
  });

  it('WAIT_FOR_RESOURCES_TIMEOUT is read as a Go duration; an invalid one warns and falls back to 300 s (reconciler.go)', () => {
    assert.equal(waitTimeoutMs({}), 300_000);
    assert.equal(waitTimeoutMs({ WAIT_FOR_RESOURCES_TIMEOUT: '40s' }), 40_000);
    assert.equal(waitTimeoutMs({ WAIT_FOR_RESOURCES_TIMEOUT: '1m30s' }), 90_000);
    assert.equal(waitTimeoutMs({ WAIT_FOR_RESOURCES_TIMEOUT: '40' }), 300_000); // Go: missing unit
  });

  it('STANDIN_ENV_LOG records WAIT_FOR_RESOURCES_TIMEOUT as istioctl received it', async () => {
    const log = path.join(work, 'istioctl-env.log');
    await run(istioctl, ['install', '-y', '--kubeconfig', '/nonexistent'], { STANDIN_ENV_LOG: log, STANDIN_FAIL: '1', WAIT_FOR_RESOURCES_TIMEOUT: '41s' });
    const [line] = (await readFile(log, 'utf8')).trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(line.argv, ['install', '-y', '--kubeconfig', '/nonexistent']);
    assert.equal(line.env.WAIT_FOR_RESOURCES_TIMEOUT, '41s');
  });

  it('leaves out the injector webhook unless STANDIN_WITH_INJECTOR_WEBHOOK=1; keeps the fail-open validating webhook', () => {
    const kinds = (env: NodeJS.ProcessEnv) =>
      planInstall({ set: ['profile=demo'], env }).components.flatMap((c) => c.objects.map((o) => `${o.kind}/${o.metadata.name}`));
    const plain = kinds({});
    assert.ok(!plain.some((k) => k.startsWith('MutatingWebhookConfiguration/')));
    assert.ok(plain.includes('ValidatingWebhookConfiguration/istiod-istio-system')); // failurePolicy: Ignore in 1.8.4
    assert.ok(!plain.includes('HorizontalPodAutoscaler/istiod')); // demo: values.pilot.autoscaleEnabled=false
    assert.ok(plain.includes('CustomResourceDefinition/istiooperators.install.istio.io'));
    const withHook = kinds({ STANDIN_WITH_INJECTOR_WEBHOOK: '1' });
    assert.ok(withHook.includes('MutatingWebhookConfiguration/istio-sidecar-injector'));
  });
});

describe('istioctl stand-in against a real control plane', { skip: skipCluster, timeout: 600_000 }, () => {
  const demo = withDemoCluster({ name: 'standin-cluster' });
  let ca: Buffer;
  const gatewayPod = (pod: V1Pod) => /^istio-(ingress|egress)gateway$/.test(pod.metadata?.labels?.app ?? '');

  const get = (p: string) => apiRequest(demo.cp.server, { ca, token: demo.cp.adminToken, path: p });
  const kubeArgs = () => ['--kubeconfig', demo.kubeconfig, '--context', 'admin'];

  before(async () => {
    ca = await readFile(demo.cp.caFile);
  });

  it('install --set profile=demo -y installs the control plane and reports success', async () => {
    const r = await run(istioctl, ['install', '--set', 'profile=demo', '-y', '--readiness-timeout', '120s', ...kubeArgs()]);
    console.log(`# istioctl install (stand-in) took ${(r.ms / 1000).toFixed(1)} s`);
    assert.equal(r.code, 0, show(r));
    // operator/pkg/util/k8s.go: this API server serves serviceaccounts/token (third-party JWT), so no first-party
    // JWT note on stdout; progress.go + pb v3: progress on stderr, each message preceded (not followed) by a newline
    assert.equal(r.stdout, '');
    assert.ok(!r.stderr.includes(JWT_WARNING));
    const lines = r.stderr.split('\n');
    assert.equal(lines[0], '');
    for (const l of ['- Processing resources for Istio core.', '✔ Istio core installed', '✔ Istiod installed', '✔ Ingress gateways installed', '✔ Egress gateways installed', '- Pruning removed resources']) {
      assert.ok(lines.includes(l), `missing "${l}":\n${r.stderr}`);
    }
    assert.ok(r.stderr.endsWith('\n- Pruning removed resources\n✔ Installation complete'), r.stderr);
    // operator/cmd/mesh/shared.go createNamespace
    assert.equal((await get('/api/v1/namespaces/istio-system')).json().metadata.labels['istio-injection'], 'disabled');

    const iop = await get('/apis/install.istio.io/v1alpha1/namespaces/istio-system/istiooperators/installed-state');
    assert.equal(iop.status, 200, iop.body);
    const spec = iop.json().spec;
    assert.equal(spec.tag, '1.8.4');
    assert.equal(spec.profile, 'demo');
    assert.equal(iop.json().metadata.annotations['install.istio.io/ignoreReconcile'], 'true');
    assert.equal(iop.json().metadata.managedFields[0].manager, 'istioctl');

    const svc = (await get('/api/v1/namespaces/istio-system/services/istio-ingressgateway')).json();
    const http2 = svc.spec.ports.find((p: any) => p.name === 'http2');
    assert.equal(http2.port, 80);
    assert.ok(http2.nodePort >= 30000 && http2.nodePort <= 32767, JSON.stringify(http2));
    assert.equal(svc.spec.type, 'LoadBalancer');

    const crds = (await get('/apis/apiextensions.k8s.io/v1/customresourcedefinitions')).json().items.filter((c: any) => c.spec.group.endsWith('istio.io'));
    assert.equal(crds.length, 12);
    for (const c of crds) {
      assert.ok(c.status.conditions.some((x: any) => x.type === 'Established' && x.status === 'True'), c.metadata.name);
    }
    // x-kubernetes-* schema keys survive (raw requests, not client-node's serializer)
    const vs = crds.find((c: any) => c.metadata.name === 'virtualservices.networking.istio.io');
    assert.match(JSON.stringify(vs.spec), /x-kubernetes-preserve-unknown-fields/);

    const mwc = (await get('/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations')).json();
    assert.deepEqual(mwc.items.map((m: any) => m.metadata.name), []);
    const vwc = (await get('/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/istiod-istio-system')).json();
    assert.equal(vwc.webhooks[0].failurePolicy, 'Ignore');

    for (const d of ['istiod', 'istio-ingressgateway', 'istio-egressgateway']) {
      const dep = (await get(`/apis/apps/v1/namespaces/istio-system/deployments/${d}`)).json();
      assert.equal(dep.status.availableReplicas, 1, d);
      assert.equal(dep.metadata.labels['operator.istio.io/version'], '1.8.4');
    }
    const ingress = (await get('/apis/apps/v1/namespaces/istio-system/deployments/istio-ingressgateway')).json();
    assert.deepEqual(ingress.spec.template.metadata.labels.istio, 'ingressgateway');
    assert.equal(ingress.spec.template.spec.containers[0].image, 'docker.io/istio/proxyv2:1.8.4');
    const istiod = (await get('/apis/apps/v1/namespaces/istio-system/deployments/istiod')).json();
    assert.equal(istiod.spec.template.spec.containers[0].image, 'docker.io/istio/pilot:1.8.4');
    const ef = await get('/apis/networking.istio.io/v1alpha3/namespaces/istio-system/envoyfilters');
    assert.equal(ef.json().items.length, 12);
  });

  it('a second install is idempotent', async () => {
    const r = await run(istioctl, ['install', '--set', 'profile=demo', '-y', '--readiness-timeout', '60s', ...kubeArgs()]);
    console.log(`# second istioctl install (stand-in) took ${(r.ms / 1000).toFixed(1)} s`);
    assert.equal(r.code, 0, show(r));
  });

  it('times out like istioctl when gateway pods never become ready', async () => {
    demo.sim.setPodReadiness((pod) => !gatewayPod(pod));
    try {
      // wait until the simulator has marked the gateway pods unready
      const deadline = Date.now() + 30_000;
      for (;;) {
        const d = (await get('/apis/apps/v1/namespaces/istio-system/deployments/istio-ingressgateway')).json();
        if (!d.status.readyReplicas) break;
        assert.ok(Date.now() < deadline, 'gateway pods still ready');
        await new Promise((r) => setTimeout(r, 250));
      }
      // --readiness-timeout is parsed and ignored by 1.8.4; WAIT_FOR_RESOURCES_TIMEOUT bounds the wait
      const r = await run(istioctl, ['install', '--set', 'profile=demo', '-y', '--readiness-timeout', '1s', ...kubeArgs()], { WAIT_FOR_RESOURCES_TIMEOUT: '6s' });
      console.log(`# failing istioctl install (stand-in, WAIT_FOR_RESOURCES_TIMEOUT=6s) took ${(r.ms / 1000).toFixed(1)} s`);
      assert.equal(r.code, 1, show(r));
      assert.ok(
        r.stderr.includes(
          '\n✘ Ingress gateways encountered an error: failed to wait for resource: resources not ready after 6s: timed out waiting for the condition\nDeployment/istio-system/istio-ingressgateway\n',
        ),
        show(r),
      );
      assert.ok(r.stderr.includes('\n✔ Istiod installed'));
      assert.ok(!r.stderr.includes('✔ Installation complete'));
      // pb never ends its last message with a newline: cobra's error lands on the same line
      assert.ok(r.stderr.endsWith('\n- Pruning removed resourcesError: failed to install manifests: errors occurred during operation\n'), show(r));
    } finally {
      demo.sim.setPodReadiness(() => true);
    }
  });

  it('x uninstall --purge -y removes everything install created, and anything else labelled as Istio, cluster-wide', async () => {
    for (const [name, labels] of [['other-istio', { 'operator.istio.io/component': 'Pilot' }], ['unrelated', {}]] as const) {
      const c = await apiRequest(demo.cp.server, { ca, token: demo.cp.adminToken, path: '/api/v1/namespaces/default/configmaps', method: 'POST', body: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name, labels } } });
      assert.equal(c.status, 201, c.body);
    }
    const r = await run(istioctl, ['x', 'uninstall', '--purge', '-y', ...kubeArgs()]);
    console.log(`# istioctl x uninstall --purge (stand-in) took ${(r.ms / 1000).toFixed(1)} s`);
    assert.equal(r.code, 0, show(r));
    assert.ok(r.stdout.startsWith('All Istio resources will be pruned from the cluster\n\n'), show(r));
    assert.equal(r.stderr, '\n✔ Uninstall complete');
    assert.match(r.stdout, /^ {2}Removed IstioOperator:istio-system:installed-state\.$/m);
    // prune.go GetPrunedResources: by label, in every namespace — not only what this install created
    assert.equal((await get('/api/v1/namespaces/default/configmaps/other-istio')).status, 404, 'labelled object elsewhere purged too');
    assert.equal((await get('/api/v1/namespaces/default/configmaps/unrelated')).status, 200, 'unlabelled object kept');
    for (const p of [
      '/apis/install.istio.io/v1alpha1/namespaces/istio-system/istiooperators/installed-state',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/istiooperators.install.istio.io',
      '/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualservices.networking.istio.io',
      '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations/istiod-istio-system',
      '/apis/rbac.authorization.k8s.io/v1/clusterroles/istiod-istio-system',
      '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/istiod-istio-system',
      '/apis/apps/v1/namespaces/istio-system/deployments/istiod',
      '/apis/apps/v1/namespaces/istio-system/deployments/istio-ingressgateway',
      '/apis/apps/v1/namespaces/istio-system/deployments/istio-egressgateway',
      '/api/v1/namespaces/istio-system/services/istio-ingressgateway',
      '/api/v1/namespaces/istio-system/configmaps/istio',
    ]) {
      assert.equal((await get(p)).status, 404, p);
    }
    const crds = (await get('/apis/apiextensions.k8s.io/v1/customresourcedefinitions')).json().items;
    assert.deepEqual(crds.filter((c: any) => c.spec.group.endsWith('istio.io')).map((c: any) => c.metadata.name), []);
    // like the real istioctl, the namespace stays
    assert.equal((await get('/api/v1/namespaces/istio-system')).status, 200);

    // nothing left to remove: still fine
    const again = await run(istioctl, ['x', 'uninstall', '--purge', '-y', ...kubeArgs()]);
    assert.equal(again.code, 0, show(again));
    assert.equal(again.stdout, 'All Istio resources will be pruned from the cluster\n\n');
    assert.equal(again.stderr, '\n✔ Uninstall complete');
  });

  it('uses KUBECONFIG when --kubeconfig is not given, and rejects an unknown --context', async () => {
    const r = await run(istioctl, ['install', '--set', 'profile=demo', '-y', '--context', 'nope'], { KUBECONFIG: demo.kubeconfig });
    assert.equal(r.code, 1, show(r));
    assert.match(r.stderr, /context "nope" does not exist/);
    assert.ok(existsSync(demo.kubeconfig));
  });
});
