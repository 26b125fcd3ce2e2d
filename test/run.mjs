// Runs every compiled test file with node's test runner: unit tests, then integration tests against the
// real control plane (one file at a time: they touch cluster-scoped objects and share 2 cores).
import { readdirSync, existsSync } from 'node:fs';
import { spawnSync } from 'node:child_process';
import path from 'node:path';

const root = path.resolve(path.dirname(new URL(import.meta.url).pathname), '..');
const suites = process.argv.slice(2).length ? process.argv.slice(2) : ['unit', 'integration'];
const files = suites.flatMap((suite) => {
  const dir = path.join(root, 'dist', 'test', suite);
  return existsSync(dir) ? readdirSync(dir).filter((f) => f.endsWith('.test.js')).sort().map((f) => path.join(dir, f)) : [];
});
if (!files.length) {
  console.error('no compiled tests found: run npm run build first');
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-concurrency=1', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
