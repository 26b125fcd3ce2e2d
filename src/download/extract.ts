/**
 * Safe extraction of a release archive on disk, in one pass: the file is read once, hashed and unpacked
 * at the same time (src/download/tree-writer.ts validates every entry before writing it), and the tree
 * appears at targetDir only once it is complete and, when a checksum is given, verified.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { DownloadError, InterruptedError, MeshdemoError, UsageError } from '../core/errors.js';
import { TreeWriter, type ExtractLimits } from './tree-writer.js';
import { makeDirs } from './cache-files.js';

export interface ExtractOptions {
  signal?: AbortSignal;
  /** When given, the tree is kept only if the archive has this sha256 (64 hex digits). */
  expectedSha256?: string;
  limits?: ExtractLimits;
}

export async function extractArchiveSafely(archive: string, targetDir: string, o: ExtractOptions = {}): Promise<{ entries: number; sha256: string }> {
  if (/\.zip$/i.test(archive)) {
    throw new UsageError('zip archives (Windows) are not supported yet', {
      hint: 'use the .tar.gz release for Linux or macOS',
    });
  }
  const { signal } = o;
  checkAbort(signal);
  const target = resolve(targetDir);
  // a refused archive leaves no trace, not even the directories made to hold it
  const createdParent = await makeDirs(dirname(target));
  const writer = await TreeWriter.open(target, archive, o.limits);
  try {
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(archive, { highWaterMark: 1 << 20, signal })) {
      hash.update(chunk as Buffer);
      await writer.write(chunk as Buffer);
    }
    const sha256 = hash.digest('hex');
    const expected = o.expectedSha256?.toLowerCase();
    if (expected !== undefined && sha256 !== expected) {
      throw new DownloadError(`${archive} has sha256 ${sha256}, expected ${expected}`, {
        hint: 'the archive is corrupt or not the release you meant; download it again',
      });
    }
    const { entries } = await writer.finish();
    checkAbort(signal);
    await writer.commit(target, sha256);
    return { entries, sha256 };
  } catch (err) {
    await writer.abort();
    if (signal?.aborted) throw new InterruptedError('extraction interrupted', { cause: err });
    if (createdParent !== undefined) await rm(createdParent, { recursive: true, force: true });
    if (err instanceof MeshdemoError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && (err as NodeJS.ErrnoException).path === archive) {
      throw new DownloadError(`${archive} does not exist`, { hint: 'check the path given to --istio-archive', cause: err });
    }
    throw new DownloadError(`could not extract ${archive}: ${(err as Error).message}`, { cause: err });
  }
}

function checkAbort(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new InterruptedError('extraction interrupted');
}
