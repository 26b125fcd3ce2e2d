import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from './errors.js';

/**
 * The cache dir must take files before a run changes anything: it is created if missing, and a probe file is
 * written and removed. Root passes every permission check, so only trying tells (a read-only mount, /proc).
 * Throws UsageError (exit 2) naming the directory.
 */
export function requireWritableCacheDir(dir: string): void {
  const refuse = (why: string) =>
    new UsageError(`the cache dir ${dir} is not writable (${why})`, { hint: 'pass a writable directory with --cache-dir (or MESHDEMO_CACHE_DIR)' });
  try {
    makeDirs(path.resolve(dir));
  } catch (err) {
    throw refuse(describe(err));
  }
  if (!fs.statSync(dir).isDirectory()) throw refuse('not a directory');
  try {
    fs.rmdirSync(fs.mkdtempSync(path.join(dir, '.meshdemo-write-test-')));
  } catch (err) {
    throw refuse(describe(err));
  }
}

/**
 * `mkdir -p`, one level at a time: Node's recursive mkdir never returns under /proc (mkdir there fails with ENOENT
 * while the parent exists, and it retries forever).
 */
function makeDirs(dir: string): void {
  const missing: string[] = [];
  for (let d = dir; !fs.existsSync(d); d = path.dirname(d)) {
    missing.unshift(d);
    if (path.dirname(d) === d) break;
  }
  for (const d of missing) fs.mkdirSync(d);
}

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.syscall ?? 'write'}: ${e.code}` : String(err);
}
