// 1. Addons apply on an empty cluster: meshdemo's `addons` step (the real Istio 1.8.4 samples/addons YAML; CRDs
// first, waited on until Established and served, then the rest, recorded in the inventory) against
// `kubectl apply -f samples/addons`, re-run until it succeeds (the first try fails: the Kiali CRD race).
//
// Every repetition uses a fresh control plane per tool (an empty cluster: only the istio-system namespace, which
// istioctl install would have created, and its default ServiceAccount). Both tools run as their own process.
// Timed:
// - apply: process start until every object is applied — for meshdemo, the step's "applied N objects" line (after
//   its CRD wait); for kubectl, the sum of its apply attempts until one exits 0. Target: meshdemo ≤ ½ kubectl.
// - with readiness: meshdemo's whole step (it then waits for the addon Deployments), against kubectl's attempts
//   plus `kubectl wait --for=condition=Available deployment --all -n istio-system`.
// Simulated as in the integration tests: the node (test/support/node-simulator.ts marks pods Ready).
import fs from 'node:fs';
import path from 'node:path';
import { apiRequest, startControlPlane, type ControlPlane } from '../test/support/control-plane.js';
import { startNodeSimulator } from '../test/support/node-simulator.js';
import { FIXTURES } from '../test/support/release-archive.js';
import { BENCH_DIST, controlPlanePids, findKubectl, isRequestTrace, spread, procCpuMs, list, log, loopbackEnv, median, ms, onCleanup, ratio, reps, timeCommand, tmpDir, type BenchResult } from './common.js';

const NS = 'istio-system';
const MAX_KUBECTL_ATTEMPTS = 10;

interface Sample {
  applyMs: number;
  /** meshdemo: from the runner's step start (after Node start-up and module loading) to "applied N objects". */
  stepMs?: number;
  totalMs: number;
  /** CPU of the tool's own process(es), and of the control plane (etcd, API server, controller manager), for the whole run. */
  clientCpuMs: number;
  serverCpuMs: number;
  attempts?: number;
  firstError?: string;
  objects?: string;
  requests?: number;
}

/** An empty cluster, as the addons step finds it after istioctl install: istio-system and its default ServiceAccount. */
async function emptyCluster(): Promise<{ cp: ControlPlane; stop: () => Promise<void> }> {
  const cp = await startControlPlane();
  const stopCp = onCleanup(() => cp.stop());
  const sim = await startNodeSimulator(cp.kubeconfigPath);
  const stopSim = onCleanup(() => sim.stop());
  const ca = fs.readFileSync(cp.caFile);
  const api = (p: string, method = 'GET', body?: unknown) => apiRequest(cp.server, { ca, token: cp.adminToken, path: p, method, body });
  const created = await api('/api/v1/namespaces', 'POST', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NS } });
  if (created.status !== 201) throw new Error(`create namespace ${NS}: ${created.status} ${created.body}`);
  const deadline = Date.now() + 60_000;
  while ((await api(`/api/v1/namespaces/${NS}/serviceaccounts/default`)).status !== 200) {
    if (Date.now() > deadline) throw new Error(`no default ServiceAccount in ${NS}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  // A control plane that has just started is still busy for a while (controllers starting, bootstrap objects):
  // wait until etcd + kube-apiserver + kube-controller-manager use less than 15% of a core over half a second.
  const pids = controlPlanePids(cp.dir);
  const settleBy = Date.now() + 20_000;
  for (let quiet = 0; quiet < 2 && Date.now() < settleBy; ) {
    const before = procCpuMs(pids);
    await new Promise((r) => setTimeout(r, 500));
    quiet = procCpuMs(pids) - before < 75 ? quiet + 1 : 0;
  }
  return {
    cp,
    stop: async () => {
      await stopSim();
      await stopCp();
    },
  };
}

async function meshdemoOnce(tmp: string, i: number): Promise<Sample> {
  // the release tree the step reads its YAML from: <cache>/istio/1.8.4/tree/istio-1.8.4/samples → the fixtures
  const cache = path.join(tmp, `cache-${i}`);
  const release = path.join(cache, 'istio', '1.8.4', 'tree', 'istio-1.8.4');
  fs.mkdirSync(release, { recursive: true });
  fs.symlinkSync(path.join(FIXTURES, 'samples'), path.join(release, 'samples'));
  const { cp, stop } = await emptyCluster();
  try {
    let applyMs = NaN;
    let startedAt = NaN;
    let objects = '';
    let requests: number | undefined;
    const pids = controlPlanePids(cp.dir);
    const server0 = procCpuMs(pids);
    const r = await timeCommand(process.execPath, [path.join(BENCH_DIST, 'addons-step.js'), cp.kubeconfigPath, cache], {
      env: loopbackEnv(),
      timeoutMs: 600_000,
      cpu: true,
      onStdoutLine: (line, at) => {
        const e = JSON.parse(line);
        if (e.type === 'step' && e.status === 'start') startedAt = at;
        const m = e.type === 'log' ? /^applied (\d+) objects \((\d+) created\)/.exec(e.message) : null;
        if (m) {
          applyMs = at;
          objects = `${m[1]} applied, ${m[2]} created`;
        }
        if (isRequestTrace(e)) requests = (requests ?? 0) + 1;
      },
    });
    if (r.code !== 0) throw new Error(`meshdemo addons step exited ${r.code}: ${r.stderr.slice(-3000)}`);
    if (!Number.isFinite(applyMs)) throw new Error(`no "applied N objects" line from the addons step:\n${r.stdout.slice(-2000)}`);
    return { applyMs, stepMs: applyMs - startedAt, totalMs: r.ms, clientCpuMs: r.cpuMs ?? NaN, serverCpuMs: procCpuMs(pids) - server0, objects, requests };
  } finally {
    await stop();
  }
}

async function kubectlOnce(kubectl: string, tmp: string, i: number): Promise<Sample> {
  const { cp, stop } = await emptyCluster();
  try {
    const base = ['--kubeconfig', cp.kubeconfigPath, '--cache-dir', path.join(tmp, `kubectl-cache-${i}`)];
    const env = loopbackEnv();
    let applyMs = 0;
    let clientCpuMs = 0;
    let attempts = 0;
    let firstError = '';
    const pids = controlPlanePids(cp.dir);
    const server0 = procCpuMs(pids);
    for (;;) {
      attempts++;
      const r = await timeCommand(kubectl, [...base, 'apply', '-f', path.join(FIXTURES, 'samples', 'addons')], { env, timeoutMs: 300_000, cpu: true });
      applyMs += r.ms;
      clientCpuMs += r.cpuMs ?? NaN;
      if (r.code === 0) break;
      if (!firstError) {
        const errors = r.stderr.split('\n').filter((l) => /no matches for kind|unable to recognize|error/i.test(l));
        firstError = `${errors.length} error line(s), e.g. ${(errors[0] ?? r.stderr.split('\n')[0]).trim().slice(0, 160)}`;
      }
      if (attempts >= MAX_KUBECTL_ATTEMPTS) throw new Error(`kubectl apply failed ${attempts} times: ${r.stderr.slice(-2000)}`);
    }
    const wait = await timeCommand(kubectl, [...base, 'wait', '--for=condition=Available', 'deployment', '--all', '-n', NS, '--timeout=300s'], { env, timeoutMs: 330_000, cpu: true });
    if (wait.code !== 0) throw new Error(`kubectl wait exited ${wait.code}: ${wait.stderr}`);
    clientCpuMs += wait.cpuMs ?? NaN;
    return { applyMs, totalMs: applyMs + wait.ms, clientCpuMs, serverCpuMs: procCpuMs(pids) - server0, attempts, firstError };
  } finally {
    await stop();
  }
}

export async function run(): Promise<BenchResult> {
  const kubectl = findKubectl();
  if (!kubectl) throw new Error('no kubectl found (apt-get install kubernetes-client, or set MESHDEMO_BENCH_KUBECTL)');
  const n = reps();
  const tmp = tmpDir('addons');
  const cleanTmp = onCleanup(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const md: Sample[] = [];
  const kc: Sample[] = [];
  try {
    for (let i = 0; i < n; i++) {
      // alternate the order, so neither tool always runs first on a machine that warms up or gets busier
      for (const tool of i % 2 ? ['kubectl', 'meshdemo'] : ['meshdemo', 'kubectl']) {
        if (tool === 'meshdemo') {
          const s = await meshdemoOnce(tmp, i);
          log(`addons: meshdemo #${i + 1}: apply ${ms(s.applyMs)}, with readiness ${ms(s.totalMs)} (${s.objects}, ${s.requests} requests)`);
          md.push(s);
        } else {
          const s = await kubectlOnce(kubectl.path, tmp, i);
          log(`addons: kubectl #${i + 1}: apply ${ms(s.applyMs)} in ${s.attempts} attempts, with wait ${ms(s.totalMs)}`);
          kc.push(s);
        }
      }
    }
  } finally {
    await cleanTmp();
  }
  const mdStep = median(md.map((s) => s.stepMs!));
  const mdApply = median(md.map((s) => s.applyMs));
  const kcApply = median(kc.map((s) => s.applyMs));
  const mdTotal = median(md.map((s) => s.totalMs));
  const kcTotal = median(kc.map((s) => s.totalMs));
  const attempts = kc.map((s) => s.attempts!);
  const cpu = (xs: Sample[]) => `${ms(median(xs.map((s) => s.clientCpuMs)))} / ${ms(median(xs.map((s) => s.serverCpuMs)))}`;
  return {
    name: 'addons',
    title: `1. Addons apply on an empty cluster (median of ${n}; each run on a fresh, settled control plane)`,
    headers: ['', 'apply (median)', 'apply (runs)', 'attempts', 'vs kubectl', 'with Deployment readiness', 'CPU: tool / control plane'],
    rows: [
      ['meshdemo addons step (check + apply incl. CRD wait + inventory)', ms(mdStep), list(md.map((s) => s.stepMs!)), '1, no error', ratio(mdStep, kcApply), '', ''],
      ['  … the same, timed from process start (Node start-up too)', ms(mdApply), list(md.map((s) => s.applyMs)), '', ratio(mdApply, kcApply), ms(mdTotal), cpu(md)],
      ['kubectl apply -f samples/addons, re-run until exit 0', ms(kcApply), list(kc.map((s) => s.applyMs)), attempts.join(', '), '1.00×', `${ms(kcTotal)} (+ kubectl wait)`, cpu(kc)],
    ],
    targets: [
      {
        what: "meshdemo's addon step at most half of kubectl's total apply time, in one pass, without error",
        met: mdStep <= kcApply / 2,
        figure: ratio(mdStep, kcApply),
        spread: spread(md.map((s, i) => s.stepMs! / kc[i].applyMs)),
        detail: `${ms(mdStep)} vs ${ms(kcApply)} = ${ratio(mdStep, kcApply)} (from process start: ${ms(mdApply)} = ${ratio(mdApply, kcApply)}); kubectl needed ${attempts.join(', ')} attempts`,
      },
    ],
    notes: [
      `meshdemo: ${md[0]?.objects}, ${median(md.map((s) => s.requests ?? NaN))} API requests (median) incl. the inventory writes; its step runs in its own process (bench/addons-step.ts) and is timed to its "applied N objects" line, before the readiness wait`,
      `kubectl: ${kubectl.path} ${kubectl.version} (${kubectl.source}), fresh --cache-dir per run; first attempt: ${kc[0]?.firstError || 'no error'}`,
      'CPU (medians, whole run incl. readiness): the tool\'s processes (GNU time) / etcd + kube-apiserver + kube-controller-manager (/proc), the node simulator excluded',
      'both: a fresh kube-apiserver + kube-controller-manager 1.20.2 per run, with istio-system and its default ServiceAccount already there; pods marked Ready by the node simulator',
    ],
  };
}
