/**
 * Safe extraction of release archives. Every entry is validated before anything is written, and the
 * tree appears at targetDir only once it is complete.
 */
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { list, Unpack, type ReadEntry } from 'tar';
import { DownloadError, InterruptedError, MeshdemoError, UsageError } from '../core/errors.js';

interface Entry {
  path: string;
  type: string;
  linkpath?: string;
}

const ALLOWED_TYPES = new Set(['File', 'OldFile', 'ContiguousFile', 'Directory', 'GNUDumpDir', 'SymbolicLink', 'Link']);

export async function extractArchiveSafely(
  archive: string,
  targetDir: string,
  o: { signal?: AbortSignal } = {},
): Promise<{ entries: number }> {
  if (/\.zip$/i.test(archive)) {
    throw new UsageError('zip archives (Windows) are not supported yet', {
      hint: 'use the .tar.gz release for Linux or macOS',
    });
  }
  const { signal } = o;
  const target = resolve(targetDir);
  checkAbort(signal);
  const entries = await listEntries(archive);
  const problem = findProblem(entries);
  if (problem) throw new DownloadError(`refusing to extract ${archive}: ${problem}`, { hint: 'the archive is malformed or malicious; nothing was written' });
  checkAbort(signal);

  await mkdir(dirname(target), { recursive: true });
  const tmp = `${target}.tmp-${randomBytes(6).toString('hex')}`;
  await mkdir(tmp);
  try {
    await unpack(archive, tmp, signal);
    checkAbort(signal);
    await replaceDir(tmp, target);
  } catch (err) {
    await rm(tmp, { recursive: true, force: true, maxRetries: 5, retryDelay: 50 });
    if (err instanceof MeshdemoError) throw err;
    throw new DownloadError(`could not extract ${archive}: ${(err as Error).message}`, { cause: err });
  }
  return { entries: entries.length };
}

async function listEntries(archive: string): Promise<Entry[]> {
  const entries: Entry[] = [];
  try {
    await list({
      file: archive,
      strict: true,
      // tar reads 16 MB at a time by default; 1 MB reads list a large archive about six times faster
      maxReadSize: 1 << 20,
      onReadEntry: (e: ReadEntry) => entries.push({ path: e.path, type: e.type, linkpath: e.linkpath }),
    });
  } catch (err) {
    throw new DownloadError(`${archive} is not a readable tar.gz archive: ${(err as Error).message}`, { cause: err });
  }
  return entries;
}

/**
 * tar itself would silently strip leading `/` and skip `..` entries; we refuse instead, so a bad archive
 * is reported. Paths are checked lexically, and because lexical checks cannot see through symlinks, no
 * entry and no link target may pass through a symbolic link that the archive itself creates.
 */
function findProblem(entries: Entry[]): string | undefined {
  const symlinks = new Set(entries.filter((e) => e.type === 'SymbolicLink').map((e) => key(e.path)));
  for (const e of entries) {
    const name = JSON.stringify(e.path);
    if (!ALLOWED_TYPES.has(e.type)) return `entry ${name} is a ${e.type}`;
    if (isAbsolute(e.path)) return `entry ${name} has an absolute path`;
    const segments = e.path.split(/[\\/]+/).filter((s) => s !== '' && s !== '.');
    if (segments.includes('..')) return `entry ${name} contains a '..' path segment`;
    const dirs = segments.slice(0, -1);
    for (let i = 1; i <= dirs.length; i++) {
      if (symlinks.has(key(dirs.slice(0, i).join('/')))) return `entry ${name} would be written through a symbolic link`;
    }
    if (e.type === 'SymbolicLink' || e.type === 'Link') {
      const link = e.linkpath ?? '';
      // A symlink target is relative to the link's directory, a hardlink target to the archive root.
      const base = e.type === 'SymbolicLink' ? dirs : [];
      if (isAbsolute(link) || !staysInside(base, link, symlinks)) {
        return `${e.type === 'Link' ? 'hard' : 'symbolic'} link ${name} points outside the target directory (${JSON.stringify(link)})`;
      }
    }
  }
  return undefined;
}

/** Walks `link` from `base`; false if it climbs above the root or passes through an archive symlink. */
function staysInside(base: string[], link: string, symlinks: Set<string>): boolean {
  const at = [...base];
  const segments = link.split(/[\\/]+/).filter((s) => s !== '' && s !== '.');
  for (const [i, s] of segments.entries()) {
    if (s === '..') {
      if (at.pop() === undefined) return false;
      continue;
    }
    at.push(s);
    if (i < segments.length - 1 && symlinks.has(key(at.join('/')))) return false;
  }
  return true;
}

// Case-folded so that a case-insensitive filesystem (macOS) cannot alias a symlink.
function key(path: string): string {
  return path.split(/[\\/]+/).filter((s) => s !== '' && s !== '.').join('/').normalize('NFC').toLowerCase();
}

function isAbsolute(p: string): boolean {
  return p.startsWith('/') || p.startsWith('\\') || /^[a-zA-Z]:/.test(p);
}

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError('extraction interrupted');
}

function unpack(archive: string, dir: string, signal: AbortSignal | undefined): Promise<void> {
  return new Promise((resolvePromise, reject) => {
    const input = createReadStream(archive, { highWaterMark: 1 << 20 });
    const u = new Unpack({ cwd: dir, strict: true, preserveOwner: false });
    const onAbort = () => {
      reject(new InterruptedError('extraction interrupted'));
      input.destroy();
      u.abort(new Error('interrupted'));
    };
    const done = (err?: unknown) => {
      signal?.removeEventListener('abort', onAbort);
      if (err) reject(err);
      else resolvePromise();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    u.on('error', done);
    u.on('close', () => done());
    input.on('error', done);
    input.pipe(u);
  });
}

async function replaceDir(fresh: string, target: string): Promise<void> {
  const old = `${target}.old-${randomBytes(6).toString('hex')}`;
  let moved = false;
  try {
    await rename(target, old);
    moved = true;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  try {
    await rename(fresh, target);
  } catch (err) {
    if (moved) await rename(old, target).catch(() => {});
    throw err;
  }
  if (moved) await rm(old, { recursive: true, force: true });
}
