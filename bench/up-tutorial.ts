// 6. `meshdemo up --no-app` from an empty cluster against the tutorial's own command sequence typed by hand,
// counting machine time only (no human pauses), readiness waits included:
//
//   istioctl install --set profile=demo -y
//   kubectl label namespace default istio-injection=enabled
//   kubectl apply -f samples/addons                   repeated until it exits 0 (the Kiali CRD race)
//   for kiali, grafana, prometheus, tracing:
//     kubectl -n istio-system get svc <name> -o yaml  → edited to type NodePort (kiali 31001, the others
//     31002–31004, as meshdemo sets them; the edit itself is not timed) → kubectl apply -f <edited file>
//
// Both run on a fresh control plane each (kube-apiserver + kube-controller-manager 1.20.2, node simulator), with
// the same release (downloaded once, before the clock: the script's user has it unpacked too) and so the same
// istioctl stand-in. kubectl is Debian's 1.20 (bench/common.ts findKubectl). Rounds alternate which goes first.
// Target: meshdemo ≤ 0.8× the script.
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { startControlPlane } from '../test/support/control-plane.js';
import { startNodeSimulator } from '../test/support/node-simulator.js';
import { buildReleaseArchive } from '../test/support/release-archive.js';
import { startReleaseServer } from '../test/support/release-server.js';
import { findKubectl, list, log, spread, loopbackEnv, median, MESHDEMO_BIN, ms, mustRun, onCleanup, ratio, reps, timeCommand, tmpDir, type BenchResult } from './common.js';

const ASSET = '1.8.4/istio-1.8.4-linux-amd64.tar.gz';
const NODE_PORTS: Record<string, number> = { kiali: 31001, grafana: 31002, prometheus: 31003, tracing: 31004 };
/** The Service port that gets the node port (src/settings.ts DASHBOARDS). */
const PORT_NAMES: Record<string, string | undefined> = { kiali: 'http', grafana: undefined, prometheus: 'http', tracing: 'http-query' };

interface Measured {
  ms: number;
  cpuMs: number;
  detail: string;
}

async function withFreshCluster<T>(fn: (kubeconfig: string) => Promise<T>): Promise<T> {
  const cp = await startControlPlane();
  const sim = await startNodeSimulator(cp.kubeconfigPath);
  try {
    return await fn(cp.kubeconfigPath);
  } finally {
    await sim.stop();
    await cp.stop();
  }
}

export async function run(): Promise<BenchResult> {
  const n = reps();
  const kubectl = findKubectl();
  if (!kubectl) throw new Error('no kubectl found (see bench/RESULTS.md: Debian kubernetes-client)');
  const tmp = tmpDir('up-tutorial');
  const cleanTmp = onCleanup(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const archive = await buildReleaseArchive({ outDir: path.join(tmp, 'release') });
  const server = await startReleaseServer({ [ASSET]: archive.path });
  const stopServer = onCleanup(() => server.close());
  const cache = path.join(tmp, 'cache');
  const env = loopbackEnv();
  // a kubeconfig is named (it need not exist yet), so download fetches the Istio release only, not kind
  await mustRun(process.execPath, [MESHDEMO_BIN, '--kubeconfig', path.join(tmp, 'no-cluster.kubeconfig'), '--cache-dir', cache, 'download', '--istio-mirror', server.url], { env });
  const release = path.join(cache, 'istio', '1.8.4', 'tree', 'istio-1.8.4');
  const istioctl = path.join(release, 'bin', 'istioctl');

  const meshdemo = (kubeconfig: string): Promise<Measured> =>
    mustRun(process.execPath, [MESHDEMO_BIN, '--kubeconfig', kubeconfig, '--cache-dir', cache, 'up', '--no-app', '--yes', '--json', '--istio-mirror', server.url], { env, cpu: true, timeoutMs: 900_000 }).then((r) => {
      // where its time went: the runner's step events (readiness waits are inside the steps)
      const steps = r.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l))
        .filter((e) => e.type === 'step' && e.status !== 'start' && typeof e.durationMs === 'number')
        .map((e) => `${e.id} ${ms(e.durationMs)}${e.status === 'skipped' ? ' (skipped)' : ''}`);
      return { ms: r.ms, cpuMs: r.cpuMs ?? NaN, detail: steps.join(', ') };
    });

  const script = async (kubeconfig: string, round: number): Promise<Measured> => {
    const work = path.join(tmp, `script-${round}`);
    fs.mkdirSync(work, { recursive: true });
    const kenv = loopbackEnv({ KUBECONFIG: kubeconfig });
    const kc = ['--cache-dir', path.join(work, 'kube-cache')];
    let total = 0;
    let cpu = 0;
    const timed = async (cmd: string, args: string[], ok = true) => {
      const r = await timeCommand(cmd, args, { env: kenv, cpu: true, timeoutMs: 900_000 });
      total += r.ms;
      cpu += r.cpuMs ?? NaN;
      if (ok && r.code !== 0) throw new Error(`${path.basename(cmd)} ${args.join(' ')} exited ${r.code}: ${r.stderr.slice(-1500)}`);
      return r;
    };
    const phases: string[] = [];
    const mark = (name: string, since: number) => phases.push(`${name} ${ms(total - since)}`);
    await timed(istioctl, ['install', '--set', 'profile=demo', '-y']);
    mark('istioctl install', 0);
    let at = total;
    await timed(kubectl.path, [...kc, 'label', 'namespace', 'default', 'istio-injection=enabled']);
    mark('label', at);
    at = total;
    let attempts = 0;
    for (;;) {
      attempts++;
      const r = await timed(kubectl.path, [...kc, 'apply', '-f', path.join(release, 'samples', 'addons')], false);
      if (r.code === 0) break;
      if (attempts >= 20) throw new Error(`kubectl apply -f samples/addons failed ${attempts} times: ${r.stderr.slice(-1500)}`);
    }
    mark(`addons (${attempts} attempts)`, at);
    at = total;
    for (const [name, nodePort] of Object.entries(NODE_PORTS)) {
      const got = await timed(kubectl.path, [...kc, '-n', 'istio-system', 'get', 'svc', name, '-o', 'yaml']);
      const svc = yaml.load(got.stdout) as { spec: { type: string; ports: Array<{ name?: string; nodePort?: number }> } };
      svc.spec.type = 'NodePort';
      const port = svc.spec.ports.find((p) => p.name === PORT_NAMES[name]) ?? svc.spec.ports[0];
      port.nodePort = nodePort;
      const file = path.join(work, `${name}.yaml`);
      fs.writeFileSync(file, yaml.dump(svc));
      await timed(kubectl.path, [...kc, 'apply', '-f', file]);
    }
    mark('4 services to NodePort', at);
    return { ms: total, cpuMs: cpu, detail: phases.join(', ') };
  };

  const md: Measured[] = [];
  const sc: Measured[] = [];
  try {
    for (let round = 0; round < n; round++) {
      for (const who of round % 2 ? ['script', 'meshdemo'] : ['meshdemo', 'script']) {
        const m = await withFreshCluster((kubeconfig) => (who === 'meshdemo' ? meshdemo(kubeconfig) : script(kubeconfig, round)));
        (who === 'meshdemo' ? md : sc).push(m);
        log(`up-tutorial: #${round + 1} ${who}: ${ms(m.ms)}${m.detail ? ` (${m.detail})` : ''}`);
      }
    }
  } finally {
    await stopServer();
    await cleanTmp();
  }
  const m = median(md.map((x) => x.ms));
  const s = median(sc.map((x) => x.ms));
  const ratios = md.map((x, i) => x.ms / sc[i].ms);
  return {
    name: 'up-tutorial',
    title: `6. up --no-app from an empty cluster vs the tutorial's commands by hand (machine time, median of ${n}, alternating, fresh control plane each)`,
    headers: ['what', 'wall (median)', 'wall (runs)', 'vs script', 'CPU of the tools (median)'],
    rows: [
      ['meshdemo up --no-app --yes (release cached)', ms(m), list(md.map((x) => x.ms)), ratio(m, s), ms(median(md.map((x) => x.cpuMs)))],
      [`istioctl install + kubectl label + apply addons until ok + 4× get/edit/apply (kubectl ${kubectl.version})`, ms(s), list(sc.map((x) => x.ms)), '1.00×', ms(median(sc.map((x) => x.cpuMs)))],
    ],
    targets: [
      {
        what: 'meshdemo up --no-app ≤ 0.8× the tutorial\'s command sequence',
        met: m <= 0.8 * s,
        figure: ratio(m, s),
        spread: spread(ratios),
        detail: `${ms(m)} vs ${ms(s)} = ${ratio(m, s)}; per-round ratios ${ratios.map((x) => x.toFixed(2)).join(', ')} (median ${median(ratios).toFixed(2)}×)`,
      },
    ],
    notes: [
      ...md.map((x, i) => `meshdemo round ${i + 1}: ${x.detail}`),
      ...sc.map((x, i) => `script round ${i + 1}: ${x.detail}`),
      'same istioctl stand-in for both (it applies the real rendered control plane and waits for its readiness); meshdemo also waits for the addon Deployments to be ready, the script does not',
      'CPU = user + system of the tools\' processes (GNU time), control plane excluded',
    ],
  };
}
