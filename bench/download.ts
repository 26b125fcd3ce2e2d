// 4. Download + verify + extract of a ~45 MB release-shaped archive (test/support/release-archive.ts with an
// incompressible filler) from the local release server (test/support/release-server.ts, on 127.0.0.1), with a
// fresh cache each repetition: meshdemo's download code (src/download/download.ts + extract.ts, in its own
// process, see bench/download-step.ts) against `curl -o` + `sha256sum -c` + `tar xzf` run in sequence.
// Target: no slower than that pipeline.
import fs from 'node:fs';
import path from 'node:path';
import { buildReleaseArchive } from '../test/support/release-archive.js';
import { startReleaseServer } from '../test/support/release-server.js';
import { BENCH_DIST, list, log, loopbackEnv, median, ms, mustRun, onCleanup, ratio, reps, tmpDir, type BenchResult } from './common.js';

const ASSET = '1.8.4/istio-1.8.4-linux-amd64.tar.gz';

export async function run(): Promise<BenchResult> {
  const n = Math.max(reps(), Number(process.env.MESHDEMO_BENCH_DOWNLOAD_REPS) || 5);
  const tmp = tmpDir('download');
  const cleanTmp = onCleanup(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const archive = await buildReleaseArchive({ outDir: path.join(tmp, 'release'), padBytes: 44 * 2 ** 20 });
  const server = await startReleaseServer({ [ASSET]: archive.path });
  const stopServer = onCleanup(() => server.close());
  const url = `${server.url}/${ASSET}`;
  const env = loopbackEnv();
  const md: number[] = [];
  const mdCpu: number[] = [];
  const mdOp: number[] = [];
  const pipeline: number[] = [];
  const pipelineCpu: number[] = [];
  const parts: number[][] = [];
  const phases: Array<Record<string, number>> = [];
  try {
    for (let i = 0; i < n + 1; i++) {
      const warmup = i === 0;
      for (const tool of i % 2 ? ['pipeline', 'meshdemo'] : ['meshdemo', 'pipeline']) {
        const dir = path.join(tmp, `${tool}-${i}`);
        fs.mkdirSync(dir);
        if (tool === 'meshdemo') {
          const r = await mustRun(process.execPath, [path.join(BENCH_DIST, 'download-step.js'), url, dir], { env, timeoutMs: 300_000, cpu: true });
          const out = JSON.parse(r.stdout);
          if (out.sha256 !== archive.sha256) throw new Error('meshdemo downloaded something else');
          if (!warmup) {
            md.push(r.ms);
            mdCpu.push(r.cpuMs ?? NaN);
            mdOp.push(out.phases.sha256File + out.phases.download + out.phases.extract);
            phases.push(out.phases);
          }
        } else {
          const file = path.join(dir, path.posix.basename(ASSET));
          const steps = [
            await mustRun('curl', ['-fsS', '--noproxy', '*', '-o', file, url], { env, cpu: true }),
            await mustRun('curl', ['-fsS', '--noproxy', '*', '-o', `${file}.sha256`, `${url}.sha256`], { env, cpu: true }),
            await mustRun('sha256sum', ['-c', '--quiet', `${path.basename(file)}.sha256`], { cwd: dir, cpu: true }),
            await mustRun('sh', ['-c', 'mkdir tree && tar xzf "$1" -C tree', 'sh', file], { cwd: dir, cpu: true }),
          ];
          if (!warmup) {
            pipeline.push(steps.reduce((a, s) => a + s.ms, 0));
            pipelineCpu.push(steps.reduce((a, s) => a + (s.cpuMs ?? NaN), 0));
            parts.push(steps.map((s) => s.ms));
          }
        }
        if (!fs.existsSync(path.join(dir, 'tree', 'istio-1.8.4', 'bin', 'istioctl'))) throw new Error(`${tool}: nothing extracted`);
        fs.rmSync(dir, { recursive: true, force: true });
      }
      if (!warmup) log(`download: #${i}: meshdemo ${ms(md.at(-1)!)}, curl+sha256sum+tar ${ms(pipeline.at(-1)!)}`);
    }
  } finally {
    await stopServer();
    await cleanTmp();
  }
  const m = median(md);
  const op = median(mdOp);
  const p = median(pipeline);
  const part = (k: number) => ms(median(parts.map((x) => x[k])));
  const phase = (k: string) => ms(median(phases.map((x) => x[k])));
  return {
    name: 'download',
    title: `4. Download + verify + extract of a ${(archive.bytes / 1e6).toFixed(1)} MB archive from the local release server (median of ${n}, after 1 warm-up; fresh cache each time)`,
    headers: ['pipeline', 'wall (median)', 'wall (runs)', 'vs curl pipeline', 'CPU (median)'],
    rows: [
      ['meshdemo process: start-up, fetch .sha256, download verifying, validate + extract', ms(m), list(md), ratio(m, p), ms(median(mdCpu))],
      ['  … its work alone (fetch .sha256 → extracted, inside the process)', ms(op), list(mdOp), ratio(op, p), ''],
      ['curl -o + curl .sha256 + sha256sum -c + tar xzf', ms(p), list(pipeline), '1.00×', ms(median(pipelineCpu))],
    ],
    targets: [
      {
        what: 'no slower than curl + sha256sum + tar (whole meshdemo process, start-up included)',
        met: m <= p,
        detail: `${ms(m)} vs ${ms(p)} = ${ratio(m, p)} (its work alone: ${ms(op)} = ${ratio(op, p)})`,
      },
    ],
    notes: [
      `meshdemo parts (medians): Node start-up + modules ${phase('startup')}, .sha256 ${phase('sha256File')}, download + sha256 ${phase('download')}, list + validate + extract ${phase('extract')}`,
      `pipeline parts (medians): curl archive ${part(0)}, curl .sha256 ${part(1)}, sha256sum ${part(2)}, tar xzf ${part(3)}`,
      'wall times from spawn to exit; CPU = user + system of the processes (GNU time), the server\'s excluded for both',
    ],
  };
}
