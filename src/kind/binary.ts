import fs from 'node:fs';
import path from 'node:path';
import { KIND_VERSION } from './pins.js';

/** <cache>/kind/v<version>/kind: where meshdemo keeps the kind it downloaded (made executable only once verified). */
export function cachedKindPath(cacheDir: string, platform: NodeJS.Platform = process.platform): string {
  return path.join(cacheDir, 'kind', `v${KIND_VERSION}`, platform === 'win32' ? 'kind.exe' : 'kind');
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

/** The kind to ask about a cluster meshdemo created: the one that created it, else meshdemo's cached one, else PATH's. */
export function kindForState(cacheDir: string, state: { kind: string }): string | undefined {
  return [state.kind, cachedKindPath(cacheDir), kindOnPath()].find((k): k is string => Boolean(k) && isExecutable(k!));
}
