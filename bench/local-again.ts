// 7. `up` after `down` on the local kind cluster (issue 17), against the first `up` in the same round:
//
//   up (a new cluster: images built, Istio's and the addons' taken from the host's Docker, all loaded into the node)
//   down (the cluster deleted; the host's Docker keeps every image)
//   up again (a new cluster again: nothing built, nothing pulled by the host, every image loaded into the new node)
//
// In the stand-in world (test/support/kind-standin.ts: its node is the real control plane and the node simulator;
// a private dockerd with the base image tagged under Istio's and the addons' names, as a host that pulled them once
// has them), so the figure says how much the pre-load and the kept images save here, not on a laptop pulling from
// Docker Hub. Counted as well: the registry pulls each cluster's "kubelet" made (its pulls.log). Target: the second
// cluster pulls nothing from a registry but the images whose pull policy is Always (Kiali), which no pre-load spares.
import fs from 'node:fs';
import path from 'node:path';
import { buildReleaseArchive } from '../test/support/release-archive.js';
import { startReleaseServer } from '../test/support/release-server.js';
import { startDockerEnv } from '../test/support/docker-env.js';
import { stopStandinClusters } from '../test/support/kind-standin.js';
import { KIALI, kindRelease, PRELOADED, readLines, sandbox } from '../test/support/local-sandbox.js';
import { list, log, loopbackEnv, median, MESHDEMO_BIN, mustRun, onCleanup, ratio, reps, spread, type BenchResult } from './common.js';

export async function run(): Promise<BenchResult> {
  const n = reps(2);
  const docker = await startDockerEnv();
  const stopDocker = onCleanup(() => docker.stop());
  for (const ref of PRELOADED) await docker.docker(['tag', docker.baseImage, ref]);
  const firsts: number[] = [];
  const agains: number[] = [];
  const pullsAgain: string[][] = [];
  const rows: string[][] = [];
  for (let round = 1; round <= n; round++) {
    const sb = sandbox(`bench-local-${round}`, { DOCKER_HOST: docker.dockerHost });
    const cleanSandbox = onCleanup(async () => {
      await stopStandinClusters(sb.kindState);
      fs.rmSync(sb.tmp, { recursive: true, force: true });
    });
    const archive = await buildReleaseArchive({ outDir: path.join(sb.tmp, 'release') });
    const server = await startReleaseServer({ '1.8.4/istio-1.8.4-linux-amd64.tar.gz': archive.path, ...kindRelease() });
    const stopServer = onCleanup(() => server.close());
    const meshdemo = (args: string[]) => mustRun(process.execPath, [MESHDEMO_BIN, '--cache-dir', sb.cache, ...args], { env: loopbackEnv(sb.env), timeoutMs: 900_000 });
    const up = () => meshdemo(['up', '--yes', '--json', '--istio-mirror', server.url, '--kind-mirror', server.url, '--base-image', docker.baseImage]);
    const pulls = () => [...new Set(readLines(path.join(sb.kindState, 'meshdemo', 'pulls.log')).map((l) => l.pulled as string))].sort();
    // the Istio release and kind are downloaded before the clock: both runs find them in the cache
    await meshdemo(['download', '--istio-mirror', server.url, '--kind-mirror', server.url]);
    log(`local-again round ${round}/${n}: first up`);
    const first = await up();
    const pullsFirst = pulls();
    await meshdemo(['down', '--yes']);
    log(`local-again round ${round}/${n}: up again after down`);
    const again = await up();
    const pulled = pulls();
    await meshdemo(['down', '--yes']);
    firsts.push(first.ms);
    agains.push(again.ms);
    pullsAgain.push(pulled);
    rows.push([String(round), `${(first.ms / 1000).toFixed(1)} s`, `${(again.ms / 1000).toFixed(1)} s`, ratio(again.ms, first.ms), pullsFirst.join(', ') || 'none', pulled.join(', ') || 'none']);
    await stopServer();
    await cleanSandbox();
  }
  await stopDocker();
  const unexpected = pullsAgain.map((p) => p.filter((ref) => ref !== KIALI));
  return {
    name: 'local-again',
    title: 'up after down on the local kind cluster vs the first up (stand-in world)',
    headers: ['round', 'first up', 'up after down', 'ratio', 'registry pulls, first cluster', 'registry pulls, second cluster'],
    rows,
    targets: [
      {
        what: 'the second cluster pulls nothing from a registry but images with imagePullPolicy Always',
        met: unexpected.every((p) => p.length === 0),
        figure: `${Math.max(...unexpected.map((p) => p.length))} other pulls`,
        spread: `${Math.min(...unexpected.map((p) => p.length))}–${Math.max(...unexpected.map((p) => p.length))} pulls`,
        detail: `allowed: ${KIALI} (pull policy Always); up after down ${ratio(median(agains), median(firsts))} of the first up (spread ${spread(agains.map((a, i) => a / firsts[i]))}; first ${list(firsts)}, again ${list(agains)})`,
      },
    ],
    notes: ['no time target: in the stand-in world nothing is slow to pull; on a laptop the second cluster spares every Docker Hub pull but Kiali\'s'],
  };
}
