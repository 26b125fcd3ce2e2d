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
    fs.mkdirSync(dir, { recursive: true });
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

function describe(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  return e.code ? `${e.syscall ?? 'write'}: ${e.code}` : String(err);
}
