import fs from 'node:fs';
import path from 'node:path';
import { KIND_VERSION } from './pins.js';
import { manifestMismatch } from '../download/cache-files.js';

/** kind's release binaries are 7–10 MB: a server sending more than this is not serving one. */
export const KIND_MAX_BYTES = 128 * 1024 ** 2;

/** <cache>/kind/v<version>/kind: where meshdemo keeps the kind it downloaded (made executable only once verified). */
export function cachedKindPath(cacheDir: string, platform: NodeJS.Platform = process.platform): string {
  return path.join(cacheDir, 'kind', `v${KIND_VERSION}`, platform === 'win32' ? 'kind.exe' : 'kind');
}

/** Beside the cached kind: the sha256 it had when its download was verified. */
export function cachedKindManifest(cacheDir: string): string {
  return `${cachedKindPath(cacheDir)}.manifest.json`;
}

/** Why the cached kind may not be run, or undefined when it may: it must be the file meshdemo verified (of the pinned sha256, when one is). */
export function cachedKindDistrust(cacheDir: string, pinnedSha256?: string): string | undefined {
  if (!isExecutable(cachedKindPath(cacheDir))) return `${cachedKindPath(cacheDir)} is not an executable file`;
  return manifestMismatch(cachedKindManifest(cacheDir), { only: [path.basename(cachedKindPath(cacheDir))], ...(pinnedSha256 ? { pinned: pinnedSha256 } : {}) });
}

export function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

/** The first executable `kind` on PATH, as a shell would find it. */
export function kindOnPath(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const name = process.platform === 'win32' ? 'kind.exe' : 'kind';
  for (const dir of (env.PATH ?? '').split(path.delimiter).filter(Boolean)) {
    const candidate = path.join(dir, name);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/**
 * The kind to ask about a cluster meshdemo created: the one that created it (the state file says which), else
 * meshdemo's cached one, else PATH's. Anything in the cache dir — wherever the state file points — runs only if it
 * is the cached kind and still the file whose download was verified.
 */
export function kindForState(cacheDir: string, state: { kind: string }): string | undefined {
  const cache = path.resolve(cacheDir);
  const cached = cachedKindPath(cache);
  const usable = (k: string) => {
    const inCache = !path.relative(cache, path.resolve(k)).startsWith('..');
    return inCache ? path.resolve(k) === cached && cachedKindDistrust(cache) === undefined : isExecutable(k);
  };
  return [state.kind, cached, kindOnPath()].find((k): k is string => Boolean(k) && usable(k!));
}
