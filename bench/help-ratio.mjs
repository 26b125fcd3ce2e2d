// `meshdemo --help` and `meshdemo status --help` against `node -e 0`, interleaved in the same run (so machine load hits
// all three alike); prints each median and its ratio to bare Node. Target (issue 19): ≤ 1.5×.
// Usage: node bench/help-ratio.mjs [rounds]   (after npm run build)
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const bin = fileURLToPath(new URL('../bin/meshdemo', import.meta.url));
const rounds = Number(process.argv[2]) || 20;
const commands = [
  ['node -e 0', ['-e', '0']],
  ['meshdemo --help', [bin, '--help']],
  ['meshdemo status --help', [bin, 'status', '--help']],
];
const times = commands.map(() => []);
for (let round = 0; round < rounds + 2; round++) {
  for (const [i, [label, args]] of commands.entries()) {
    const start = process.hrtime.bigint();
    const r = spawnSync(process.execPath, args, { encoding: 'utf8' });
    const ms = Number(process.hrtime.bigint() - start) / 1e6;
    if (r.status !== 0) throw new Error(`${label}: exit ${r.status}: ${r.stderr}`);
    if (round >= 2) times[i].push(ms);
  }
}
const median = (list) => [...list].sort((a, b) => a - b)[Math.floor(list.length / 2)];
const base = median(times[0]);
for (const [i, [label]] of commands.entries()) {
  const m = median(times[i]);
  console.log(`${label.padEnd(24)} ${m.toFixed(1).padStart(7)} ms  ${(m / base).toFixed(2)}×${i && m > 1.5 * base ? '  over 1.5×' : ''}`);
}
