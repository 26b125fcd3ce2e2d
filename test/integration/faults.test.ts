// Faults during `meshdemo up --no-app`, against a REAL Kubernetes 1.20.2 API server and controller manager, a REAL
// local HTTP server serving a release-shaped archive, and the REAL Istio 1.8.4 addon YAML. Simulated: the node
// (test/support/node-simulator.ts) and istioctl (the stand-in in the archive, test/support/istioctl-standin.ts,
// which fails with STANDIN_FAIL=1 and hangs with STANDIN_HANG=1).
//
// In order: istioctl fails → istioctl hangs past its deadline → Ctrl-C while it hangs → the next up resumes and
// lives through an API server restart during the addons → RBAC taken away during the addons.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import yaml from 'js-yaml';
import { serviceAccountToken } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import { errorLines, type CliResult } from '../support/cli.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane');
const ADDON_DEPLOYMENTS = ['prometheus', 'grafana', 'jaeger', 'kiali'];
const STACK = /^\s+at .*(:\d+:\d+\)?|\(node:.*\))$/m;

/** PIDs of live processes whose command line contains every marker. */
function processesWith(...markers: string[]): number[] {
  const pids: number[] = [];
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const cmdline = fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (/\) Z /.test(stat)) continue; // a zombie is no longer running
      if (markers.every((m) => cmdline.includes(m))) pids.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return pids;
}

const stepsStarted = (r: CliResult) => r.events().filter((e) => e.type === 'step' && e.status === 'start').map((e) => e.id);
const stepStatus = (r: CliResult, id: string) => r.events().find((e) => e.type === 'step' && e.id === id && e.status !== 'start')?.status;

describe('faults during up', { skip }, () => {
  const demo = withDemoCluster({ name: 'faults', release: 'server', meshdemo: { env: (d) => ({ STANDIN_LOG: path.join(d.tmp, 'istioctl.log') }), timeoutMs: 240_000 } });
  const { api } = demo;
  /** The control plane's kubeconfig (kept for after(), which runs once the demo cluster is stopped). */
  let kubeconfig: string;

  const up = (args: string[], opts: { env?: Record<string, string>; onEvent?: (e: any, child: ChildProcess) => void; kubeconfig?: string } = {}) =>
    demo.meshdemo(['--json', 'up', '--no-app', '--yes', '--istio-mirror', demo.server.url, ...args], opts);
  /** The stand-in istioctl install processes of this file's runs (its kubeconfig path is unique to this file). */
  const istioctlInstalls = () => processesWith('istioctl-standin.js', 'install', kubeconfig);
  const waitNoIstioctl = async () => {
    for (let i = 0; i < 50 && istioctlInstalls().length; i++) await sleep(100);
    return istioctlInstalls();
  };
  const injectionLabel = async () => (await api('/api/v1/namespaces/default')).body.metadata.labels?.['istio-injection'];
  const addonDeployments = async () =>
    ((await api('/apis/apps/v1/namespaces/istio-system/deployments')).body.items ?? []).map((d: any) => d.metadata.name).filter((n: string) => ADDON_DEPLOYMENTS.includes(n));
  /**
   * The label and the addons are set beside the install (src/core/runner.ts `after`): when it fails they may be
   * there, but never without meshdemo's record of them, which down uses. What is there without a record, listed.
   */
  const unrecorded = async () => {
    const cm = await api('/api/v1/namespaces/default/configmaps/meshdemo-inventory');
    const record = cm.status === 200 ? JSON.parse(cm.body.data['inventory.json']) : { created: [], changed: [], createdNamespaces: [] };
    const out: string[] = [];
    const labelled = (await injectionLabel()) !== undefined;
    const labelRecorded = record.createdNamespaces.includes('default') || record.changed.some((c: any) => c.ref.kind === 'Namespace' && c.ref.name === 'default' && 'label:istio-injection' in c.previous);
    if (labelled && !labelRecorded) out.push('label istio-injection on default');
    for (const d of await addonDeployments()) {
      if (!record.created.some((c: any) => c.kind === 'Deployment' && c.namespace === 'istio-system' && c.name === d)) out.push(`Deployment/istio-system/${d}`);
    }
    return out;
  };

  before(() => {
    kubeconfig = demo.kubeconfig;
  });
  after(() => {
    for (const pid of istioctlInstalls()) process.kill(pid, 'SIGKILL'); // only if a test failed half-way
  });

  it('istioctl fails: exit 6 with its last output; what ran beside it is stopped and recorded; nothing after it runs', async () => {
    const r = await up([], { env: { STANDIN_FAIL: '1' } });
    assert.equal(r.code, 6, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^error: istioctl install --set profile=demo failed with exit code 1 — its last output is shown below/);
    // the last lines istioctl printed, under the error line
    const after = r.stderr.slice(r.stderr.indexOf(lines[0]));
    assert.match(after, /^ {2}✘ Istio core encountered an error: boom$/m);
    // pb ends no message with a newline: cobra's error follows the last one on the same line, unless it came in a
    // later write (then meshdemo shows the pending message on its own after a pause)
    assert.match(after, /^ {2}(- Pruning removed resources)?Error: failed to install manifests: boom$/m);
    assert.doesNotMatch(r.stderr, STACK);
    assert.equal(stepStatus(r, 'istio-install'), 'failed');
    assert.deepEqual(r.events().at(-1), { type: 'result', ok: false, exitCode: 6, error: lines[0].slice('error: '.length), details: r.events().at(-1).details });
    assert.deepEqual(await unrecorded(), [], 'nothing changed without a record');
  });

  it('istioctl hangs: stopped after the longest istioctl 1.8.4 can wait + grace, exit 4 with its last output; nothing after it runs', async () => {
    const started = Date.now();
    // --timeout 5s: istioctl gets its minimum wait of 30s per component (WAIT_FOR_RESOURCES_TIMEOUT); it may take
    // 60s for its CRDs + 30s for Istiod + 30s for the gateways; the grace (default max(30s, 20%)) is 2s here
    const r = await up(['--timeout', '5s'], { env: { STANDIN_HANG: '1', MESHDEMO_ISTIOCTL_GRACE: '2s' } });
    const took = Date.now() - started;
    assert.equal(r.code, 4, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^error: istioctl install --set profile=demo did not finish within the deadline \(122s: 60s for its CRDs \+ 2 × its 30s readiness wait \+ 2s grace\) and was stopped — /);
    assert.match(r.stderr.slice(r.stderr.indexOf(lines[0])), /^ {2}- Processing resources for Istio core\.$/m, 'its last output');
    assert.doesNotMatch(r.stderr, STACK);
    assert.ok(took >= 122_000, `took ${took} ms`);
    assert.equal(stepStatus(r, 'istio-install'), 'failed');
    assert.equal(stepStatus(r, 'istio-download'), 'skipped', 'the release is cached');
    assert.deepEqual(await waitNoIstioctl(), [], 'the hung istioctl was killed');
    assert.deepEqual(await unrecorded(), [], 'nothing changed without a record');
  });

  it('Ctrl-C while istioctl hangs: istioctl is killed, exit 130', async () => {
    let sent = false;
    const r = await up([], {
      env: { STANDIN_HANG: '1' },
      onEvent: (e, child) => {
        if (!sent && e.type === 'log' && e.step === 'istio-install' && /Processing resources for Istio core/.test(e.message)) {
          sent = true;
          assert.equal(istioctlInstalls().length, 1, 'istioctl is running');
          child.kill('SIGINT');
        }
      },
    });
    assert.ok(sent, 'istioctl started');
    assert.equal(r.code, 130, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /^error: interrupted/);
    assert.equal(stepStatus(r, 'istio-install'), 'failed');
    assert.equal(r.events().at(-1).exitCode, 130);
    assert.deepEqual(await waitNoIstioctl(), [], 'istioctl was killed with meshdemo');
    assert.equal((await api('/apis/coordination.k8s.io/v1/namespaces/default/leases/meshdemo-lock')).status, 404, 'the lock was released');
  });

  it('the next up resumes (no download) and completes; one that lives through an API server restart during the addons too; a re-run has nothing to do', async (tc) => {
    const downloadsBefore = demo.server.requests.length;
    const resumed = await up([]);
    assert.equal(resumed.code, 0, resumed.stderr);
    assert.equal(demo.server.requests.length, downloadsBefore, 'nothing downloaded');
    assert.equal(stepStatus(resumed, 'istio-download'), 'skipped');
    assert.equal(stepStatus(resumed, 'istio-install'), 'done');

    // the addons run beside istioctl, which (like client-go) does not live through a restart: with Istio installed,
    // the addons step runs alone once its Deployments are gone
    for (const d of ADDON_DEPLOYMENTS) assert.equal((await api(`/apis/apps/v1/namespaces/istio-system/deployments/${d}`, 'DELETE')).status, 200);
    const t: Record<string, number> = {};
    let restart: Promise<void> | undefined;
    // once the addons step has started and the install step has ended (skipped): the addons then run alone
    const seen = new Set<string>();
    const r = await up([], {
      onEvent: (e) => {
        if (e.type === 'step' && (e.id === 'istio-install' ? e.status !== 'start' : e.id === 'addons' && e.status === 'start')) seen.add(e.id);
        if (seen.has('istio-install') && seen.has('addons') && !restart) {
          restart = (async () => {
            await demo.cp.stopApiServer();
            t.stopped = Date.now();
            await sleep(2000);
            await demo.cp.startApiServer();
            t.started = Date.now();
          })();
        }
        if (e.type === 'step' && e.id === 'addons' && e.status !== 'start') t.addonsEnded = Date.now();
      },
    });
    assert.ok(restart, 'the addons step started');
    await restart;
    tc.diagnostic(`up exit ${r.code}; API server down ${((t.started - t.stopped) / 1000).toFixed(1)}s; addons step ended ${((t.addonsEnded - t.stopped) / 1000).toFixed(1)}s after it went away`);
    assert.equal(stepStatus(r, 'istio-install'), 'skipped');
    // the step (polling its Deployments) was still running when the API server had been gone for 2 s
    assert.ok(t.addonsEnded > t.stopped + 2000, 'the API server went away while the addons step ran');
    // the run completes: its requests (and its lock's renewals) were retried until the API server was back
    assert.equal(r.code, 0, r.stderr);
    assert.equal(stepStatus(r, 'addons'), 'done', 'its requests were retried until the API server was back');
    assert.doesNotMatch(r.stderr, STACK);

    const again = await up([]);
    assert.equal(again.code, 0, again.stderr);
    const statuses = again.events().filter((e) => e.type === 'step' && e.status !== 'start');
    assert.ok(statuses.every((s) => s.status === 'done' || s.status === 'skipped'), JSON.stringify(statuses));
    assert.deepEqual(statuses.filter((s) => s.id !== 'preflight').map((s) => `${s.id}:${s.status}`).sort(), ['istio-download', 'istio-namespace', 'namespace-label', 'istio-install', 'addons', 'dashboards'].map((id) => `${id}:skipped`).sort(), 'after the up that lived through the restart, nothing is left to do');
    assert.equal(await injectionLabel(), 'enabled');
    for (const d of ADDON_DEPLOYMENTS) {
      const dep = (await api(`/apis/apps/v1/namespaces/istio-system/deployments/${d}`)).body;
      assert.equal(dep.status?.availableReplicas, 1, `${d} available`);
    }
    assert.equal((await api('/api/v1/namespaces/istio-system/services/kiali')).body.spec.type, 'NodePort');
  });

  it('permission taken away during the addons: exit 3 naming verb and resource; the inventory stays true', async (tc) => {
    const ns = 'faults-rbac';
    const rbac = '/apis/rbac.authorization.k8s.io/v1';
    const sa = { kind: 'ServiceAccount', name: 'meshdemo-limited', namespace: 'kube-system' };
    // a third identity: a ServiceAccount (1.20 makes its token Secret), with all up needs except creating Deployments,
    // which two RoleBindings grant in istio-system and in the app namespace
    assert.equal((await api('/api/v1/namespaces', 'POST', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns } })).status, 201);
    assert.equal((await api('/api/v1/namespaces/kube-system/serviceaccounts', 'POST', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa.name } })).status, 201);
    const groups = ['', 'apiextensions.k8s.io', 'rbac.authorization.k8s.io', 'admissionregistration.k8s.io', 'coordination.k8s.io', 'authorization.k8s.io', 'monitoring.kiali.io', 'install.istio.io', 'networking.istio.io', 'security.istio.io', 'policy', 'autoscaling'];
    const role = (name: string, rules: object[]) => api(`${rbac}/clusterroles`, 'POST', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name }, rules });
    assert.equal((await role('meshdemo-limited', [
      { apiGroups: groups, resources: ['*'], verbs: ['*'] },
      { apiGroups: ['apps'], resources: ['deployments', 'replicasets', 'statefulsets', 'daemonsets'], verbs: ['get', 'list', 'watch', 'patch', 'update', 'delete'] },
    ])).status, 201);
    assert.equal((await role('meshdemo-create-deployments', [{ apiGroups: ['apps'], resources: ['deployments'], verbs: ['create'] }])).status, 201);
    const roleRef = (name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name });
    assert.equal((await api(`${rbac}/clusterrolebindings`, 'POST', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: 'meshdemo-limited' }, roleRef: roleRef('meshdemo-limited'), subjects: [sa] })).status, 201);
    for (const where of ['istio-system', ns]) {
      const rb = await api(`${rbac}/namespaces/${where}/rolebindings`, 'POST', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'meshdemo-create-deployments' }, roleRef: roleRef('meshdemo-create-deployments'), subjects: [sa] });
      assert.equal(rb.status, 201);
    }
    const token = await serviceAccountToken(demo.cp, 'kube-system', sa.name);
    const doc = yaml.load(fs.readFileSync(kubeconfig, 'utf8')) as any;
    doc.users.push({ name: 'limited', user: { token } });
    doc.contexts.push({ name: 'limited', context: { cluster: doc.clusters[0].name, user: 'limited' } });
    doc['current-context'] = 'limited';
    const limitedKubeconfig = path.join(demo.tmp, 'limited.kubeconfig');
    fs.writeFileSync(limitedKubeconfig, yaml.dump(doc), { mode: 0o600 });

    // something for the addons step to do: kiali's ServiceAccount, ConfigMap and Deployment are gone
    for (const p of ['/api/v1/namespaces/istio-system/serviceaccounts/kiali', '/api/v1/namespaces/istio-system/configmaps/kiali', '/apis/apps/v1/namespaces/istio-system/deployments/kiali']) {
      assert.equal((await api(p, 'DELETE')).status, 200, p);
    }

    let revoked: Promise<unknown> | undefined;
    const r = await up(['-n', ns], {
      kubeconfig: limitedKubeconfig,
      onEvent: (e) => {
        if (e.type === 'step' && e.id === 'addons' && e.status === 'start') revoked ??= api(`${rbac}/namespaces/istio-system/rolebindings/meshdemo-create-deployments`, 'DELETE');
      },
    });
    assert.ok(revoked, 'the addons step started');
    assert.equal(((await revoked) as { status: number }).status, 200);
    assert.equal(stepStatus(r, 'preflight'), 'done', 'preflight passed: the identity had every permission then');
    assert.equal(r.code, 3, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    tc.diagnostic(lines[0]);
    assert.match(lines[0], /cannot create resource "deployments" in API group "apps" in the namespace "istio-system"/);
    assert.match(lines[0], / — ask a cluster admin to grant that permission to the identity of context "limited"$/);
    assert.doesNotMatch(r.stderr, STACK);
    assert.equal(stepStatus(r, 'addons'), 'failed');
    assert.ok(!stepsStarted(r).includes('dashboards'), 'nothing after the addons ran');

    // the record in the app namespace is true: what it says up created exists (with that uid), the Deployment
    // that was refused is not in it
    // (applies that were in flight when the refusal came finished and recorded before meshdemo exited)
    const cm = await api(`/api/v1/namespaces/${ns}/configmaps/meshdemo-inventory`);
    assert.equal(cm.status, 200, 'the inventory exists');
    const inventory = JSON.parse(cm.body.data['inventory.json']);
    assert.ok(inventory.changed.some((c: any) => c.ref.kind === 'Namespace' && c.ref.name === ns), 'the injection label change is recorded');
    assert.ok(!inventory.created.some((c: any) => c.kind === 'Deployment' && c.name === 'kiali'), 'the refused Deployment is not recorded');
    assert.ok(inventory.created.some((c: any) => c.kind === 'ServiceAccount' && c.name === 'kiali'), `kiali's ServiceAccount was re-created and recorded: ${JSON.stringify(inventory.created)}`);
    for (const c of inventory.created) {
      const group = c.apiVersion.includes('/') ? `/apis/${c.apiVersion}` : `/api/${c.apiVersion}`;
      const plural = { ServiceAccount: 'serviceaccounts', ConfigMap: 'configmaps' }[c.kind as string] ?? assert.fail(`unexpected kind recorded: ${c.kind}`);
      const live = await api(`${group}/namespaces/${c.namespace}/${plural}/${c.name}`);
      assert.equal(live.status, 200, `${c.kind} ${c.namespace}/${c.name} is recorded as created and exists`);
      if (c.uid) assert.equal(live.body.metadata.uid, c.uid);
    }
    assert.equal((await api('/apis/apps/v1/namespaces/istio-system/deployments/kiali')).status, 404);
    assert.equal(inventory.steps.addons, undefined, 'the addons step is not recorded as complete');
  });
});
