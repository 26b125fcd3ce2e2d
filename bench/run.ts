// `npm run bench` (= npm run build && node dist/bench/run.js [name…]): runs the benchmarks and prints one
// table per bench, each with its reference measured in the same run, and whether its target is met.
//
//   node dist/bench/run.js                 all of them
//   node dist/bench/run.js startup noop-up a subset
//   node dist/bench/run.js --append-results  also append this run to bench/RESULTS.md (earlier runs stay as history)
//
// Every run starts with the machine's facts (CPU model, cores, `node -e 0` time, load average, commit), and ends with
// each target: its figure, its spread over the rounds, MET or MISSED.
//
// Environment: MESHDEMO_BENCH_REPS (repetitions of the slow benches, default 3),
// MESHDEMO_BENCH_KUBECTL (kubectl to compare with), MESHDEMO_BENCH_JSON (write the results there as JSON),
// MESHDEMO_BENCH_DOWNLOAD_REPS (rounds of the download bench, default 5), MESHDEMO_BENCH_DOWNLOAD_ALT (other built
// checkouts measured beside this one in the download bench: "label=/path,…").
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { formatResult, formatTarget, log, machine, median, ms, REPO_ROOT, runCleanups, timeCommand, type BenchResult } from './common.js';

const RESULTS = path.join(REPO_ROOT, 'bench', 'RESULTS.md');

/** The commit measured, and whether the work tree differs from it. */
function commit(): string {
  const git = (...args: string[]) => spawnSync('git', ['-C', REPO_ROOT, ...args], { encoding: 'utf8' });
  const head = git('log', '-1', '--format=%h (%cs)').stdout.trim();
  if (!head) return 'unknown (not a git checkout)';
  const dirty = git('status', '--porcelain', '--untracked-files=no').stdout.trim() !== '';
  return `${head}${dirty ? ' (+ uncommitted changes)' : ''}`;
}

/** Median wall time of `node -e 0` over a few runs: the machine's speed at start-up, what the ratios are read against. */
async function nodeStartMs(runs = 7): Promise<number> {
  const times: number[] = [];
  for (let i = 0; i < runs; i++) times.push((await timeCommand(process.execPath, ['-e', '0'])).ms);
  return median(times.slice(1));
}

const BENCHES: Record<string, { title: string; load: () => Promise<{ run: () => Promise<BenchResult> }> }> = {
  addons: { title: 'addons apply vs kubectl apply', load: () => import('./addons.js') },
  'noop-up': { title: 'no-op up --no-app', load: () => import('./noop-up.js') },
  startup: { title: 'start-up', load: () => import('./startup.js') },
  download: { title: 'download + verify + extract', load: () => import('./download.js') },
  images: { title: 'image step', load: () => import('./images.js') },
  'up-tutorial': { title: 'up --no-app vs the tutorial\'s commands', load: () => import('./up-tutorial.js') },
  'local-again': { title: 'up after down on the local kind cluster', load: () => import('./local-again.js') },
};

async function main(): Promise<void> {
  const all = process.argv.slice(2);
  if (all.includes('--help') || all.includes('-h')) {
    process.stdout.write(`usage: node dist/bench/run.js [--append-results] [${Object.keys(BENCHES).join('|')}]…\n`);
    return;
  }
  const append = all.includes('--append-results');
  const args = all.filter((a) => a !== '--append-results');
  const unknown = args.filter((a) => !BENCHES[a]);
  if (unknown.length) {
    process.stderr.write(`unknown bench: ${unknown.join(', ')} (choose from ${Object.keys(BENCHES).join(', ')})\n`);
    process.exitCode = 2;
    return;
  }
  const names = args.length ? args : Object.keys(BENCHES);
  const m = machine();
  const started = new Date();
  const head = [
    `**Date:** ${started.toISOString()}. **Commit:** ${commit()}. **Benches:** ${names.join(', ')}.`,
    `**Machine:** ${m.cpu}, ${m.nproc} cores, ${m.memory} RAM, Node ${m.node}; \`node -e 0\` ${ms(await nodeStartMs())} (median of 6).`,
    `**Load average** at the start: ${m.load}.`,
  ];
  process.stdout.write(`meshdemo benchmarks\n\n${head.join('\n')}\n\n`);
  const sections: string[] = [];
  const results: BenchResult[] = [];
  const failed: string[] = [];
  for (const name of names) {
    const t0 = Date.now();
    log(`${name}: ${BENCHES[name].title} …`);
    try {
      const { run } = await BENCHES[name].load();
      const r = await run();
      results.push(r);
      sections.push(formatResult(r));
      process.stdout.write(`${sections.at(-1)}\n\n`);
    } catch (err) {
      failed.push(name);
      sections.push(`### ${name}: FAILED\n\n${(err as Error).stack ?? err}`);
      process.stdout.write(`${sections.at(-1)}\n\n`);
    } finally {
      await runCleanups();
      log(`${name}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
  const targetLines = [
    ...results.flatMap((r) => r.targets.map((t) => `- ${formatTarget(r.name, t)}`)),
    ...failed.map((f) => `- FAILED ${f}`),
  ];
  const end = `Total ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s; load average at the end ${machine().load}.`;
  process.stdout.write(`## Targets\n\n${targetLines.join('\n')}\n\n${end}\n`);
  if (process.env.MESHDEMO_BENCH_JSON) {
    fs.writeFileSync(process.env.MESHDEMO_BENCH_JSON, JSON.stringify({ date: started.toISOString(), machine: m, commit: commit(), results }, null, 2));
  }
  if (append) {
    // appended, never rewritten: RESULTS.md keeps every recorded run as history
    const section = [`## Run of ${started.toISOString().slice(0, 16).replace('T', ' ')} UTC`, '', ...head, end, '', '**Targets:**', '', ...targetLines, '', ...sections.map((s) => `${s.replace(/^### /, '#### ')}\n`)];
    fs.appendFileSync(RESULTS, `\n${section.join('\n')}\n`);
    log(`appended this run to ${RESULTS}`);
  }
  if (failed.length) process.exitCode = 1;
}

for (const sig of ['SIGINT', 'SIGTERM'] as const) {
  process.once(sig, () => {
    log(`${sig}: cleaning up`);
    void runCleanups().finally(() => process.exit(130));
  });
}

main().catch(async (err) => {
  process.stderr.write(`${(err as Error).stack ?? err}\n`);
  await runCleanups();
  process.exitCode = 1;
});
