// 4. `meshdemo download` of a ~45 MB release-shaped archive (test/support/release-archive.ts with an
// incompressible filler) from the local release server (test/support/release-server.ts, on 127.0.0.1), with a
// fresh cache each repetition, against `curl -o` + `curl .sha256` + `sha256sum -c` + `tar xzf` run in sequence.
// The whole meshdemo process is timed: Node start-up, fetching the .sha256, the one streaming pass (download,
// hash, gunzip, tar, files) and its last check, `istioctl version --remote=false`. That istioctl is a one-line
// sh script here (the real one is a native binary that answers in milliseconds; the test stand-in would add a
// Node start-up that the real tool does not have). Runs interleave, alternating which goes first.
// Target: ≤ 1.0× the pipeline, median of 5 after 1 warm-up; CPU time (user + sys, GNU time) reported too.
import fs from 'node:fs';
import path from 'node:path';
import { buildReleaseArchive } from '../test/support/release-archive.js';
import { startReleaseServer } from '../test/support/release-server.js';
import { list, log, loopbackEnv, median, MESHDEMO_BIN, ms, mustRun, onCleanup, ratio, tmpDir, type BenchResult } from './common.js';

const ASSET = '1.8.4/istio-1.8.4-linux-amd64.tar.gz';

export async function run(): Promise<BenchResult> {
  const n = Number(process.env.MESHDEMO_BENCH_DOWNLOAD_REPS) || 5;
  const tmp = tmpDir('download');
  // a kubeconfig is named (it need not exist), so download fetches the Istio release only — what the curl pipeline fetches — not kind
  const NAMED_CLUSTER = ['--kubeconfig', path.join(tmp, 'no-cluster.kubeconfig')];
  const cleanTmp = onCleanup(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const archive = await buildReleaseArchive({ outDir: path.join(tmp, 'release'), padBytes: 44 * 2 ** 20, istioctlScript: '#!/bin/sh\necho 1.8.4\n' });
  const server = await startReleaseServer({ [ASSET]: archive.path });
  const stopServer = onCleanup(() => server.close());
  const url = `${server.url}/${ASSET}`;
  const env = loopbackEnv({ CI: 'true' });
  const md: number[] = [];
  const mdCpu: number[] = [];
  const pipeline: number[] = [];
  const pipelineCpu: number[] = [];
  const parts: number[][] = [];
  try {
    for (let i = 0; i < n + 1; i++) {
      const warmup = i === 0;
      for (const tool of i % 2 ? ['pipeline', 'meshdemo'] : ['meshdemo', 'pipeline']) {
        const dir = path.join(tmp, `${tool}-${i}`);
        fs.mkdirSync(dir);
        let tree: string;
        if (tool === 'meshdemo') {
          const r = await mustRun(process.execPath, [MESHDEMO_BIN, ...NAMED_CLUSTER, '--cache-dir', dir, 'download', '--istio-mirror', server.url, '--json'], { env, timeoutMs: 300_000, cpu: true });
          const result = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((e) => e.type === 'result');
          if (!result?.ok || !result.downloaded) throw new Error(`meshdemo download: ${r.stdout}${r.stderr}`);
          tree = path.join(dir, 'istio', '1.8.4', 'tree');
          if (!warmup) {
            md.push(r.ms);
            mdCpu.push(r.cpuMs ?? NaN);
          }
        } else {
          const file = path.join(dir, path.posix.basename(ASSET));
          const steps = [
            await mustRun('curl', ['-fsS', '--noproxy', '*', '-o', file, url], { env, cpu: true }),
            await mustRun('curl', ['-fsS', '--noproxy', '*', '-o', `${file}.sha256`, `${url}.sha256`], { env, cpu: true }),
            await mustRun('sha256sum', ['-c', '--quiet', `${path.basename(file)}.sha256`], { cwd: dir, cpu: true }),
            await mustRun('sh', ['-c', 'mkdir tree && tar xzf "$1" -C tree', 'sh', file], { cwd: dir, cpu: true }),
          ];
          tree = path.join(dir, 'tree');
          if (!warmup) {
            pipeline.push(steps.reduce((a, s) => a + s.ms, 0));
            pipelineCpu.push(steps.reduce((a, s) => a + (s.cpuMs ?? NaN), 0));
            parts.push(steps.map((s) => s.ms));
          }
        }
        if (fs.statSync(path.join(tree, 'istio-1.8.4', 'tools', 'padding.bin')).size !== 44 * 2 ** 20) throw new Error(`${tool}: tree incomplete`);
        fs.rmSync(dir, { recursive: true, force: true });
      }
      if (!warmup) log(`download: #${i}: meshdemo ${ms(md.at(-1)!)}, curl+sha256sum+tar ${ms(pipeline.at(-1)!)}`);
    }
  } finally {
    await stopServer();
    await cleanTmp();
  }
  const m = median(md);
  const p = median(pipeline);
  const ratios = md.map((x, i) => x / pipeline[i]);
  const part = (k: number) => ms(median(parts.map((x) => x[k])));
  return {
    name: 'download',
    title: `4. meshdemo download of a ${(archive.bytes / 1e6).toFixed(1)} MB release from the local release server (median of ${n} interleaved, after 1 warm-up; fresh cache each time)`,
    headers: ['pipeline', 'wall (median)', 'wall (runs)', 'vs curl pipeline', 'CPU (median)'],
    rows: [
      ['meshdemo download (whole process)', ms(m), list(md), ratio(m, p), ms(median(mdCpu))],
      ['curl -o + curl .sha256 + sha256sum -c + tar xzf', ms(p), list(pipeline), '1.00×', ms(median(pipelineCpu))],
    ],
    targets: [
      {
        what: 'meshdemo download ≤ 1.0× curl + curl + sha256sum -c + tar xzf (whole process, start-up included)',
        met: m <= p,
        detail: `${ms(m)} vs ${ms(p)} = ${ratio(m, p)}; median of the per-round ratios ${median(ratios).toFixed(2)}×; CPU ${ms(median(mdCpu))} vs ${ms(median(pipelineCpu))}`,
      },
    ],
    notes: [
      `pipeline parts (medians): curl archive ${part(0)}, curl .sha256 ${part(1)}, sha256sum ${part(2)}, tar xzf ${part(3)}`,
      'wall times from spawn to exit; CPU = user + system of the processes (GNU time), the server\'s excluded for both',
    ],
  };
}
