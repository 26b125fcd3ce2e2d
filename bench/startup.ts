// 3. Start-up: `meshdemo --help` and `meshdemo status --help`, cold (a new Node process each time), against
// `node -e 0`. The three commands are run interleaved (round-robin), so a change in machine load hits all
// of them alike; the median of each is reported. Target: ≤ 1.5× bare Node (issue 20).
import { MESHDEMO_BIN, median, ms, ratio, spread, timeCommand, type BenchResult } from './common.js';

export async function run(): Promise<BenchResult> {
  const rounds = Number(process.env.MESHDEMO_BENCH_STARTUP_ROUNDS) || 25;
  const warmup = 3;
  const commands: Array<{ label: string; args: string[]; expect: RegExp }> = [
    { label: 'node -e 0', args: ['-e', '0'], expect: /^$/ },
    { label: 'meshdemo --help', args: [MESHDEMO_BIN, '--help'], expect: /Usage: meshdemo/ },
    { label: 'meshdemo status --help', args: [MESHDEMO_BIN, 'status', '--help'], expect: /Usage: meshdemo status/ },
    { label: 'meshdemo --version', args: [MESHDEMO_BIN, '--version'], expect: /^\d+\.\d+\.\d+/ },
  ];
  const times = commands.map(() => [] as number[]);
  for (let round = 0; round < warmup + rounds; round++) {
    for (const [i, c] of commands.entries()) {
      const r = await timeCommand(process.execPath, c.args, { env: { ...process.env, CI: 'true' } });
      if (r.code !== 0 || !c.expect.test(r.stdout.trim())) throw new Error(`${c.label}: exit ${r.code}, output ${JSON.stringify(r.stdout.slice(0, 200))} ${r.stderr.slice(0, 500)}`);
      if (round >= warmup) times[i].push(r.ms);
    }
  }
  const med = times.map(median);
  const min = times.map((t) => Math.min(...t));
  const base = med[0];
  const rows = commands.map((c, i) => [c.label, ms(med[i]), ms(min[i]), i === 0 ? '1.00×' : ratio(med[i], base)]);
  const targets = [1, 2].map((i) => ({
    what: `${commands[i].label} ≤ 1.5× bare Node (node -e 0)`,
    met: med[i] <= 1.5 * base,
    figure: ratio(med[i], base),
    // round by round: each run against the node -e 0 of its own round
    spread: spread(times[i].map((t, k) => t / times[0][k])),
    detail: `${ms(med[i])} vs ${ms(base)}`,
  }));
  return {
    name: 'startup',
    title: `3. Start-up, cold process (median of ${rounds} interleaved runs after ${warmup} warm-up rounds)`,
    headers: ['command', 'median', 'min', 'vs node -e 0'],
    rows,
    targets,
    notes: [],
  };
}
