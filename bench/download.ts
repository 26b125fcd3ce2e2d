// 4. `meshdemo download` from the local release server (test/support/release-server.ts, on 127.0.0.1), with a fresh
// cache each repetition, against `curl -o` + `curl .sha256` + `sha256sum -c` + `tar xzf` run in sequence, on two
// archives the bench builds (test/support/release-archive.ts):
// - the bench archive: the release-shaped tree with a 44 MiB incompressible filler (~46 MB);
// - a mixed archive: the same tree with 30 MB of random data and 30 MB of compressible text (~38 MB packed, 60 MB
//   unpacked), where gunzip does real work.
// The whole meshdemo process is measured: Node start-up, fetching the .sha256, the one streaming pass (download,
// hash, gunzip, tar, files) and its last check, `istioctl version --remote=false`. That istioctl is a one-line sh
// script here (the real one is a native binary that answers in milliseconds; the test stand-in would add a Node
// start-up that the real tool does not have). Runs interleave, alternating which goes first.
// Target (issue 20): process CPU (user + sys of the process, its threads and its children, from GNU time) ≤ 1.0×
// the pipeline's, median of 5 after 1 warm-up, on each archive. Wall time is reported too.
// Alternatives side by side: MESHDEMO_BENCH_DOWNLOAD_ALT="label=/path/to/checkout,…" (each a built checkout, e.g. a
// git worktree of another commit) runs that checkout's bin/meshdemo in the same interleaved rounds; each gets its row
// and its per-round ratios against the pipeline of the same round (the targets stay this checkout's).
import fs from 'node:fs';
import path from 'node:path';
import { buildReleaseArchive, type ReleaseArchive } from '../test/support/release-archive.js';
import { startReleaseServer } from '../test/support/release-server.js';
import { list, log, loopbackEnv, median, MESHDEMO_BIN, ms, mustRun, onCleanup, ratio, spread, tmpDir, type BenchResult, type Target } from './common.js';

const ASSET = '1.8.4/istio-1.8.4-linux-amd64.tar.gz';

interface ArchiveSpec {
  label: string;
  padBytes: number;
  textBytes: number;
}

const ARCHIVES: ArchiveSpec[] = [
  { label: 'bench archive (44 MiB random filler)', padBytes: 44 * 2 ** 20, textBytes: 0 },
  { label: 'mixed archive (30 MB random + 30 MB text)', padBytes: 30e6, textBytes: 30e6 },
];

interface Alternative {
  label: string;
  bin: string;
}

/** MESHDEMO_BENCH_DOWNLOAD_ALT: "label=/path/to/checkout,…". */
function alternatives(): Alternative[] {
  const spec = process.env.MESHDEMO_BENCH_DOWNLOAD_ALT ?? '';
  return spec.split(',').filter(Boolean).map((entry) => {
    const [label, dir] = entry.includes('=') ? [entry.slice(0, entry.indexOf('=')), entry.slice(entry.indexOf('=') + 1)] : [path.basename(entry), entry];
    const bin = path.join(path.resolve(dir), 'bin', 'meshdemo');
    if (!fs.existsSync(bin)) throw new Error(`MESHDEMO_BENCH_DOWNLOAD_ALT: ${bin} does not exist (give built checkouts)`);
    return { label, bin };
  });
}

interface Samples {
  md: number[];
  mdCpu: number[];
  /** Per alternative, CPU of each round. */
  altCpu: number[][];
  pipeline: number[];
  pipelineCpu: number[];
  parts: number[][];
}

async function measure(spec: ArchiveSpec, tmp: string, n: number): Promise<{ archive: ReleaseArchive; s: Samples; alts: Alternative[] }> {
  const archive = await buildReleaseArchive({ outDir: path.join(tmp, 'release'), padBytes: spec.padBytes, textBytes: spec.textBytes, istioctlScript: '#!/bin/sh\necho 1.8.4\n' });
  const server = await startReleaseServer({ [ASSET]: archive.path });
  const stopServer = onCleanup(() => server.close());
  // a kubeconfig is named (it need not exist), so download fetches the Istio release only — what the curl pipeline fetches — not kind
  const NAMED_CLUSTER = ['--kubeconfig', path.join(tmp, 'no-cluster.kubeconfig')];
  const url = `${server.url}/${ASSET}`;
  const env = loopbackEnv({ CI: 'true' });
  const alts = alternatives();
  const s: Samples = { md: [], mdCpu: [], altCpu: alts.map(() => []), pipeline: [], pipelineCpu: [], parts: [] };
  const complete = (tree: string) => {
    const tools = path.join(tree, 'istio-1.8.4', 'tools');
    return (!spec.padBytes || fs.statSync(path.join(tools, 'padding.bin')).size === spec.padBytes) && (!spec.textBytes || fs.statSync(path.join(tools, 'padding.txt')).size === spec.textBytes);
  };
  try {
    for (let i = 0; i < n + 1; i++) {
      const warmup = i === 0;
      const tools = ['meshdemo', ...alts.map((_, k) => `alt${k}`), 'pipeline'];
      for (const tool of i % 2 ? tools.reverse() : tools) {
        const dir = path.join(tmp, `${tool}-${i}`);
        fs.mkdirSync(dir);
        let tree: string;
        if (tool !== 'pipeline') {
          const alt = tool === 'meshdemo' ? undefined : Number(tool.slice(3));
          const r = await mustRun(process.execPath, [alt === undefined ? MESHDEMO_BIN : alts[alt].bin, ...NAMED_CLUSTER, '--cache-dir', dir, 'download', '--istio-mirror', server.url, '--json'], { env, timeoutMs: 300_000, cpu: true });
          const result = r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((e) => e.type === 'result');
          if (!result?.ok || !result.downloaded) throw new Error(`meshdemo download: ${r.stdout}${r.stderr}`);
          tree = path.join(dir, 'istio', '1.8.4', 'tree');
          if (!warmup && alt !== undefined) s.altCpu[alt].push(r.cpuMs ?? NaN);
          else if (!warmup) {
            s.md.push(r.ms);
            s.mdCpu.push(r.cpuMs ?? NaN);
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
            s.pipeline.push(steps.reduce((a, x) => a + x.ms, 0));
            s.pipelineCpu.push(steps.reduce((a, x) => a + (x.cpuMs ?? NaN), 0));
            s.parts.push(steps.map((x) => x.cpuMs ?? NaN));
          }
        }
        if (!complete(tree)) throw new Error(`${tool}: tree incomplete`);
        fs.rmSync(dir, { recursive: true, force: true });
      }
      if (!warmup) log(`download (${spec.label}): #${i}: meshdemo CPU ${ms(s.mdCpu.at(-1)!)} (wall ${ms(s.md.at(-1)!)}), curl+sha256sum+tar CPU ${ms(s.pipelineCpu.at(-1)!)} (wall ${ms(s.pipeline.at(-1)!)})`);
    }
  } finally {
    await stopServer();
    fs.rmSync(path.join(tmp, 'release'), { recursive: true, force: true });
  }
  return { archive, s, alts };
}

export async function run(): Promise<BenchResult> {
  const n = Number(process.env.MESHDEMO_BENCH_DOWNLOAD_REPS) || 5;
  const tmp = tmpDir('download');
  const cleanTmp = onCleanup(() => fs.rmSync(tmp, { recursive: true, force: true }));
  const rows: string[][] = [];
  const targets: Target[] = [];
  const notes: string[] = [];
  try {
    for (const spec of ARCHIVES) {
      const { archive, s, alts } = await measure(spec, tmp, n);
      const cpu = median(s.mdCpu);
      const refCpu = median(s.pipelineCpu);
      const cpuRatios = s.mdCpu.map((x, i) => x / s.pipelineCpu[i]);
      const part = (k: number) => ms(median(s.parts.map((x) => x[k])));
      const what = `${spec.label}, ${(archive.bytes / 1e6).toFixed(1)} MB`;
      rows.push(
        [`meshdemo download — ${what}`, ms(cpu), list(s.mdCpu), ratio(cpu, refCpu), ms(median(s.md)), ratio(median(s.md), median(s.pipeline))],
        ...alts.map((alt, k) => {
          const altRatios = s.altCpu[k].map((x, i) => x / s.pipelineCpu[i]);
          return [`alternative ${alt.label} — ${what}`, ms(median(s.altCpu[k])), list(s.altCpu[k]), `${ratio(median(s.altCpu[k]), refCpu)} (rounds ${spread(altRatios)})`, '', ''];
        }),
        [`curl -o + curl .sha256 + sha256sum -c + tar xzf — ${what}`, ms(refCpu), list(s.pipelineCpu), '1.00×', ms(median(s.pipeline)), '1.00×'],
      );
      targets.push({
        what: `meshdemo download CPU ≤ 1.0× curl + curl + sha256sum -c + tar xzf (whole process, start-up included), ${spec.label}`,
        met: cpu <= refCpu,
        figure: ratio(cpu, refCpu),
        spread: spread(cpuRatios),
        detail: `CPU ${ms(cpu)} vs ${ms(refCpu)}; per-round ratios ${cpuRatios.map((r) => r.toFixed(2)).join(', ')}; wall ${ms(median(s.md))} vs ${ms(median(s.pipeline))}`,
      });
      notes.push(`${spec.label}: pipeline CPU by part (medians): curl archive ${part(0)}, curl .sha256 ${part(1)}, sha256sum ${part(2)}, tar xzf ${part(3)}`);
    }
  } finally {
    await cleanTmp();
  }
  return {
    name: 'download',
    title: `4. meshdemo download from the local release server (median of ${n} interleaved, after 1 warm-up; fresh cache each time)`,
    headers: ['pipeline', 'CPU (median)', 'CPU (runs)', 'CPU vs curl pipeline', 'wall (median)', 'wall vs curl pipeline'],
    rows,
    targets,
    notes: [...notes, 'CPU = user + system time of the processes, their threads and children (GNU time), the server\'s excluded for both; wall from spawn to exit'],
  };
}
