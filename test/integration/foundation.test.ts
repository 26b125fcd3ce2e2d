// The CLI skeleton, preflight, status and plan against a REAL Kubernetes 1.20.2 API server + controller
// manager (test/support/control-plane.ts). Only the node is simulated (test/support/node-simulator.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { ControlPlane } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import { startVersionProxy, type VersionProxy } from '../support/version-proxy.js';
import { errorLines, runMeshdemo } from '../support/cli.js';
import { snapshotCluster } from '../support/snapshot.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane');

describe('foundation on a real API server', { skip }, () => {
  const demo = withDemoCluster({ name: 'foundation' });
  let cp: ControlPlane;
  let proxy: VersionProxy;
  let tmp: string;
  const run = (args: string[], env: Record<string, string> = {}) => demo.meshdemo(args, { env });

  before(async () => {
    ({ cp, tmp } = demo);
    proxy = await startVersionProxy(cp, 'v1.22.3');
  });
  after(() => proxy?.close());

  it('status on a fresh cluster reports the version verdict and nothing installed', async () => {
    const r = await run(['status', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const events = r.events();
    assert.equal(events.length, 1);
    const { status } = events[0];
    assert.equal(status.cluster.verdict, 'untested');
    assert.match(status.cluster.version, /^v1\.20\./);
    assert.equal(status.istio.installed, false);
    assert.equal(status.namespace.injection, null);
    assert.deepEqual(status.dashboards, []);
    assert.equal(status.app.deployed, false);
    assert.equal(status.gatewayUrl, null);
    assert.equal(status.context, 'admin');

    const human = await run(['status']);
    assert.equal(human.code, 0);
    assert.match(human.stdout, /istio\s+not installed/);
    assert.match(human.stdout, /untested/);
  });

  it('preflight passes on 1.20 with a warning, and a dry run changes nothing', async () => {
    const before = await snapshotCluster(cp);
    const r = await run(['up', '--dry-run', '--no-app', '--yes', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const events = r.events();
    const preflight = events.find((e) => e.type === 'step' && e.id === 'preflight' && e.status === 'done');
    assert.ok(preflight, 'preflight ran');
    assert.ok(events.some((e) => e.type === 'log' && e.level === 'warn' && /untested with Istio 1\.8\.4/.test(e.message)));
    assert.ok(events.some((e) => e.type === 'log' && e.message.includes(cp.server)), 'names the cluster it would change');
    const result = events.at(-1);
    assert.equal(result.type, 'result');
    assert.equal(result.ok, true);
    assert.ok(result.steps.filter((s: any) => s.id !== 'preflight').every((s: any) => s.status === 'planned'));
    assert.deepEqual(await snapshotCluster(cp), before);
  });

  it('refuses the restricted identity, listing every missing permission, with exit 3 and no change', async () => {
    const before = await snapshotCluster(cp);
    const r = await run(['--context', 'viewer', 'up', '--no-app', '--yes']);
    assert.equal(r.code, 3, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    for (const missing of ['create namespaces', 'create customresourcedefinitions.apiextensions.k8s.io', 'create mutatingwebhookconfigurations', 'patch services in namespace istio-system', 'create deployments.apps in namespace default']) {
      assert.ok(lines[0].includes(missing), `names "${missing}": ${lines[0]}`);
    }
    assert.doesNotMatch(r.stderr, /at .*\.js:\d+/, 'no stack trace');
    assert.deepEqual(await snapshotCluster(cp), before);
  });

  it('refuses Kubernetes 1.22 (seen through a proxy rewriting /version) with exit 3', async () => {
    const r = await runMeshdemo(['--kubeconfig', proxy.kubeconfigPath, 'up', '--yes', '--no-app', '--cache-dir', path.join(tmp, 'cache')]);
    assert.equal(r.code, 3, r.stderr);
    const [line] = errorLines(r.stderr);
    assert.match(line, /v1\.22\.3 is not supported: Istio 1\.8\.4 uses APIs removed in Kubernetes 1\.22/);
    assert.match(line, /kind create cluster --image kindest\/node:v1\.19\.16/);
    const status = await runMeshdemo(['--kubeconfig', proxy.kubeconfigPath, 'status', '--json']);
    assert.equal(status.code, 0);
    assert.equal(status.events()[0].status.cluster.verdict, 'refused');
  });

  it('an unreachable server gives exit 3 and one line', async () => {
    const kc = path.join(tmp, 'unreachable.kubeconfig');
    await cp.writeKubeconfig(kc, { server: 'https://127.0.0.1:1' });
    const r = await runMeshdemo(['--kubeconfig', kc, 'status']);
    assert.equal(r.code, 3);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1);
    assert.match(lines[0], /cannot reach the API server at https:\/\/127\.0\.0\.1:1 \(ECONNREFUSED\)/);
  });

  it('a TLS failure and a rejected token each get their own message', async () => {
    const wrongCa = path.join(tmp, 'wrong-ca.kubeconfig');
    await cp.writeKubeconfig(wrongCa, { caFile: proxy.caFile });
    const tls = await runMeshdemo(['--kubeconfig', wrongCa, 'status']);
    assert.equal(tls.code, 3);
    assert.match(errorLines(tls.stderr)[0], /TLS verification of the API server .* failed/);

    const badToken = path.join(tmp, 'bad-token.kubeconfig');
    fs.writeFileSync(badToken, fs.readFileSync(cp.kubeconfigPath, 'utf8').split(cp.adminToken).join('not-a-valid-token'));
    const unauth = await runMeshdemo(['--kubeconfig', badToken, 'status']);
    assert.equal(unauth.code, 3);
    assert.match(errorLines(unauth.stderr)[0], /rejected the credentials of context "admin" \(401 Unauthorized\)/);
  });

  it('a missing, empty or broken kubeconfig and an unknown context give exit 2 and one line', async () => {
    const empty = path.join(tmp, 'empty.kubeconfig');
    fs.writeFileSync(empty, '');
    const broken = path.join(tmp, 'broken.kubeconfig');
    fs.writeFileSync(broken, 'clusters: [unclosed');
    const cases: Array<[string[], Record<string, string>, RegExp]> = [
      [['--kubeconfig', path.join(tmp, 'nope'), 'status'], {}, /no kubeconfig found at .*nope \(from --kubeconfig\)/],
      [['status'], { KUBECONFIG: path.join(tmp, 'nope2') }, /no kubeconfig found at .*nope2 \(from KUBECONFIG\)/],
      [['status'], { HOME: tmp, KUBECONFIG: '' }, /no kubeconfig found at .*\.kube\/config/],
      [['--kubeconfig', empty, 'status'], {}, /is empty/],
      [['--kubeconfig', broken, 'status'], {}, /is not valid/],
      [['--kubeconfig', cp.kubeconfigPath, '--context', 'nope', 'status'], {}, /context "nope" is not in the kubeconfig — choose one of: admin, viewer/],
    ];
    for (const [args, env, pattern] of cases) {
      const r = await runMeshdemo(args, { env });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], pattern);
      assert.doesNotMatch(r.stderr, /localhost:8080/);
    }
  });

  it('--json emits valid NDJSON only on stdout, also on failure', async () => {
    const ok = await run(['up', '--dry-run', '--json', '--yes']);
    const failed = await run(['--context', 'viewer', 'up', '--json', '--yes']);
    for (const r of [ok, failed]) {
      const events = r.events();
      assert.ok(events.length >= 2);
      for (const e of events) assert.ok(['step', 'log', 'progress', 'result'].includes(e.type), JSON.stringify(e));
      assert.equal(events.at(-1).type, 'result');
    }
    assert.equal(failed.events().at(-1).ok, false);
    assert.equal(failed.events().at(-1).exitCode, 3);
  });

  it('never prompts without a TTY: a change needs --yes (exit 2), after a read-only preflight', async () => {
    const before = await snapshotCluster(cp);
    const r = await run(['up', '--no-app']);
    assert.equal(r.code, 2, r.stderr);
    assert.match(errorLines(r.stderr)[0], /confirmation needs an answer, but there is no terminal to ask on — pass --yes/);
    assert.match(r.stderr, /✔ Preflight/);
    assert.deepEqual(await snapshotCluster(cp), before);
  });

  it('plan lists the up steps in order with their state', async () => {
    const r = await run(['plan', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const { steps } = r.events().at(-1);
    assert.deepEqual(
      steps.map((s: any) => s.id),
      ['preflight', 'tools-preflight', 'istio-download', 'istio-namespace', 'istio-install', 'namespace-label', 'addons', 'dashboards', 'images', 'app-deploy', 'gateway-url'],
    );
    assert.ok(steps.every((s: any) => typeof s.satisfied === 'boolean'));
    assert.equal(steps.find((s: any) => s.id === 'istio-install').satisfied, false);
    const human = await run(['plan', '--no-app']);
    assert.match(human.stdout, /1\. needed\s+preflight/);
    assert.match(human.stdout, /7\. needed\s+dashboards/);
    assert.doesNotMatch(human.stdout, /images/);
  });

  it('never prints the kubeconfig token', async () => {
    const runs = await Promise.all([run(['status']), run(['status', '--json', '--verbose']), run(['up', '--dry-run', '--verbose', '--yes']), run(['--context', 'viewer', 'up', '--yes', '--verbose'])]);
    for (const r of runs) {
      for (const secret of [cp.adminToken, cp.viewToken]) {
        assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), 'token leaked');
      }
    }
  });
});
