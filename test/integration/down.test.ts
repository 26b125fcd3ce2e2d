// `meshdemo down` and the cluster lock against a REAL Kubernetes 1.20.2 API server and controller manager
// (test/support/control-plane.ts), with the REAL Istio 1.8.4 addon YAML from a release-shaped archive.
// Simulated: the node (test/support/node-simulator.ts marks pods Ready, and finishes pod deletion) and istioctl
// (a stand-in inside the archive that applies and purges the real rendered control plane:
// test/support/istioctl-standin.ts).
//
// One control plane serves the whole file: every test ends with the cluster back in its starting state — which
// is what `down` must achieve — and if a test fails before that, the control plane is replaced, so CRDs or
// namespaces left over from a failure cannot leak into the next test.
import { afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { ControlPlane } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import type { ReleaseArchive } from '../support/release-archive.js';
import { errorLines, type CliResult } from '../support/cli.js';
import { snapshotCluster } from '../support/snapshot.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane');
const LEASES = '/apis/coordination.k8s.io/v1/leases';
const LOCK = '/apis/coordination.k8s.io/v1/namespaces/default/leases/meshdemo-lock';

type Snapshot = Record<string, string[]>;
const withoutLeases = (s: Snapshot): Snapshot => Object.fromEntries(Object.entries(s).filter(([k]) => k !== LEASES));

/** Every descendant of pid (from /proc), so a killed meshdemo takes its istioctl with it, as a terminal's process group would. */
function descendants(pid: number): number[] {
  const children = new Map<number, number[]>();
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      children.set(ppid, [...(children.get(ppid) ?? []), Number(entry)]);
    } catch {
      /* gone meanwhile */
    }
  }
  const out: number[] = [];
  const queue = [pid];
  while (queue.length) {
    for (const c of children.get(queue.shift()!) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

/** SIGKILL the meshdemo process we started and whatever it started (stopped first, so it cannot start more). */
function killTree(child: ChildProcess): void {
  const pid = child.pid!;
  try {
    process.kill(pid, 'SIGSTOP');
  } catch {
    return;
  }
  for (const p of [pid, ...descendants(pid)]) {
    try {
      process.kill(p, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

function lease(holder: string, renewedSecondsAgo: number, command = 'up') {
  const renew = new Date(Date.now() - renewedSecondsAgo * 1000).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'meshdemo-lock', namespace: 'default', annotations: { 'meshdemo.io/command': command } },
    spec: { holderIdentity: holder, leaseDurationSeconds: 30, acquireTime: renew, renewTime: renew },
  };
}

describe('meshdemo down on a real API server', { skip }, () => {
  const demo = withDemoCluster({
    name: 'down',
    release: 'archive',
    meshdemo: { args: ['--timeout', '3m'], env: { MESHDEMO_LOCK_WAIT: '5s' }, timeoutMs: 240_000 },
  });
  const { api } = demo;
  let cp: ControlPlane;
  let cache: string;
  let archive: ReleaseArchive;
  let baseline: Snapshot;
  let failed = false;
  /** it(), remembering a failure: the next test then gets a fresh control plane (see afterEach). */
  const test = (name: string, fn: () => Promise<void>) =>
    void it(name, async () => {
      try {
        await fn();
      } catch (err) {
        failed = true;
        throw err;
      }
    });

  const meshdemo = (args: string[], opts: { env?: Record<string, string>; onEvent?: (e: any, child: ChildProcess) => void } = {}): Promise<CliResult> =>
    demo.meshdemo(args, opts);
  const up = (args: string[] = [], opts: Parameters<typeof meshdemo>[1] = {}) =>
    meshdemo(['up', '--no-app', '--yes', '--istio-archive', archive.path, ...args], opts);
  const stepsWith = (r: CliResult, status: string) => r.events().filter((e) => e.type === 'step' && e.status === status).map((e) => e.id);
  const waitFor = async (ok: () => Promise<boolean>) => {
    for (let i = 0; i < 300 && !(await ok()); i++) await new Promise((r) => setTimeout(r, 200));
  };
  const waitGone = async (p: string) => {
    for (let i = 0; i < 300 && (await api(p)).status !== 404; i++) await new Promise((r) => setTimeout(r, 200));
  };

  const clusterStarted = async () => {
    cp = demo.cp;
    baseline = await snapshotCluster(cp);
  };

  before(async () => {
    ({ cache, archive } = demo);
    await clusterStarted();
  });
  // a test that failed half-way may leave Istio's cluster-scoped objects behind: start the next one afresh
  afterEach(async () => {
    if (!failed) return;
    failed = false;
    await demo.restartCluster();
    await clusterStarted();
  });

  describe('up --no-app, then down, on an empty cluster', () => {
    test('refuses up while another run holds the lock, naming the holder (exit 3), and changes nothing', async () => {
      assert.equal((await api('/apis/coordination.k8s.io/v1/namespaces/default/leases', 'POST', lease('elsewhere.example/4242/cafe', 0))).status, 201);
      const r = await up(['--json'], { env: { MESHDEMO_LOCK_WAIT: '2s' } });
      assert.equal(r.code, 3, r.stderr);
      const [line] = errorLines(r.stderr);
      assert.match(line, /another meshdemo up \(holder elsewhere\.example\/4242\/cafe\) is running against this cluster — wait for it to finish/);
      assert.ok(r.events().some((e) => e.type === 'log' && /waiting up to 2s for another meshdemo up \(holder elsewhere\.example\/4242\/cafe\)/.test(e.message)));
      assert.deepEqual(withoutLeases(await snapshotCluster(cp)), withoutLeases(baseline), 'nothing changed');
      assert.equal((await api(LOCK)).body.spec.holderIdentity, 'elsewhere.example/4242/cafe', 'the holder keeps its lock');
    });

    test('a waiting up proceeds once the holder releases the lock, and releases it at the end', async () => {
      await api(LOCK, 'PATCH', { spec: lease('elsewhere.example/4242/cafe', 0).spec }, 'application/merge-patch+json');
      let released = false;
      const r = await up(['--json'], {
        env: { MESHDEMO_LOCK_WAIT: '60s' },
        onEvent: (e) => {
          if (!released && typeof e.message === 'string' && e.message.includes('waiting up to 60s')) {
            released = true;
            void api(LOCK, 'DELETE');
          }
        },
      });
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.ok(released, 'up waited for the lock');
      assert.deepEqual([...stepsWith(r, 'done')].sort(), ['preflight', 'istio-download', 'istio-namespace', 'istio-install', 'namespace-label', 'addons', 'dashboards'].sort());
      assert.equal((await api(LOCK)).status, 404, 'the lock is released');
    });

    test('down never runs a cached istioctl that no longer matches its manifest: the plan deletes Istio\'s objects directly instead', async () => {
      const istioctl = path.join(cache, 'istio', '1.8.4', 'tree', 'istio-1.8.4', 'bin', 'istioctl');
      const genuine = fs.readFileSync(istioctl);
      try {
        fs.appendFileSync(istioctl, '\n# planted\n');
        const dry = await meshdemo(['down', '--dry-run']);
        assert.equal(dry.code, 0, dry.stderr);
        assert.match(dry.stdout, /note: the cached istioctl 1\.8\.4 is not trusted \(.*has changed since it was verified\): deleting Istio's \d+ objects directly/);
        assert.match(dry.stdout, /uninstall +Istio 1\.8\.4 — no trusted istioctl is cached: delete its \d+ objects directly/);
      } finally {
        fs.writeFileSync(istioctl, genuine);
      }
      const trusted = await meshdemo(['down', '--dry-run']);
      assert.match(trusted.stdout, /istioctl x uninstall --purge, cluster-wide/, 'the genuine istioctl is trusted again');
    });

    test('down without a terminal and without --yes refuses (exit 2); down --dry-run lists the plan and changes nothing', async () => {
      const before = await snapshotCluster(cp);
      const refused = await meshdemo(['down']);
      assert.equal(refused.code, 2, refused.stderr);
      assert.match(errorLines(refused.stderr)[0], /confirmation needs an answer, but there is no terminal to ask on — pass --yes/);
      assert.match(refused.stdout, /delete +Namespace\/istio-system/, 'the plan is shown before the question');

      const dry = await meshdemo(['down', '--dry-run', '--json']);
      assert.equal(dry.code, 0, dry.stderr);
      const result = dry.events().at(-1);
      assert.equal(result.type, 'result');
      assert.equal(result.dryRun, true);
      const plan = (result.plan as Array<{ phase: string; action: string; target: string }>).map((i) => `${i.phase} ${i.action} ${i.target}`);
      for (const wanted of [
        'down-addons delete Deployment/istio-system/kiali',
        'down-addons delete Service/istio-system/grafana',
        'down-addons delete CustomResourceDefinition/monitoringdashboards.monitoring.kiali.io',
        'down-addons delete ClusterRole/kiali',
        'down-addons delete ClusterRoleBinding/prometheus',
        'down-istio uninstall Istio 1.8.4',
        'down-namespaces restore label istio-injection of Namespace/default',
        'down-namespaces delete Namespace/istio-system',
        'down-inventory remove ConfigMap/default/meshdemo-inventory',
      ]) {
        assert.ok(plan.includes(wanted), `plan has "${wanted}":\n${plan.join('\n')}`);
      }
      assert.ok(!plan.some((p) => p.includes('Namespace/default') && p.includes('delete')), 'default is never deleted');
      assert.ok(dry.events().some((e) => e.type === 'log' && e.message === 'plan: delete Namespace/istio-system'), 'the plan as events');
      const steps = result.steps as Array<{ id: string; status: string }>;
      assert.deepEqual(steps.map((s) => s.id), ['down-app', 'down-dashboards', 'down-addons', 'down-istio', 'down-namespaces', 'down-inventory']);
      assert.deepEqual(steps.map((s) => s.status), ['skipped', 'skipped', 'planned', 'planned', 'planned', 'planned'], 'nothing of the app; the dashboards were created by up, so they go with the addons');

      const human = await meshdemo(['down', '--dry-run']);
      assert.equal(human.code, 0, human.stderr);
      assert.match(human.stdout, /uninstall +Istio 1\.8\.4 — istioctl x uninstall --purge/);
      assert.match(human.stdout, /restore +label istio-injection of Namespace\/default — remove it \(was absent; now enabled\)/);
      assert.match(human.stdout, /dry run: nothing changed/);
      assert.deepEqual(await snapshotCluster(cp), before, 'a dry run changes nothing');
    });

    test('down waits for what it deletes up to --timeout, then names what is still there and why (exit 4)', async () => {
      const held = '/api/v1/namespaces/istio-system/configmaps/kiali';
      assert.equal((await api(held, 'PATCH', { metadata: { finalizers: ['example.com/hold'] } }, 'application/merge-patch+json')).status, 200);
      const r = await meshdemo(['--timeout', '4s', 'down', '--yes']);
      assert.equal(r.code, 4, r.stderr);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], /addon objects: 1 still there before the deadline: ConfigMap\/istio-system\/kiali — .*raise --timeout/);
      assert.match(r.stderr, /ConfigMap\/istio-system\/kiali: finalizers example\.com\/hold/);
      assert.equal((await api(LOCK)).status, 404, 'the lock is released after a failure too');
      assert.equal((await api('/api/v1/namespaces/default/configmaps/meshdemo-inventory')).status, 200, 'the record stays for the re-run');
      await api(held, 'PATCH', { metadata: { finalizers: null } }, 'application/merge-patch+json');
      await waitGone(held);
    });

    test('down --yes returns the cluster to its starting state; a second down finds nothing recorded (exit 0)', async () => {
      const r = await meshdemo(['down', '--yes', '--json']);
      assert.equal(r.code, 0, r.stderr + r.stdout);
      assert.deepEqual(stepsWith(r, 'done'), ['down-istio', 'down-namespaces', 'down-inventory'], 'the timed-out run had deleted the addons');
      assert.deepEqual(await snapshotCluster(cp), baseline);
      assert.equal((await api(LOCK)).status, 404, 'the lock is released');

      const again = await meshdemo(['down', '--yes']);
      assert.equal(again.code, 0, again.stderr);
      assert.match(again.stdout, /nothing recorded: there is no meshdemo inventory \(ConfigMap default\/meshdemo-inventory\)/);
      assert.match(again.stdout, /meshdemo down --force/);
    });
  });

  // "Changed, not created": the user had already installed Kiali and exposed it on NodePort 30555/30556, and had
  // switched sidecar injection off for the app namespace. (Kiali, because its Service leaves `type` unset, so up's
  // addon apply keeps the user's NodePort and the dashboards step changes it; grafana.yaml sets type ClusterIP.)
  test('reverts what existed before up instead of deleting it: node ports, injection label, istio-system', async () => {
    assert.equal((await api('/api/v1/namespaces/default', 'PATCH', { metadata: { labels: { 'istio-injection': 'disabled' } } }, 'application/merge-patch+json')).status, 200);
    assert.equal((await api('/api/v1/namespaces', 'POST', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } })).status, 201);
    const kiali = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'kiali', namespace: 'istio-system', labels: { app: 'kiali' } },
      spec: {
        type: 'NodePort',
        selector: { 'app.kubernetes.io/name': 'kiali' },
        ports: [
          { name: 'http', protocol: 'TCP', port: 20001, targetPort: 20001, nodePort: 30555 },
          { name: 'http-metrics', protocol: 'TCP', port: 9090, targetPort: 9090, nodePort: 30556 },
        ],
      },
    };
    assert.equal((await api('/api/v1/namespaces/istio-system/services', 'POST', kiali)).status, 201);
    // the controller manager gives the new namespace its ServiceAccount "default": part of the state before up
    await waitFor(async () => (await api('/api/v1/namespaces/istio-system/serviceaccounts/default')).status === 200);
    // and a lock whose holder stopped renewing it two minutes ago: taken over once up has seen it unchanged for 30 s
    assert.equal((await api('/apis/coordination.k8s.io/v1/namespaces/default/leases', 'POST', lease('gone.example/77/dead', 120))).status, 201);
    const before = await snapshotCluster(cp);

    const r = await up(['--json'], { env: { MESHDEMO_LOCK_WAIT: '60s' } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.ok(r.events().some((e) => e.type === 'log' && /took over the lock of gone\.example\/77\/dead, which had not renewed it for 3\ds/.test(e.message)));
    const ns = (await api('/api/v1/namespaces/default')).body;
    assert.equal(ns.metadata.labels['istio-injection'], 'enabled');
    const exposed = (await api('/api/v1/namespaces/istio-system/services/kiali')).body;
    assert.equal(exposed.spec.ports.find((p: any) => p.name === 'http').nodePort, 31001);
    const inventory = JSON.parse((await api('/api/v1/namespaces/default/configmaps/meshdemo-inventory')).body.data['inventory.json']);
    assert.deepEqual(inventory.createdNamespaces, [], 'up created no namespace');
    assert.ok(!inventory.created.some((c: any) => c.kind === 'Service' && c.name === 'kiali'), 'kiali was not created by up');
    assert.deepEqual(inventory.changed.find((c: any) => c.ref.name === 'kiali').previous.type, 'NodePort');

    const d = await meshdemo(['down', '--yes', '--json']);
    assert.equal(d.code, 0, d.stderr + d.stdout);
    assert.match(d.events().find((e) => e.id === 'down-dashboards' && e.status === 'done')?.message ?? '', /reverted 1 Service/);
    const restored = (await api('/api/v1/namespaces/istio-system/services/kiali')).body;
    assert.equal(restored.spec.type, 'NodePort');
    assert.deepEqual(restored.spec.ports.map((p: any) => [p.name, p.nodePort]), [['http', 30555], ['http-metrics', 30556]]);
    assert.equal((await api('/api/v1/namespaces/default')).body.metadata.labels['istio-injection'], 'disabled');
    assert.equal((await api('/api/v1/namespaces/istio-system')).body.status.phase, 'Active', 'istio-system existed before: kept');
    assert.deepEqual(withoutLeases(await snapshotCluster(cp)), withoutLeases(before), 'back to how it was before up');
    assert.equal((await api(LOCK)).status, 404, 'the expired lock was taken over and released');

    // back to the empty cluster for the next tests
    await api('/api/v1/namespaces/istio-system', 'DELETE');
    await api('/api/v1/namespaces/default', 'PATCH', [{ op: 'remove', path: '/metadata/labels/istio-injection' }], 'application/json-patch+json');
    await waitGone('/api/v1/namespaces/istio-system');
    assert.deepEqual(await snapshotCluster(cp), baseline);
  });

  // up is killed (SIGKILL, with the istioctl it may have started) right after step X starts — and once in the
  // middle of istioctl install, when Istio's CRDs and cluster roles exist but istio-install never completed.
  // The inventory is written through as each change happens, so down still finds everything up did.
  const kills: Array<{ name: string; at: (e: any) => boolean; ran?: string[] }> = [
    ...['istio-namespace', 'istio-install', 'namespace-label', 'addons', 'dashboards'].map((step) => ({
      name: `right after "${step}" started`,
      at: (e: any) => e.type === 'step' && e.id === step && e.status === 'start',
    })),
    {
      name: 'while istioctl install runs',
      at: (e: any) => e.type === 'log' && e.step === 'istio-install' && /Istio core installed/.test(e.message),
      // istio-install never completed, but the record says meshdemo created istio-system: Istio goes too (with the
      // addons applied beside it, when they were)
      ran: ['down-istio', 'down-namespaces', 'down-inventory'],
    },
  ];
  for (const kill of kills) {
    test(`down after up was killed ${kill.name} leaves nothing of meshdemo's behind`, async () => {
      let killed = false;
      const r = await up(['--json'], {
        onEvent: (e, child) => {
          if (!killed && kill.at(e)) {
            killed = true;
            killTree(child);
          }
        },
      });
      assert.ok(killed, `up was killed ${kill.name}:\n${r.stdout}\n${r.stderr}`);
      assert.notEqual(r.code, 0);

      const d = await meshdemo(['down', '--yes', '--json']);
      assert.equal(d.code, 0, d.stderr + d.stdout);
      for (const phase of kill.ran ?? []) assert.ok(stepsWith(d, 'done').includes(phase), `${phase} ran: ${stepsWith(d, 'done')}`);
      assert.deepEqual(await snapshotCluster(cp), baseline);
    });
  }
});
