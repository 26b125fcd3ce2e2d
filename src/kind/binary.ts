import fs from 'node:fs';
import path from 'node:path';
import { KIND_VERSION } from './pins.js';
import { manifestMismatch, sha256FileSync } from '../download/cache-files.js';
import { kindBinaryPath, kindManifestPath } from '../core/cache-layout.js';
import { PreflightError } from '../core/errors.js';

/** kind's release binaries are 7–10 MB: a server sending more than this is not serving one. */
export const KIND_MAX_BYTES = 128 * 1024 ** 2;

/** The pinned kind in the cache (src/download/cache-layout.ts). */
export function cachedKindPath(cacheDir: string, platform: NodeJS.Platform = process.platform): string {
  return kindBinaryPath(cacheDir, KIND_VERSION, platform);
}

export function cachedKindManifest(cacheDir: string): string {
  return kindManifestPath(cacheDir, KIND_VERSION);
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

/** sha256 of the file a kind path runs (through a symbolic link, as running it would); undefined if unreadable. */
export function kindSha256(file: string): string | undefined {
  try {
    return sha256FileSync(fs.realpathSync(file));
  } catch {
    return undefined;
  }
}

function sameFile(a: string, b: string): boolean {
  try {
    return fs.realpathSync(a) === fs.realpathSync(b);
  } catch {
    return false;
  }
}

/**
 * Why the kind that created a cluster (the state file names it) may not run now, or undefined when it may. In the
 * cache dir only the cached kind as verified runs; elsewhere (PATH's kind at the time) only the very file that
 * created the cluster, by the sha256 recorded then — a state written before meshdemo recorded it has none to compare.
 */
export function recordedKindDistrust(cacheDir: string, state: { kind: string; kindSha256?: string }): string | undefined {
  const cache = path.resolve(cacheDir);
  const file = path.resolve(state.kind);
  if (!path.relative(cache, file).startsWith('..')) {
    return file === cachedKindPath(cache) ? cachedKindDistrust(cache) : `${state.kind} lies in the cache dir but is not meshdemo's verified kind`;
  }
  if (!isExecutable(file)) return `${state.kind} is gone`;
  if (state.kindSha256 === undefined) return undefined;
  const now = kindSha256(file);
  return now === state.kindSha256 ? undefined : `${state.kind} is no longer the kind that created the cluster (sha256 ${now ?? 'unreadable'}, recorded ${state.kindSha256})`;
}

/**
 * The kind to ask about a cluster meshdemo created: the one that created it (see recordedKindDistrust), else
 * meshdemo's verified cached one, else PATH's unless that is the very file just distrusted. onPassedOver hears why
 * the one that created it is not used.
 */
export function kindForState(cacheDir: string, state: { kind: string; kindSha256?: string }, onPassedOver?: (why: string) => void): string | undefined {
  const cache = path.resolve(cacheDir);
  const distrust = recordedKindDistrust(cache, state);
  if (distrust === undefined) return state.kind;
  onPassedOver?.(distrust);
  if (cachedKindDistrust(cache) === undefined) return cachedKindPath(cache);
  const onPath = kindOnPath();
  const inCache = onPath !== undefined && !path.relative(cache, path.resolve(onPath)).startsWith('..');
  return onPath && !inCache && !sameFile(onPath, state.kind) ? onPath : undefined;
}

/** kindForState, or a refusal (exit 3) naming why no kind may run for the cluster. */
export function trustedKindForState(cacheDir: string, state: { name: string; kind: string; kindSha256?: string }, onPassedOver?: (why: string) => void): string {
  let why = '';
  const kind = kindForState(cacheDir, state, (w) => {
    why = w;
    onPassedOver?.(w);
  });
  if (kind) return kind;
  throw new PreflightError(`no kind binary meshdemo may run for kind cluster "${state.name}": ${why}, and there is no verified kind in the cache`, {
    hint: `put kind v${KIND_VERSION} on PATH, or run meshdemo download --kind to fetch the verified one, then run the command again`,
  });
}
