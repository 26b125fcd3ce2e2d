// 2. No-op `up`: on a cluster where `up --no-app` has completed, the whole `meshdemo up --no-app --yes` again
// (every check, no change), as a user runs it: a new process each time. References in the same run, interleaved
// with it: `node -e 0` and `kubectl get ns` (one API call, discovery cache warm). Targets: at most 15 API requests
// and at most 3× `node -e 0`. The requests are counted from meshdemo's own request trace (--json --verbose: one
// debug event per request, "GET /api/v1/namespaces 200 12ms"); a separate run without --verbose is timed.
//
// Real: kube-apiserver + kube-controller-manager 1.20.2, the local release server, the Istio 1.8.4 YAML.
// Simulated (as in the integration tests): the node (pods marked Ready) and istioctl (a stand-in in the archive).
import fs from 'node:fs';
import path from 'node:path';
import { startControlPlane } from '../test/support/control-plane.js';
import { startNodeSimulator } from '../test/support/node-simulator.js';
import { buildReleaseArchive } from '../test/support/release-archive.js';
import { startReleaseServer } from '../test/support/release-server.js';
import { findKubectl, isRequestTrace, list, log, spread, loopbackEnv, median, MESHDEMO_BIN, ms, mustRun, onCleanup, ratio, timeCommand, tmpDir, type BenchResult } from './common.js';

const ASSET = '1.8.4/istio-1.8.4-linux-amd64.tar.gz';

export async function run(): Promise<BenchResult> {
  const rounds = Number(process.env.MESHDEMO_BENCH_NOOP_ROUNDS) || 7;
  const tmp = tmpDir('noop');
  const cleanTmp = onCleanup(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const archive = await buildReleaseArchive({ outDir: path.join(tmp, 'release') });
  const server = await startReleaseServer({ [ASSET]: archive.path });
  const stopServer = onCleanup(() => server.close());
  const cp = await startControlPlane();
  const stopCp = onCleanup(() => cp.stop());
  const sim = await startNodeSimulator(cp.kubeconfigPath);
  const stopSim = onCleanup(() => sim.stop());
  try {
    const cache = path.join(tmp, 'cache');
    const env = loopbackEnv({ STANDIN_LOG: path.join(tmp, 'istioctl.log') });
    const upArgs = [MESHDEMO_BIN, '--kubeconfig', cp.kubeconfigPath, '--cache-dir', cache, 'up', '--no-app', '--yes', '--istio-mirror', server.url];

    log('noop-up: first up --no-app (download, install, label, addons, dashboards) …');
    const first = await mustRun(process.execPath, upArgs, { env, timeoutMs: 600_000 });
    log(`noop-up: first up took ${ms(first.ms)}`);

    const kubectl = findKubectl();
    const kubectlCache = path.join(tmp, 'kubectl-cache');
    const kubectlArgs = kubectl ? ['--kubeconfig', cp.kubeconfigPath, '--cache-dir', kubectlCache, 'get', 'ns'] : [];
    if (kubectl) await mustRun(kubectl.path, kubectlArgs); // warms kubectl's discovery cache: then `get ns` is one request

    const upTimes: number[] = [];
    const nodeTimes: number[] = [];
    const kubectlTimes: number[] = [];
    const requests: number[] = [];
    let ranSteps = '';
    let trace: string[] = [];
    const warmup = 1;
    for (let round = 0; round < warmup + rounds; round++) {
      const traced = await timeCommand(process.execPath, [...upArgs, '--json', '--verbose'], { env, timeoutMs: 120_000 });
      if (traced.code !== 0) throw new Error(`no-op up exited ${traced.code}: ${traced.stderr.slice(-2000)}`);
      const events = traced.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
      const notSkipped = events.filter((e) => e.type === 'step' && e.status !== 'start' && e.status !== 'skipped').map((e) => `${e.id}:${e.status}`);
      if (notSkipped.join() !== 'preflight:done') throw new Error(`the second up was not a no-op: ${notSkipped.join(', ')}`);
      ranSteps = notSkipped.join();
      trace = events.filter(isRequestTrace).map((e) => e.message.replace(/ \d+ms$/, ''));
      const up = await timeCommand(process.execPath, [...upArgs, '--json'], { env, timeoutMs: 120_000 });
      if (up.code !== 0) throw new Error(`no-op up exited ${up.code}: ${up.stderr.slice(-2000)}`);
      const node = await timeCommand(process.execPath, ['-e', '0']);
      const kc = kubectl ? await timeCommand(kubectl.path, kubectlArgs, { env }) : undefined;
      if (kc && kc.code !== 0) throw new Error(`kubectl get ns exited ${kc.code}: ${kc.stderr}`);
      if (round < warmup) continue;
      upTimes.push(up.ms);
      nodeTimes.push(node.ms);
      if (kc) kubectlTimes.push(kc.ms);
      requests.push(trace.length);
    }
    const up = median(upTimes);
    const node = median(nodeTimes);
    const kc = median(kubectlTimes);
    const reqs = median(requests);
    const rows = [
      ['meshdemo up --no-app --yes (no-op)', ms(up), ms(Math.min(...upTimes)), `${reqs}${new Set(requests).size > 1 ? ` (${Math.min(...requests)}–${Math.max(...requests)})` : ''}`, ratio(up, node), ratio(up, kc)],
      ['node -e 0', ms(node), ms(Math.min(...nodeTimes)), '0', '1.00×', ratio(node, kc)],
      [`kubectl get ns (${kubectl?.version ?? 'not found'})`, ms(kc), kubectlTimes.length ? ms(Math.min(...kubectlTimes)) : 'n/a', '1', ratio(kc, node), '1.00×'],
    ];
    return {
      name: 'noop-up',
      title: `2. No-op up on a finished cluster (median of ${rounds} runs, interleaved with the references)`,
      headers: ['command', 'median', 'min', 'API requests', 'vs node -e 0', 'vs kubectl get ns'],
      rows,
      targets: [
        {
          what: 'no-op up: at most 15 API requests',
          met: Math.max(...requests) <= 15,
          figure: `${Math.max(...requests)} requests`,
          spread: spread(requests, ' requests', 0),
          detail: `counted from the --verbose request trace, ${rounds} runs`,
        },
        {
          what: 'no-op up ≤ 3× node -e 0 (wall)',
          met: up <= 3 * node,
          figure: ratio(up, node),
          spread: spread(upTimes.map((u, i) => u / nodeTimes[i])),
          detail: `${ms(up)} vs ${ms(node)}; runs ${list(upTimes)}`,
        },
      ],
      notes: [
        `the requests of the last run: ${trace.join('; ')}`,
        `steps that were not skipped: ${ranSteps} (the read-only preflight always runs); the first, real up --no-app took ${ms(first.ms)}`,
        kubectl ? `kubectl: ${kubectl.path} ${kubectl.version} (${kubectl.source}), discovery cache warmed before timing` : 'kubectl not found: no kubectl reference',
      ],
    };
  } finally {
    await stopSim();
    await stopCp();
    await stopServer();
    await cleanTmp();
  }
}
