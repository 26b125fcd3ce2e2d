/**
 * What meshdemo trusts in its cache dir, and the checks behind that trust (README, "What the cache trusts and
 * why"): the cache dir belongs to the user and only they can write it; every verified tree and binary has a
 * manifest (the sha256 of each file) that is checked before anything from it runs; files and directories are
 * 0644/0755 whatever the umask; one download at a time writes a given file.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { chmod, mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, PreflightError } from '../core/errors.js';

/** Whether a process with this id runs (on this machine, in this PID namespace). */
export function isAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * mkdir -p, each directory it makes exactly 0755 (the umask may have taken bits away, or at 000 left write for
 * all); returns the first directory it made, as mkdir does.
 */
export async function makeDirs(dir: string): Promise<string | undefined> {
  const target = path.resolve(dir);
  const first = await mkdir(target, { recursive: true, mode: 0o755 });
  if (first === undefined) return undefined;
  for (let d = target; ; d = path.dirname(d)) {
    await chmod(d, 0o755);
    if (d === path.resolve(first) || d === path.dirname(d)) break;
  }
  return first;
}

/**
 * Refuses a cache dir that someone else could write to: one owned by another user, or writable by its group or
 * by everyone — and the same for each directory above it (where someone could move it away and put their own
 * in its place), except root's and sticky ones like /tmp. A cache dir that does not exist yet is fine.
 */
export function checkCacheDir(cacheDir: string, trusted: boolean): void {
  const uid = process.getuid?.();
  if (trusted || uid === undefined) return;
  const dir = path.resolve(cacheDir);
  let st: fs.Stats;
  try {
    st = fs.statSync(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw err;
  }
  const hint = `use a cache dir only you can write (--cache-dir), or pass --trust-cache-dir if you trust everyone who can write to ${dir}`;
  if (st.uid !== uid) {
    throw new PreflightError(`the cache dir ${dir} belongs to uid ${st.uid}, not to you (uid ${uid}): meshdemo runs istioctl and kind from it`, { hint });
  }
  if (st.mode & 0o022) {
    throw new PreflightError(`the cache dir ${dir} is writable by ${st.mode & 0o002 ? 'everyone' : 'its group'} (mode ${(st.mode & 0o777).toString(8)}): meshdemo runs istioctl and kind from it`, {
      hint: `chmod go-w ${dir}, or ${hint}`,
    });
  }
  for (let d = path.dirname(dir); ; d = path.dirname(d)) {
    const up = fs.statSync(d);
    const othersWrite = (up.mode & 0o022) !== 0 && (up.mode & 0o1000) === 0;
    if ((up.uid !== uid && up.uid !== 0) || othersWrite) {
      throw new PreflightError(`the cache dir ${dir} is inside ${d}, which ${othersWrite ? 'others can write to' : `belongs to uid ${up.uid}`}: they could replace the cache dir`, { hint });
    }
    if (d === path.dirname(d)) break;
  }
}

/** What was verified, and the sha256 of each file that came from it. */
export interface Manifest {
  /** The sha256 of the archive or binary that was verified. */
  source: string;
  /** Paths relative to the manifest's directory → sha256. */
  files: Record<string, string>;
}

/** Written once the files are in place: a crash before leaves no manifest, so nothing is trusted. */
export async function writeManifest(file: string, manifest: Manifest): Promise<void> {
  const tmp = `${file}.tmp-${process.pid}`;
  await writeFile(tmp, `${JSON.stringify(manifest, null, 1)}\n`, { mode: 0o644 });
  await chmod(tmp, 0o644);
  await rename(tmp, file);
}

export function readManifest(file: string): Manifest | undefined {
  try {
    const m = JSON.parse(fs.readFileSync(file, 'utf8')) as Manifest;
    return typeof m.source === 'string' && m.files && typeof m.files === 'object' ? m : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Why the files recorded in a manifest cannot be trusted, or undefined when they can: `only` the listed files
 * (relative to the manifest) or else all of them are hashed again; with `pinned`, the manifest must also come
 * from the archive or binary of that sha256.
 */
export function manifestMismatch(manifestFile: string, o: { only?: string[]; pinned?: string } = {}): string | undefined {
  const m = readManifest(manifestFile);
  if (!m) return `${manifestFile} is missing or unreadable`;
  if (o.pinned !== undefined && m.source !== o.pinned.toLowerCase()) return `it was unpacked from sha256 ${m.source}, not the pinned ${o.pinned.toLowerCase()}`;
  const base = path.dirname(manifestFile);
  for (const rel of o.only ?? Object.keys(m.files)) {
    const recorded = m.files[rel];
    if (recorded === undefined) return `${rel} is not in ${manifestFile}`;
    let actual: string;
    try {
      actual = sha256FileSync(path.join(base, rel));
    } catch (err) {
      return `${rel}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`;
    }
    if (actual !== recorded) return `${rel} has changed since it was verified`;
  }
  return undefined;
}

/** sha256 of a regular file, never through a symbolic link. */
export function sha256FileSync(file: string): string {
  const fd = fs.openSync(file, fs.constants.O_RDONLY | fs.constants.O_NOFOLLOW);
  try {
    if (!fs.fstatSync(fd).isFile()) throw Object.assign(new Error('not a regular file'), { code: 'ENOTFILE' });
    const hash = createHash('sha256');
    const buf = Buffer.allocUnsafe(1 << 20);
    for (let n; (n = fs.readSync(fd, buf, 0, buf.length, null)) > 0; ) hash.update(buf.subarray(0, n));
    return hash.digest('hex');
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Runs fn holding `lockFile` (created exclusively, holding this process's id). While a running process holds it,
 * waits (onWait is told once); a lock whose process no longer runs is taken over.
 */
export async function withFileLock<T>(lockFile: string, o: { signal?: AbortSignal; onWait?: (pid: number) => void }, fn: () => Promise<T>): Promise<T> {
  const mine = `${process.pid}\n`;
  let told = false;
  for (;;) {
    if (o.signal?.aborted) throw new InterruptedError(`interrupted while waiting for ${lockFile}`);
    try {
      const fd = fs.openSync(lockFile, fs.constants.O_WRONLY | fs.constants.O_CREAT | fs.constants.O_EXCL | fs.constants.O_NOFOLLOW, 0o644);
      try {
        fs.writeSync(fd, mine);
      } finally {
        fs.closeSync(fd);
      }
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = lockHolder(lockFile);
    if (holder === 'stale') {
      fs.rmSync(lockFile, { force: true });
      continue;
    }
    if (holder !== undefined && !told) {
      told = true;
      o.onWait?.(holder);
    }
    try {
      await sleep(100, undefined, { signal: o.signal });
    } catch (err) {
      throw new InterruptedError(`interrupted while waiting for ${lockFile}`, { cause: err });
    }
  }
  try {
    return await fn();
  } finally {
    try {
      if (fs.readFileSync(lockFile, 'utf8') === mine) fs.rmSync(lockFile, { force: true });
    } catch {
      /* already gone */
    }
  }
}

/** The live holder's pid, 'stale' when its process is gone, undefined while it is being written (or just removed). */
function lockHolder(lockFile: string): number | 'stale' | undefined {
  let text: string;
  let age: number;
  try {
    text = fs.readFileSync(lockFile, 'utf8');
    age = Date.now() - fs.statSync(lockFile).mtimeMs;
  } catch {
    return undefined;
  }
  const pid = Number(text.trim());
  if (text.trim() === '' || !Number.isSafeInteger(pid)) return age > 5000 ? 'stale' : undefined;
  return isAlive(pid) ? pid : 'stale';
}
