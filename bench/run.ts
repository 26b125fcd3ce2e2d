// `npm run bench` (= npm run build && node dist/bench/run.js [name…]): runs the benchmarks and prints one
// table per bench, each with its reference measured in the same run, and whether its target is met.
//
//   node dist/bench/run.js                 all of them
//   node dist/bench/run.js startup noop-up a subset
//
// Environment: MESHDEMO_BENCH_REPS (repetitions of the slow benches, default 3),
// MESHDEMO_BENCH_KUBECTL (kubectl to compare with), MESHDEMO_BENCH_JSON (write the results there as JSON).
import fs from 'node:fs';
import { formatResult, log, machine, runCleanups, type BenchResult } from './common.js';

const BENCHES: Record<string, { title: string; load: () => Promise<{ run: () => Promise<BenchResult> }> }> = {
  addons: { title: 'addons apply vs kubectl apply', load: () => import('./addons.js') },
  'noop-up': { title: 'no-op up --no-app', load: () => import('./noop-up.js') },
  startup: { title: 'start-up', load: () => import('./startup.js') },
  download: { title: 'download + verify + extract', load: () => import('./download.js') },
  images: { title: 'image step', load: () => import('./images.js') },
  'up-tutorial': { title: 'up --no-app vs the tutorial\'s commands', load: () => import('./up-tutorial.js') },
};

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  if (args.includes('--help') || args.includes('-h')) {
    process.stdout.write(`usage: node dist/bench/run.js [${Object.keys(BENCHES).join('|')}]…\n`);
    return;
  }
  const unknown = args.filter((a) => !BENCHES[a]);
  if (unknown.length) {
    process.stderr.write(`unknown bench: ${unknown.join(', ')} (choose from ${Object.keys(BENCHES).join(', ')})\n`);
    process.exitCode = 2;
    return;
  }
  const names = args.length ? args : Object.keys(BENCHES);
  const m = machine();
  const started = new Date();
  process.stdout.write(
    `meshdemo benchmarks — ${started.toISOString()}\n` +
      `machine: ${m.nproc} cores (${m.cpu}), ${m.memory} RAM, Node ${m.node}, load average at start ${m.load}\n\n`,
  );
  const results: BenchResult[] = [];
  const failed: string[] = [];
  for (const name of names) {
    const t0 = Date.now();
    log(`${name}: ${BENCHES[name].title} …`);
    try {
      const { run } = await BENCHES[name].load();
      const r = await run();
      results.push(r);
      process.stdout.write(`${formatResult(r)}\n\n`);
    } catch (err) {
      failed.push(name);
      process.stdout.write(`### ${name}: FAILED\n\n${(err as Error).stack ?? err}\n\n`);
    } finally {
      await runCleanups();
      log(`${name}: ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    }
  }
  const targets = results.flatMap((r) => r.targets.map((t) => ({ bench: r.name, ...t })));
  process.stdout.write('## Targets\n\n');
  for (const t of targets) process.stdout.write(`- ${t.met ? 'MET   ' : 'MISSED'} ${t.bench}: ${t.what} (${t.detail})\n`);
  for (const f of failed) process.stdout.write(`- FAILED ${f}\n`);
  process.stdout.write(`\ntotal ${((Date.now() - started.getTime()) / 1000).toFixed(0)} s, load average at end ${machine().load}\n`);
  if (process.env.MESHDEMO_BENCH_JSON) {
    fs.writeFileSync(process.env.MESHDEMO_BENCH_JSON, JSON.stringify({ date: started.toISOString(), machine: m, results }, null, 2));
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
