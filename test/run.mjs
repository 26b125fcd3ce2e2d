// Runs every compiled test file with node's test runner, in two lanes side by side. Within a lane, one file at a
// time: integration files touch cluster-scoped objects and share 2 cores. Each integration file starts its own
// control plane, node, release server and (when it needs one) private dockerd, so files in different lanes share
// nothing. The second lane holds the files that spend most of their time waiting out real deadlines (istioctl's
// readiness wait, a Lease's expiry) and the unit tests; the first lane holds everything else. Its output streams
// as it comes; the second lane's is printed after it, so the two never interleave.
import { readdirSync, existsSync } from 'node:fs';
import { spawn } from 'node:child_process';
import path from 'node:path';

/** Integration files that mostly wait (122 s for an istioctl deadline; 30 s Lease expiries), not compute. */
const WAITING = new Set(['faults.test.js', 'lock.test.js']);

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const suites = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'integration'];
const files = suites.flatMap((suite) => {
  const dir = path.join(root, 'dist', 'test', suite);
  return existsSync(dir)
    ? readdirSync(dir)
        .filter((f) => f.endsWith('.test.js'))
        .sort()
        .map((f) => ({ suite, file: path.join(dir, f) }))
    : [];
});
if (!files.length) {
  console.error('no compiled tests found: run npm run build first');
  process.exit(1);
}
const secondLane = ({ suite, file }) => suite === 'unit' || WAITING.has(path.basename(file));
const lanes = [files.filter((f) => !secondLane(f)), files.filter(secondLane)].filter((lane) => lane.length);

/** Runs one lane's files; its output goes to the terminal (first lane) or is kept to be printed once the lane ends. */
function runLane(lane, index) {
  return new Promise((resolve) => {
    const streamed = index === 0;
    const child = spawn(process.execPath, ['--test', '--test-concurrency=1', ...lane.map((f) => f.file)], {
      stdio: ['ignore', streamed ? 'inherit' : 'pipe', streamed ? 'inherit' : 'pipe'],
    });
    const kept = [];
    if (!streamed) {
      child.stdout.on('data', (chunk) => kept.push(chunk));
      child.stderr.on('data', (chunk) => kept.push(chunk));
    }
    child.on('close', (code, signal) => resolve({ index, lane, status: code ?? (signal ? 1 : 0), kept: Buffer.concat(kept) }));
  });
}

const results = await Promise.all(lanes.map((lane, index) => runLane(lane, index)));
for (const { index, lane, kept } of results) {
  if (index === 0) continue;
  process.stdout.write(`\n# lane ${index + 1}: ${lane.map((f) => `${f.suite}/${path.basename(f.file)}`).join(' ')}\n`);
  process.stdout.write(kept);
}
for (const { index, status } of results) console.log(`# lane ${index + 1}: ${status === 0 ? 'passed' : `FAILED (exit ${status})`}`);
process.exit(results.some((r) => r.status !== 0) ? 1 : 0);
