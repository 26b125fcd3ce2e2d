// The Istio half of `meshdemo up` (--no-app) against a REAL Kubernetes 1.20.2 API server and controller
// manager, a REAL local HTTP server serving a release-shaped archive, and the REAL Istio 1.8.4 addon YAML.
// Simulated: the node (test/support/node-simulator.ts marks pods Ready) and istioctl (a stand-in inside the
// archive that applies the real rendered control-plane manifests: test/support/istioctl-standin.ts).
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { withDemoCluster } from '../support/demo-cluster.js';
import { FIXTURES } from '../support/release-archive.js';
import { startReleaseServer } from '../support/release-server.js';
import { errorLines, runMeshdemo } from '../support/cli.js';
import { snapshotCluster } from '../support/snapshot.js';
import { rawTarGz } from '../support/raw-tar.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane');
const ASSET = '1.8.4/istio-1.8.4-linux-amd64.tar.gz';

describe('Istio half of up on a real API server', { skip }, () => {
  const demo = withDemoCluster({ name: 'istio', release: 'server', meshdemo: { env: (d) => ({ STANDIN_LOG: path.join(d.tmp, 'istioctl.log') }) } });
  const { api } = demo;
  let standinLog: string;

  const up = (args: string[] = [], opts: { cacheDir?: string; env?: Record<string, string> } = {}) =>
    demo.meshdemo(['up', '--no-app', '--yes', '--istio-mirror', demo.server.url, ...args], opts);
  const istioctlRuns = () => (fs.existsSync(standinLog) ? fs.readFileSync(standinLog, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);

  before(() => {
    standinLog = path.join(demo.tmp, 'istioctl.log');
  });

  it('refuses a wrong checksum: exit 5, nothing extracted, istioctl never run, cluster unchanged', async () => {
    const before = await snapshotCluster(demo.cp);
    demo.server.setMode({ wrongChecksum: true });
    const badCache = path.join(demo.tmp, 'bad-cache');
    const r = await up([], { cacheDir: badCache });
    demo.server.setMode({ wrongChecksum: false });
    assert.equal(r.code, 5, r.stderr);
    const [line] = errorLines(r.stderr);
    assert.match(line, new RegExp(`${demo.server.url.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}.*sha256`));
    assert.ok(!fs.existsSync(path.join(badCache, 'istio', '1.8.4', 'tree')), 'nothing extracted');
    assert.deepEqual(fs.readdirSync(path.join(badCache, 'istio', '1.8.4')), [], 'no partial archive kept');
    assert.deepEqual(istioctlRuns(), []);
    assert.deepEqual(await snapshotCluster(demo.cp), before);
  });

  it('refuses a malicious archive: nothing written outside the cache, exit 5', async () => {
    const evilDir = path.join(demo.tmp, 'evil');
    fs.mkdirSync(evilDir);
    const evil = rawTarGz([
      { path: 'istio-1.8.4/bin/istioctl', mode: 0o755, body: '#!/bin/sh\necho 1.8.4\n' },
      { path: 'istio-1.8.4/../../../escaped.txt', body: 'owned' },
    ]);
    const evilServer = await startReleaseServer({ [ASSET]: evil });
    try {
      const evilCache = path.join(evilDir, 'a', 'b', 'cache');
      const r = await runMeshdemo(['--kubeconfig', demo.kubeconfig, '--cache-dir', evilCache, 'up', '--no-app', '--yes', '--istio-mirror', evilServer.url]);
      assert.equal(r.code, 5, r.stderr);
      assert.match(errorLines(r.stderr)[0], /escaped\.txt|\.\./);
      const everything = fs.readdirSync(evilDir, { recursive: true }).map(String);
      assert.ok(!everything.some((p) => p.endsWith('escaped.txt')), `escaped: ${everything.join(', ')}`);
      assert.ok(!fs.existsSync(path.join(evilCache, 'istio', '1.8.4', 'tree')));
    } finally {
      await evilServer.close();
    }
  });

  it('a full up --no-app from an empty cluster: resumed download, install, label, addons, dashboards', async () => {
    demo.server.requests.length = 0;
    demo.server.setMode({ dropAfterBytes: Math.floor(demo.archive.bytes / 2), dropOnce: true });
    const r = await up(['--json']);
    demo.server.setMode({ dropAfterBytes: undefined, dropOnce: false });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const events = r.events();
    const done = events.filter((e) => e.type === 'step' && e.status === 'done').map((e) => e.id);
    // the addons, the label and the dashboards run beside the install (src/core/runner.ts `after`): finished in any order
    assert.deepEqual([...done].sort(), ['preflight', 'istio-download', 'istio-namespace', 'istio-install', 'namespace-label', 'addons', 'dashboards'].sort());
    assert.ok(demo.server.requests.some((q) => q.path.endsWith('.tar.gz') && q.range?.startsWith('bytes=')), 'download resumed with a Range request');

    // istioctl ran once, with the profile, our kubeconfig and context
    const runs = istioctlRuns().filter((a) => a[0] === 'install');
    assert.equal(runs.length, 1);
    assert.deepEqual(runs[0].slice(0, 3), ['install', '--set', 'profile=demo']);
    assert.ok(runs[0].includes('-y') && runs[0].includes('--readiness-timeout'));
    assert.equal(runs[0][runs[0].indexOf('--kubeconfig') + 1], demo.kubeconfig);
    assert.equal(runs[0][runs[0].indexOf('--context') + 1], 'admin');
    // this API server serves serviceaccounts/token: istioctl 1.8.4 uses third-party JWT and prints no fallback note
    assert.ok(!events.some((e) => e.type === 'log' && /third party JWT/.test(e.message)), 'no JWT fallback on a cluster with TokenRequest');

    const iop = await api('/apis/install.istio.io/v1alpha1/namespaces/istio-system/istiooperators/installed-state');
    assert.equal(iop.body.spec.tag, '1.8.4');
    const ns = await api('/api/v1/namespaces/default');
    assert.equal(ns.body.metadata.labels['istio-injection'], 'enabled');
    for (const d of ['prometheus', 'grafana', 'jaeger', 'kiali']) {
      const dep = await api(`/apis/apps/v1/namespaces/istio-system/deployments/${d}`);
      assert.equal(dep.body.status.availableReplicas, 1, `${d} available`);
    }
    const ports: Record<string, [string, number]> = { kiali: ['http', 31001], grafana: ['service', 31002], prometheus: ['http', 31003], tracing: ['http-query', 31004] };
    for (const [svc, [portName, nodePort]] of Object.entries(ports)) {
      const s = await api(`/api/v1/namespaces/istio-system/services/${svc}`);
      assert.equal(s.body.spec.type, 'NodePort', svc);
      assert.equal(s.body.spec.ports.find((p: any) => p.name === portName).nodePort, nodePort, svc);
    }
    const result = events.at(-1);
    assert.equal(result.urls.kiali, 'http://127.0.0.1:31001/kiali');
    assert.equal(result.urls.grafana, 'http://127.0.0.1:31002/');
    assert.equal(result.urls.gateway, undefined, '--no-app prints no gateway URL');
  });

  it('established the Kiali CRD before any MonitoringDashboard, with its definition intact', async () => {
    const file = yaml.loadAll(fs.readFileSync(path.join(FIXTURES, 'samples/addons/kiali.yaml'), 'utf8')) as any[];
    const crdFile = file.find((d) => d?.kind === 'CustomResourceDefinition');
    const live = await api(`/apis/apiextensions.k8s.io/v1beta1/customresourcedefinitions/${crdFile.metadata.name}`);
    for (const key of ['group', 'names', 'scope', 'versions']) {
      assert.deepEqual(pick(live.body.spec[key], crdFile.spec[key]), crdFile.spec[key], `spec.${key}`);
    }
    const established = live.body.status.conditions.find((c: any) => c.type === 'Established');
    const dashboards = (await api('/apis/monitoring.kiali.io/v1alpha1/namespaces/istio-system/monitoringdashboards')).body.items;
    assert.equal(dashboards.length, file.filter((d) => d?.kind === 'MonitoringDashboard').length, 'every MonitoringDashboard, in istio-system');
    for (const d of dashboards) assert.ok(Date.parse(d.metadata.creationTimestamp) >= Date.parse(established.lastTransitionTime));
  });

  it('a second up downloads nothing and changes nothing: every step skipped', async () => {
    const rv = async () => {
      const out: Record<string, string> = {};
      for (const p of ['/api/v1/namespaces/istio-system/services', '/apis/apps/v1/namespaces/istio-system/deployments', '/api/v1/namespaces', '/api/v1/namespaces/default/configmaps']) {
        for (const i of (await api(p)).body.items) out[`${p}/${i.metadata.name}`] = i.metadata.resourceVersion;
      }
      return out;
    };
    const before = await rv();
    demo.server.requests.length = 0;
    const installsBefore = istioctlRuns().filter((a) => a[0] === 'install').length;
    const r = await up(['--json', '--verbose']);
    assert.equal(r.code, 0, r.stderr);
    const steps = r.events().filter((e) => e.type === 'step' && e.status !== 'start');
    assert.deepEqual(steps.filter((s) => s.status !== 'skipped').map((s) => s.id), ['preflight'], 'only the read-only preflight ran');
    // --verbose traces every API request: a no-op up reads the cluster in a few lists, and writes nothing
    const requests = r.events().filter((e) => e.type === 'log' && e.level === 'debug' && /^[A-Z]+ \/\S* \d{3} \d+ms$/.test(e.message)).map((e) => e.message);
    assert.ok(requests.length >= 5 && requests.length <= 15, `at most 15 API requests, got ${requests.length}:\n${requests.join('\n')}`);
    const writes = requests.filter((m) => !m.startsWith('GET ') && !m.startsWith('POST /apis/authorization.k8s.io/'));
    assert.deepEqual(writes, [], 'nothing but reads and access reviews');
    assert.equal(demo.server.requests.length, 0, 'no download request');
    assert.equal(istioctlRuns().filter((a) => a[0] === 'install').length, installsBefore, 'istioctl install not run again');
    assert.deepEqual(await rv(), before, 'no resourceVersion changed');
  });

  it('plan sees a deleted addon ConfigMap as missing (its check lists configmaps by name alone), and up puts it back', async () => {
    const dashboards = '/api/v1/namespaces/istio-system/configmaps/istio-grafana-dashboards';
    assert.equal((await api(dashboards, 'DELETE')).status, 200);
    const plan = await demo.meshdemo(['plan', '--no-app', '--json']);
    assert.equal(plan.code, 0, plan.stderr);
    const addons = plan.events().at(-1).steps.find((s: { id: string }) => s.id === 'addons');
    assert.equal(addons.satisfied, false);
    assert.match(addons.detail, /^1 of \d+ addon objects missing$/);
    const r = await up();
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await api(dashboards)).status, 200, 'the ConfigMap is back');
    const again = await demo.meshdemo(['plan', '--no-app', '--json']);
    assert.equal(again.events().at(-1).steps.find((s: { id: string }) => s.id === 'addons').satisfied, true);
  });

  it('expose kiali prints the URL; a taken node port names the Service holding it; out of range is refused before any change', async () => {
    const r = await runMeshdemo(['--kubeconfig', demo.kubeconfig, 'expose', 'kiali']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /kiali\s+http:\/\/127\.0\.0\.1:31001\/kiali/);

    const holder = await api('/api/v1/namespaces/default/services', 'POST', {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'port-holder' },
      spec: { type: 'NodePort', selector: { app: 'x' }, ports: [{ port: 80, nodePort: 31777 }] },
    });
    assert.equal(holder.status, 201);
    const before = await snapshotCluster(demo.cp);
    const taken = await runMeshdemo(['--kubeconfig', demo.kubeconfig, 'expose', 'grafana', '--node-port', '31777']);
    assert.equal(taken.code, 2, taken.stderr);
    assert.match(errorLines(taken.stderr)[0], /node port 31777 for grafana is already used by Service default\/port-holder — choose another port/);
    const outside = await runMeshdemo(['--kubeconfig', demo.kubeconfig, 'expose', 'grafana', '--node-port', '8080']);
    assert.equal(outside.code, 2, outside.stderr);
    assert.match(errorLines(outside.stderr)[0], /outside the cluster's NodePort range 30000-32767/);
    assert.deepEqual(await snapshotCluster(demo.cp), before);
    await api('/api/v1/namespaces/default/services/port-holder', 'DELETE');

    const moved = await runMeshdemo(['--kubeconfig', demo.kubeconfig, 'expose', 'grafana', '--node-port', '32000', '--node-address', 'demo.example']);
    assert.equal(moved.code, 0, moved.stderr);
    assert.match(moved.stdout, /grafana\s+http:\/\/demo\.example:32000\//);
  });

  it('a readiness timeout names the unready Deployment and its pod\'s reason (exit 4)', async () => {
    demo.sim.setPodReadiness((pod) => pod.metadata?.labels?.app !== 'kiali');
    try {
      await api('/apis/apps/v1/namespaces/istio-system/deployments/kiali', 'DELETE');
      const r = await up(['--timeout', '8s']);
      assert.equal(r.code, 4, r.stderr);
      assert.match(errorLines(r.stderr)[0], /istio-system\/kiali not ready before the deadline/);
      assert.match(r.stderr, /Deployment istio-system\/kiali: 0\/1 available/);
      assert.match(r.stderr, /pod kiali-[a-z0-9-]+: Running — container kiali: ImagePullBackOff/);
    } finally {
      demo.sim.setPodReadiness(() => true);
    }
    const again = await up();
    assert.equal(again.code, 0, again.stderr);
  });

  it('status shows what up did', async () => {
    const r = await runMeshdemo(['--kubeconfig', demo.kubeconfig, '--cache-dir', demo.cache, 'status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(!r.events().some((e) => e.type === 'log' && e.level === 'debug'), 'no request trace without --verbose');
    const { status } = r.events()[0];
    assert.equal(status.istio.installed, true);
    assert.equal(status.istio.version, '1.8.4');
    assert.equal(status.istio.profile, 'demo');
    assert.equal(status.istio.istioctl, path.join(demo.cache, 'istio/1.8.4/tree/istio-1.8.4/bin/istioctl'));
    assert.equal(status.namespace.injection, 'enabled');
    assert.deepEqual(status.addons.filter((a: any) => a.ready).map((a: any) => a.name).sort(), ['grafana', 'jaeger', 'kiali', 'prometheus']);
    assert.ok(status.dashboards.some((d: any) => d.name === 'kiali' && d.url === 'http://127.0.0.1:31001/kiali'));
    assert.match(status.gatewayUrl, /^http:\/\/127\.0\.0\.1:\d+\/api\/order\/create$/);
    // --verbose in a terminal-less run: each API request on stderr, one list per kind and namespace
    const verbose = await runMeshdemo(['--kubeconfig', demo.kubeconfig, '--cache-dir', demo.cache, 'status', '--verbose']);
    assert.equal(verbose.code, 0, verbose.stderr);
    const traced = verbose.stderr.split('\n').filter((l) => /\b(GET|POST) \/\S* \d{3} \d+ms$/.test(l));
    assert.ok(traced.some((l) => /GET \/version 200 \d+ms$/.test(l)), verbose.stderr);
    assert.equal(traced.filter((l) => /GET \/apis\/apps\/v1\/namespaces\/istio-system\/deployments 200/.test(l)).length, 1, 'the addon Deployments in one list');
    assert.ok(traced.length <= 12, `status asks at most 12 requests, got ${traced.length}:\n${traced.join('\n')}`);
  });

  it('meshdemo istioctl passes arguments, kubeconfig and exit code through', async () => {
    const base = ['--kubeconfig', demo.kubeconfig, '--cache-dir', demo.cache, 'istioctl'];
    const printed = await runMeshdemo([...base, '--print-path']);
    assert.equal(printed.stdout.trim(), path.join(demo.cache, 'istio/1.8.4/tree/istio-1.8.4/bin'));
    const version = await runMeshdemo([...base, '--', 'version', '--remote=false'], { env: { STANDIN_LOG: standinLog } });
    assert.equal(version.code, 0);
    assert.match(version.stdout, /1\.8\.4/);
    assert.deepEqual(istioctlRuns().at(-1), ['version', '--remote=false', '--kubeconfig', demo.kubeconfig, '--context', 'admin']);
    const unknown = await runMeshdemo([...base, '--', 'frobnicate']);
    assert.equal(unknown.code, 64, 'istioctl usage error code passed through');
  });
});

/** The live value restricted to the keys the file sets (the server adds defaults). */
function pick(live: any, file: any): any {
  if (Array.isArray(file)) return file.map((f, i) => pick(live?.[i], f));
  if (file && typeof file === 'object') return Object.fromEntries(Object.keys(file).map((k) => [k, pick(live?.[k], file[k])]));
  return live;
}
