// The cluster lock (src/record/lock.ts) held by a real `meshdemo up --no-app` against a REAL Kubernetes 1.20.2 API
// server: renewals that fail while the API server restarts, a lock taken by someone else, a lock that cannot be
// renewed before it expires, and expiry judged by what this run observes (client-go's observedTime), never by
// comparing another machine's clock with ours; the lease timed from when a renewal was sent (a proxy delays the
// answer). Simulated: the node (kiali's pod is held Pending to keep up in its
// addons step while the test acts) and istioctl (the stand-in in the release archive).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { serviceAccountToken } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import { errorLines, type CliResult } from '../support/cli.js';
import { skipUnless } from '../support/requirements.js';
import { startVersionProxy } from '../support/version-proxy.js';

const skip = skipUnless('control-plane');
const LEASES = '/apis/coordination.k8s.io/v1/namespaces/default/leases';
const LOCK = `${LEASES}/meshdemo-lock`;
const STACK = /^\s+at .*(:\d+:\d+\)?|\(node:.*\))$/m;

const microTime = (ms: number) => new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');

function lease(holder: string, renewTimeMs: number) {
  return {
    apiVersion: 'coordination.k8s.io/v1',
    kind: 'Lease',
    metadata: { name: 'meshdemo-lock', namespace: 'default', annotations: { 'meshdemo.io/command': 'up' } },
    spec: { holderIdentity: holder, leaseDurationSeconds: 30, acquireTime: microTime(renewTimeMs), renewTime: microTime(renewTimeMs) },
  };
}

describe('the cluster lock on a real API server', { skip, timeout: 900_000 }, () => {
  const demo = withDemoCluster({ name: 'lock', release: 'archive' });
  const { api } = demo;
  /** Holds kiali's pod Pending (so up waits in its addons step) until release() is called. */
  const holdKiali = () => demo.sim.setPodReadiness((pod) => (pod.metadata?.labels?.app === 'kiali' ? 'pending' : true));
  const releaseKiali = () => demo.sim.setPodReadiness(() => true);
  const up = (args: string[], opts: { env?: Record<string, string>; onEvent?: (e: any) => void; kubeconfig?: string } = {}): Promise<CliResult> =>
    demo.meshdemo(['--json', 'up', '--no-app', '--yes', '--istio-archive', demo.archive.path, ...args], { ...opts, timeoutMs: 300_000 });
  const waitingInAddons = (e: any) => e.type === 'log' && e.step === 'addons' && /^waiting for /.test(e.message);
  /**
   * An onEvent that calls fn once up waits in its addons step with nothing running beside it: the addons run beside
   * istioctl install (src/core/runner.ts `after`), and istioctl, like client-go, does not live through an outage.
   */
  const whenAddonsWaitAlone = (fn: () => void) => {
    let waiting = false;
    let installEnded = false;
    let called = false;
    return (e: any) => {
      if (waitingInAddons(e)) waiting = true;
      if (e.type === 'step' && e.id === 'istio-install' && e.status !== 'start') installEnded = true;
      if (!called && waiting && installEnded) {
        called = true;
        fn();
      }
    };
  };
  /**
   * After an up during whose addons step the test acted on the lock (`acted`: the API request it sent): kiali is
   * released, the request succeeded, up exited 3 with one error line — which is returned.
   */
  const lockLost = async (r: CliResult, acted: Promise<unknown> | undefined): Promise<string> => {
    releaseKiali();
    assert.ok(acted, 'up waited in its addons step');
    assert.equal(((await acted) as { status: number }).status, 200);
    assert.equal(r.code, 3, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    return lines[0];
  };
  const lockWarnings = (r: CliResult) => r.events().filter((e) => e.type === 'log' && /lock/.test(e.message) && e.level === 'warn');

  it('a renewal that fails while the API server restarts is retried: the run keeps its lock and completes', async () => {
    holdKiali();
    let outage: Promise<void> | undefined;
    const r = await up([], {
      onEvent: whenAddonsWaitAlone(() => {
        outage = (async () => {
          // down for 11 s (and a few more while it starts): longer than the 10 s between renewals, shorter than
          // the 30 s lease and than the 20 s for which meshdemo retries any request
          await demo.cp.stopApiServer();
          await sleep(11_000);
          await demo.cp.startApiServer();
          releaseKiali();
        })();
      }),
    });
    assert.ok(outage, 'up waited in its addons step');
    await outage;
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(lockWarnings(r), [], 'the lock was never reported lost');
    assert.equal((await api(LOCK)).status, 404, 'the run still held the lock at the end, and released it');
  });

  it('a lock taken by another run while up holds it stops up: exit 3 naming the taker; the record stays true', async () => {
    await api('/apis/apps/v1/namespaces/istio-system/deployments/kiali', 'DELETE'); // something for addons to do again
    holdKiali();
    let taken: Promise<unknown> | undefined;
    const r = await up(['--timeout', '2m'], {
      onEvent: whenAddonsWaitAlone(() => {
        taken = api(LOCK, 'PATCH', { spec: { holderIdentity: 'thief.example/1/beef', renewTime: microTime(Date.now()) } }, 'application/merge-patch+json');
      }),
    });
    const line = await lockLost(r, taken);
    assert.match(line, /^error: lost meshdemo's lock \(Lease default\/meshdemo-lock\): it was taken by thief\.example\/1\/beef; stopped so that no two runs change this cluster at once — /);
    assert.doesNotMatch(r.stderr, STACK);
    assert.equal(r.events().find((e) => e.type === 'step' && e.id === 'addons' && e.status !== 'start')?.status, 'failed');
    assert.equal(r.events().at(-1).exitCode, 3);
    assert.equal((await api(LOCK)).body.spec.holderIdentity, 'thief.example/1/beef', "the taker's lock is left alone");
    // the record: what it says up created exists
    const inventory = JSON.parse((await api('/api/v1/namespaces/default/configmaps/meshdemo-inventory')).body.data['inventory.json']);
    assert.ok(inventory.created.some((c: any) => c.kind === 'Deployment' && c.name === 'kiali'), 'the Deployment up created is recorded');
    assert.equal((await api('/apis/apps/v1/namespaces/istio-system/deployments/kiali')).status, 200, 'and exists');
    await api(LOCK, 'DELETE');
  });

  it('a lock that cannot be renewed before it expires (renewal refused from then on) is lost: exit 3', async () => {
    // an identity (a ServiceAccount token) that may do all up needs, and use the Lease only through a RoleBinding
    // that the test deletes while up holds the lock
    const rbac = '/apis/rbac.authorization.k8s.io/v1';
    const sa = { kind: 'ServiceAccount', name: 'meshdemo-lockless', namespace: 'kube-system' };
    assert.equal((await api('/api/v1/namespaces/kube-system/serviceaccounts', 'POST', { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa.name } })).status, 201);
    const groups = ['', 'apps', 'apiextensions.k8s.io', 'rbac.authorization.k8s.io', 'admissionregistration.k8s.io', 'authorization.k8s.io', 'monitoring.kiali.io', 'install.istio.io', 'networking.istio.io', 'security.istio.io', 'policy', 'autoscaling'];
    const roleRef = (kind: string, name: string) => ({ apiGroup: 'rbac.authorization.k8s.io', kind, name });
    assert.equal((await api(`${rbac}/clusterroles`, 'POST', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRole', metadata: { name: sa.name }, rules: [{ apiGroups: groups, resources: ['*'], verbs: ['*'] }] })).status, 201);
    assert.equal((await api(`${rbac}/clusterrolebindings`, 'POST', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'ClusterRoleBinding', metadata: { name: sa.name }, roleRef: roleRef('ClusterRole', sa.name), subjects: [sa] })).status, 201);
    assert.equal((await api(`${rbac}/namespaces/default/roles`, 'POST', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'Role', metadata: { name: 'leases' }, rules: [{ apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['*'] }] })).status, 201);
    const binding = `${rbac}/namespaces/default/rolebindings/leases`;
    assert.equal((await api(`${rbac}/namespaces/default/rolebindings`, 'POST', { apiVersion: 'rbac.authorization.k8s.io/v1', kind: 'RoleBinding', metadata: { name: 'leases' }, roleRef: roleRef('Role', 'leases'), subjects: [sa] })).status, 201);
    const token = await serviceAccountToken(demo.cp, 'kube-system', sa.name);
    const kubeconfig = path.join(demo.tmp, 'lockless.kubeconfig');
    fs.writeFileSync(
      kubeconfig,
      fs.readFileSync(demo.kubeconfig, 'utf8').replace(/token: .*/g, `token: ${token}`),
      { mode: 0o600 },
    );

    await api('/apis/apps/v1/namespaces/istio-system/deployments/kiali', 'DELETE');
    holdKiali();
    let revoked: Promise<unknown> | undefined;
    let revokedAt = 0;
    const r = await up(['--timeout', '3m'], {
      kubeconfig,
      onEvent: (e) => {
        if (!revoked && waitingInAddons(e)) {
          revokedAt = Date.now();
          revoked = api(binding, 'DELETE');
        }
      },
    });
    const line = await lockLost(r, revoked);
    assert.match(line, /^error: lost meshdemo's lock \(Lease default\/meshdemo-lock\): could not renew it for 27s \(last error: forbidden: .*leases/);
    assert.ok(Date.now() - revokedAt >= 17_000, 'the refused renewals were retried until the lease was about to expire');
    assert.doesNotMatch(r.stderr, STACK);
    // nobody deleted the lease: it was left to expire. Its holder (a process on this machine) is gone: the next run
    // takes it over at once
    const holder = (await api(LOCK)).body.spec.holderIdentity;
    const next = await up([]);
    assert.equal(next.code, 0, next.stderr + next.stdout);
    assert.ok(next.events().some((e) => e.type === 'log' && e.message === `took over the lock of ${holder}, which is no longer running`), next.stdout);
  });

  it('the lease is timed from when a renewal was sent: an answer that comes late does not lengthen it', async (tc) => {
    // A proxy in front of the API server (test/support/version-proxy.ts) forwards one renewal — the PATCH of the
    // Lease — at once but passes its answer back only DELAY_MS later; from then on it holds every answer about the
    // Lease, so no renewal succeeds again. Another run sees the Lease change when that PATCH reaches the API server
    // and may take it 30 s later, so the holder must stop 27 s (the lease less its 3 s margin) after it SENT the
    // renewal. Timed from the answer instead, it would stop DELAY_MS later: after the answer + 27 s, which this
    // test refuses.
    const DELAY_MS = 3300; // below the 4 s after which a renewal without an answer is abandoned (src/record/lock.ts)
    const t: { patchArrived?: number; patchAnswered?: number; renewTime?: string; stopped?: number } = {};
    let mode: 'pass' | 'delay-next-renewal' | 'hold' = 'pass';
    const held: Array<() => void> = [];
    const proxy = await startVersionProxy(demo.cp, 'v1.20.2', {
      holdAnswer: ({ method, path: p }) => {
        if (p !== LOCK || mode === 'pass') return undefined;
        if (mode === 'hold') return new Promise<void>((resolve) => held.push(resolve));
        if (method !== 'PATCH') return undefined; // the renewal's GET of the Lease
        mode = 'hold';
        t.patchArrived = Date.now();
        return sleep(DELAY_MS).then(async () => {
          t.renewTime = (await api(LOCK)).body.spec.renewTime; // read directly from the API server
          t.patchAnswered = Date.now();
        });
      },
    });
    try {
      await api('/apis/apps/v1/namespaces/istio-system/deployments/kiali', 'DELETE'); // work for up, so it needs the lock
      holdKiali();
      const r = await up(['--timeout', '3m'], {
        kubeconfig: proxy.kubeconfigPath,
        onEvent: (e) => {
          if (mode === 'pass' && t.patchArrived === undefined && waitingInAddons(e)) mode = 'delay-next-renewal';
          if (t.stopped === undefined && e.type === 'step' && e.id === 'addons' && e.status === 'failed') {
            t.stopped = Date.now();
            mode = 'pass';
            for (const answer of held.splice(0)) answer();
          }
        },
      });
      releaseKiali();
      assert.equal(r.code, 3, r.stderr + r.stdout);
      const lines = errorLines(r.stderr);
      assert.equal(lines.length, 1, r.stderr);
      // the last attempt had what was left of the lease, often under a second: said in ms, never "within 0s"
      assert.match(lines[0], /^error: lost meshdemo's lock \(Lease default\/meshdemo-lock\): could not renew it for 27s \(last error: a renewal got no answer within (?:[1-9]\d*s|\d+ms)\)/);
      const { patchArrived, patchAnswered, renewTime, stopped } = t;
      assert.ok(patchArrived && patchAnswered && renewTime && stopped, JSON.stringify(t));
      tc.diagnostic(`stopped ${stopped - patchArrived} ms after the renewal reached the API server, ${stopped - patchAnswered} ms after its answer`);
      assert.ok(Date.parse(renewTime) <= patchArrived, `the renewTime written (${renewTime}) is from before the renewal reached the API server (${new Date(patchArrived).toISOString()})`);
      assert.ok(stopped < patchAnswered + 27_000, `stopped ${stopped - patchAnswered} ms after the late answer: the lease was timed from the answer, not from the renewal sent`);
      assert.ok(stopped >= patchArrived + 26_000, `stopped only ${stopped - patchArrived} ms after the renewal: it held its lock as long as that renewal kept it`);
      assert.match((await api(LOCK)).body.spec.holderIdentity, new RegExp(`^${os.hostname()}/`), 'a lost lock is left to expire, never deleted');
    } finally {
      await api(LOCK, 'DELETE');
      mode = 'pass';
      for (const answer of held.splice(0)) answer();
      await proxy.close();
    }
  });

  it("a holder that keeps renewing is not taken over, however old its renewTime is by our clock", async () => {
    await api('/apis/apps/v1/namespaces/istio-system/deployments/kiali', 'DELETE'); // work for up, so it needs the lock
    // another machine whose clock is 2 minutes behind ours: by its renewTime the lease "expired" long ago
    assert.equal((await api(LEASES, 'POST', lease('behind.example/9/c10c', Date.now() - 120_000))).status, 201);
    let renewing = true;
    const renewer = (async () => {
      while (renewing) {
        await api(LOCK, 'PATCH', { spec: { renewTime: microTime(Date.now() - 120_000) } }, 'application/merge-patch+json');
        await sleep(2000);
      }
    })();
    const r = await up([], { env: { MESHDEMO_LOCK_WAIT: '8s' } });
    renewing = false;
    await renewer;
    assert.equal(r.code, 3, r.stderr + r.stdout);
    assert.match(errorLines(r.stderr)[0], /another meshdemo up \(holder behind\.example\/9\/c10c\) is running against this cluster/);
    assert.equal((await api(LOCK)).body.spec.holderIdentity, 'behind.example/9/c10c');
  });

  it('a holder that stopped renewing is taken over after 30 s unchanged, even when its renewTime lies in our future', async () => {
    // a dead holder whose clock was an hour ahead of ours
    assert.equal((await api('/apis/apps/v1/namespaces/istio-system/deployments/kiali')).status, 404, 'up still has work to do');
    await api(LOCK, 'PATCH', { spec: lease('ahead.example/9/f00d', Date.now() + 3_600_000).spec }, 'application/merge-patch+json');
    const started = Date.now();
    const r = await up([], { env: { MESHDEMO_LOCK_WAIT: '60s' } });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.ok(r.events().some((e) => e.type === 'log' && /took over the lock of ahead\.example\/9\/f00d, which had not renewed it for 3\ds/.test(e.message)), r.stdout);
    assert.ok(Date.now() - started >= 30_000, 'it waited a whole lease duration first');
    assert.equal((await api(LOCK)).status, 404);
  });
  it('a live holder in another PID namespace on the same hostname is not judged dead by its PID: up waits for the observed expiry, down leaves its Lease', async () => {
    assert.equal(process.getuid?.(), 0, 'unshare --pid needs root (the tests run as root, see test/setup.sh)');
    // a live process in a new PID namespace (unshare --pid --fork, util-linux), whose PID there is one that does not
    // exist in ours (ns_last_pid is set in the new namespace before it forks): it computes its holder identity with
    // meshdemo's own code, prints it, and keeps running
    const lockModule = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../src/record/lock.js');
    const script = `import(${JSON.stringify(lockModule)}).then((m) => { console.log(m.newHolderIdentity()); setInterval(() => {}, 1e9); })`;
    const holder: ChildProcess = spawn('unshare', ['--pid', '--fork', '--kill-child', '--mount-proc', 'sh', '-c', 'echo 77776 > /proc/sys/kernel/ns_last_pid && "$0" -e "$1"', process.execPath, script], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    try {
      const identity = await new Promise<string>((resolve, reject) => {
        let out = '';
        holder.stdout!.on('data', (c) => {
          out += c;
          if (out.includes('\n')) resolve(out.trim());
        });
        holder.on('exit', (code) => reject(new Error(`the holder in the other PID namespace exited (${code})`)));
      });
      const [host, pid] = identity.split('/');
      assert.equal(host, os.hostname(), 'same hostname');
      assert.equal(pid, '77777', 'its PID in its own namespace');
      assert.ok(!fs.existsSync('/proc/77777'), 'a PID that no process of our namespace has: judged by PID, the holder would be dead');
      await api(LOCK, 'DELETE');
      assert.equal((await api(LEASES, 'POST', lease(identity, Date.now()))).status, 201);

      // down with nothing recorded clears only stale locks: this one is not stale
      const down = await demo.meshdemo(['-n', 'nothing-recorded-here', 'down', '--yes']);
      assert.equal(down.code, 0, down.stderr);
      assert.doesNotMatch(down.stdout, /removed the lock/);
      assert.equal((await api(LOCK)).body?.spec?.holderIdentity, identity, "down left the other namespace's Lease alone");

      await api('/apis/apps/v1/namespaces/istio-system/deployments/kiali', 'DELETE'); // work for up, so it needs the lock
      const r = await up([], { env: { MESHDEMO_LOCK_WAIT: '5s' } });
      assert.equal(r.code, 3, r.stderr + r.stdout);
      assert.equal(errorLines(r.stderr)[0].startsWith(`error: another meshdemo up (holder ${identity}) is running against this cluster`), true, r.stderr);
      assert.equal((await api(LOCK)).body.spec.holderIdentity, identity, 'its lock was not taken');

      // it stops renewing (it never did): taken over once this run has seen the Lease unchanged for 30 s
      const later = await up([], { env: { MESHDEMO_LOCK_WAIT: '60s' } });
      assert.equal(later.code, 0, later.stderr + later.stdout);
      assert.ok(later.events().some((e) => e.type === 'log' && e.message.startsWith(`took over the lock of ${identity}, which had not renewed it for 3`)), later.stdout);
    } finally {
      holder.kill('SIGKILL');
    }
  });
});
