// meshdemo against tools that behave like the real ones (issue 10), on a REAL Kubernetes 1.20.2 API server and
// controller manager. Simulated: the node (test/support/node-simulator.ts) and istioctl, whose stand-in imitates
// istioctl 1.8.4 (test/support/istioctl-standin.ts: ignores --readiness-timeout, honours
// WAIT_FOR_RESOURCES_TIMEOUT, prints its real readiness failure and exits 1, progress on stderr).
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { withDemoCluster } from '../support/demo-cluster.js';
import { errorLines, runMeshdemo } from '../support/cli.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane');

describe('istioctl 1.8.4 as it really behaves', { skip }, () => {
  const demo = withDemoCluster({ name: 'real-tools', release: 'server', meshdemo: { env: (d) => ({ STANDIN_ENV_LOG: path.join(d.tmp, 'istioctl-env.log') }) } });
  const { api } = demo;
  let envLog: string;

  const meshdemo = (args: string[], env: Record<string, string> = {}) => demo.meshdemo(args, { env });
  const up = (args: string[] = [], env: Record<string, string> = {}) => meshdemo(['up', '--no-app', '--yes', '--istio-mirror', demo.server.url, ...args], env);
  const istioctlRuns = (): Array<{ argv: string[]; env: Record<string, string> }> =>
    fs.existsSync(envLog) ? fs.readFileSync(envLog, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
  const installs = () => istioctlRuns().filter((r) => r.argv[0] === 'install');

  before(() => {
    envLog = path.join(demo.tmp, 'istioctl-env.log');
  });

  it("istiod kept unready: istioctl's own readiness failure is exit 4 naming istiod and its pod's reason; istioctl got the deadline in its environment", async () => {
    demo.sim.setPodReadiness((pod) => pod.metadata?.labels?.app !== 'istiod');
    let r;
    try {
      r = await up(['--timeout', '40s']);
    } finally {
      demo.sim.setPodReadiness(() => true);
    }
    assert.equal(r.code, 4, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^error: istioctl install: Istiod not ready after 40s \(Deployment\/istio-system\/istiod\) — /);
    // meshdemo's own diagnosis under it
    assert.match(r.stderr, /Deployment istio-system\/istiod: 0\/1 available/);
    assert.match(r.stderr, /pod istiod-[a-z0-9-]+: Running — container discovery: ImagePullBackOff/);
    // istioctl 1.8.4 ignores --readiness-timeout: the deadline went in WAIT_FOR_RESOURCES_TIMEOUT (the flag stays for 1.9+)
    const [install] = installs();
    assert.equal(install.env.WAIT_FOR_RESOURCES_TIMEOUT, '40s');
    assert.deepEqual(install.argv.slice(install.argv.indexOf('--readiness-timeout'), install.argv.indexOf('--readiness-timeout') + 2), ['--readiness-timeout', '40s']);
    // a failed install saves no installed-state (install.go), so nothing claims Istio is there
    assert.equal((await api('/apis/install.istio.io/v1alpha1/namespaces/istio-system/istiooperators/installed-state')).status, 404);

    const again = await up();
    assert.equal(again.code, 0, again.stderr);
    assert.equal(installs().at(-1)!.env.WAIT_FOR_RESOURCES_TIMEOUT, '600s', 'the default --timeout (10m)');
  });

  it('a kubeconfig with relative certificate-authority and tokenFile works from another directory, for status and up (istioctl too)', async () => {
    const kdir = path.join(demo.tmp, 'kube');
    const elsewhere = path.join(demo.tmp, 'elsewhere');
    fs.mkdirSync(path.join(kdir, 'pki'), { recursive: true });
    fs.mkdirSync(elsewhere);
    fs.copyFileSync(demo.cp.caFile, path.join(kdir, 'pki', 'ca.crt'));
    fs.writeFileSync(path.join(kdir, 'admin.token'), `${demo.cp.adminToken}\n`);
    fs.writeFileSync(
      path.join(kdir, 'config'),
      [
        'apiVersion: v1',
        'kind: Config',
        `clusters: [{name: local, cluster: {server: "${demo.cp.server}", certificate-authority: pki/ca.crt}}]`,
        'users: [{name: admin, user: {tokenFile: admin.token}}]',
        'contexts: [{name: relative, context: {cluster: local, user: admin}}]',
        'current-context: relative',
        '',
      ].join('\n'),
    );
    // the kubeconfig named relative to the working directory, its references relative to itself
    const kubeconfig = path.join('..', 'kube', 'config');
    const status = await runMeshdemo(['--kubeconfig', kubeconfig, '--cache-dir', demo.cache, 'status', '--json'], { cwd: elsewhere });
    assert.equal(status.code, 0, status.stderr);
    assert.equal(status.events()[0].status.istio.installed, true);
    const again = await runMeshdemo(['--kubeconfig', kubeconfig, '--cache-dir', demo.cache, 'up', '--no-app', '--yes', '--reinstall', '--istio-mirror', demo.server.url], {
      cwd: elsewhere,
      env: { STANDIN_ENV_LOG: envLog },
    });
    assert.equal(again.code, 0, again.stderr);
    const install = installs().at(-1)!;
    assert.deepEqual(install.argv.slice(install.argv.indexOf('--kubeconfig'), install.argv.indexOf('--kubeconfig') + 4), ['--kubeconfig', kubeconfig, '--context', 'relative']);
  });

  it('a Service already holding a default dashboard port: up gives that dashboard another port and says so; the same port asked for with --node-port is exit 2', async () => {
    // tracing back to ClusterIP (as the addon ships it), and someone else's Service on its default port 31004
    const tracing = (await api('/api/v1/namespaces/istio-system/services/tracing')).body;
    const ports = tracing.spec.ports.map(({ nodePort: _n, ...p }: any) => p);
    const reverted = await api('/api/v1/namespaces/istio-system/services/tracing', 'PATCH', { spec: { type: 'ClusterIP', ports } }, 'application/merge-patch+json');
    assert.equal(reverted.status, 200, JSON.stringify(reverted.body));
    const holder = await api('/api/v1/namespaces/default/services', 'POST', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'holder' },
      spec: { type: 'NodePort', ports: [{ name: 'http', port: 80, nodePort: 31004 }] },
    });
    assert.equal(holder.status, 201, JSON.stringify(holder.body));
    try {
      const r = await up();
      assert.equal(r.code, 0, r.stderr);
      const live = (await api('/api/v1/namespaces/istio-system/services/tracing')).body;
      const port = live.spec.ports.find((p: any) => p.name === 'http-query').nodePort;
      assert.equal(live.spec.type, 'NodePort');
      assert.ok(port && port !== 31004, `tracing got ${port}`);
      assert.match(r.stderr, new RegExp(`node port 31004 for tracing is already used by Service default/holder: tracing got node port ${port} instead`));
      assert.match(r.stdout, new RegExp(`^ {2}tracing +http://127\\.0\\.0\\.1:${port}/jaeger$`, 'm'));
      assert.match(r.stdout, /^ {2}kiali +http:\/\/127\.0\.0\.1:31001\/kiali$/m, 'the other dashboards keep their defaults');

      // the port it chose is kept on the next run
      const again = await up();
      assert.equal(again.code, 0, again.stderr);
      assert.equal((await api('/api/v1/namespaces/istio-system/services/tracing')).body.spec.ports.find((p: any) => p.name === 'http-query').nodePort, port);
      assert.doesNotMatch(again.stderr, /already used/);

      // a port the user asked for is not replaced
      const explicit = await up(['--node-port', 'tracing=31004']);
      assert.equal(explicit.code, 2, explicit.stderr);
      assert.match(errorLines(explicit.stderr)[0], /^error: node port 31004 for tracing is already used by Service default\/holder — choose another port with --node-port tracing=<port>$/);
    } finally {
      await api('/api/v1/namespaces/default/services/holder', 'DELETE');
    }
  });

  it('--istio-set tag=1.8.4-custom: installs once; the second up finds it installed (installed-state has a tag, not a version)', async () => {
    const before = installs().length;
    const first = await up(['--istio-set', 'tag=1.8.4-custom', '--json']);
    assert.equal(first.code, 0, first.stderr);
    assert.equal(installs().length, before + 1, 'the tag changed: istioctl install ran');
    const iop = (await api('/apis/install.istio.io/v1alpha1/namespaces/istio-system/istiooperators/installed-state')).body;
    assert.equal(iop.spec.tag, '1.8.4-custom');
    assert.equal(iop.metadata.labels?.['operator.istio.io/version'], undefined, 'no version on installed-state: it comes from istiod');

    const second = await up(['--istio-set', 'tag=1.8.4-custom', '--json']);
    assert.equal(second.code, 0, second.stderr);
    assert.equal(installs().length, before + 1, 'no second istioctl install');
    const step = second.events().find((e) => e.type === 'step' && e.id === 'istio-install' && e.status !== 'start');
    assert.equal(step.status, 'skipped', JSON.stringify(step));
    assert.match(step.message ?? '', /Istio 1\.8\.4 \(profile demo, tag 1\.8\.4-custom\) is installed/);

    const status = await meshdemo(['status', '--json']);
    assert.equal(status.events()[0].status.istio.version, '1.8.4');
  });

  it("down says the purge is cluster-wide; down --force leaves an Istio meshdemo did not install", async () => {
    const down = await meshdemo(['down', '--yes']);
    assert.equal(down.code, 0, down.stderr);
    assert.match(down.stdout + down.stderr, /istioctl x uninstall --purge is cluster-wide: it deletes every IstioOperator and every object labelled operator\.istio\.io\/component in every namespace/);
    assert.equal((await api('/apis/apps/v1/namespaces/istio-system/deployments/istiod')).status, 404, 'meshdemo removed the Istio it installed');

    // someone installs Istio with istioctl themselves; there is no meshdemo record
    const istioctl = path.join(demo.cache, 'istio', '1.8.4', 'tree', 'istio-1.8.4', 'bin', 'istioctl');
    await promisify(execFile)(istioctl, ['install', '--set', 'profile=demo', '-y', '--kubeconfig', demo.kubeconfig, '--context', 'admin'], { env: { ...process.env, WAIT_FOR_RESOURCES_TIMEOUT: '120s' } });
    assert.equal((await api('/apis/install.istio.io/v1alpha1/namespaces/istio-system/istiooperators/installed-state')).status, 200);

    const runsBefore = istioctlRuns().length;
    const forced = await meshdemo(['down', '--yes', '--force']);
    assert.equal(forced.code, 0, forced.stderr);
    assert.match(forced.stdout + forced.stderr, /Istio 1\.8\.4 \(istio-system\/installed-state\) was not installed by meshdemo/);
    assert.equal((await api('/apis/install.istio.io/v1alpha1/namespaces/istio-system/istiooperators/installed-state')).status, 200, 'installed-state kept');
    assert.equal((await api('/apis/apps/v1/namespaces/istio-system/deployments/istiod')).status, 200, 'istiod kept');
    assert.equal((await api('/apis/apiextensions.k8s.io/v1/customresourcedefinitions/virtualservices.networking.istio.io')).status, 200, 'CRDs kept');
    assert.deepEqual(istioctlRuns().slice(runsBefore), [], 'istioctl x uninstall never ran');
  });
});
