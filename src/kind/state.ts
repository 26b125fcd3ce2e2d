import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, PreflightError, UsageError } from '../core/errors.js';
import { localClusterConfigPath, localClusterLockPath, localClusterStatePath } from '../core/cache-layout.js';
import { pidNamespace, processGone } from '../core/process.js';
import { clusterCaSha256 } from '../kube/kubeconfig.js';
import type { PortMapping } from './config.js';
import { trustedKindForState } from './binary.js';

/**
 * meshdemo's local record of the kind clusters it created, in the cache dir (`<cache>/local-clusters/<name>.json`):
 * the in-cluster inventory dies with the cluster, so whether `down` may delete a cluster is decided from here.
 * A cluster without such a file was not created by meshdemo and is never deleted by it.
 */
export interface LocalClusterState {
  version: 1;
  name: string;
  context: string;
  createdAt: string;
  kindVersion: string;
  /** The kind binary that created it (deleting uses the same). */
  kind: string;
  /** sha256 of that binary then: a file at that path that has changed since is not run (src/kind/binary.ts). */
  kindSha256?: string;
  nodeImage: string;
  /** The kubeconfig file kind merged the context into. */
  kubeconfig: string;
  /** The config given to kind (also saved beside this file as <name>.kind.yaml). */
  configFile: string;
  mappings: PortMapping[];
  /**
   * sha256 of the cluster's certificate authority as kind wrote it into the kubeconfig: a cluster of the same name
   * created again outside meshdemo has another one, and is then not meshdemo's to delete. Absent when creation
   * was interrupted before kind wrote the kubeconfig.
   */
  caSha256?: string;
}


export function readState(cacheDir: string, name: string): LocalClusterState | undefined {
  let text: string;
  try {
    text = fs.readFileSync(localClusterStatePath(cacheDir, name), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  try {
    const parsed = JSON.parse(text) as LocalClusterState;
    return parsed.version === 1 && parsed.name === name ? parsed : undefined;
  } catch {
    return undefined;
  }
}

/** Written atomically (temp file + rename), so a killed run never leaves half a record. */
export function writeState(cacheDir: string, state: LocalClusterState): void {
  const file = localClusterStatePath(cacheDir, state.name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, JSON.stringify(state, null, 2) + '\n', { mode: 0o600 });
  fs.renameSync(tmp, file);
}

export function removeState(cacheDir: string, name: string): void {
  fs.rmSync(localClusterStatePath(cacheDir, name), { force: true });
  fs.rmSync(localClusterConfigPath(cacheDir, name), { force: true });
}

/** The local cluster behind a kubeconfig context, if meshdemo created it: context "kind-<name>" with a record. */
export function stateForContext(cacheDir: string, contextName: string): LocalClusterState | undefined {
  const m = /^kind-(.+)$/.exec(contextName);
  if (!m) return undefined;
  const state = readState(cacheDir, m[1]);
  return state?.context === contextName ? state : undefined;
}

/** host address and port for a node port of a local cluster, or undefined when it is not mapped to the host. */
export function hostEndpoint(state: LocalClusterState, nodePort: number): { address: string; port: number } | undefined {
  const m = state.mappings.find((x) => x.containerPort === nodePort);
  return m ? { address: '127.0.0.1', port: m.hostPort } : undefined;
}

/**
 * Refuses node ports the local cluster does not map to the host: kind sets port mappings only when it creates a
 * cluster, so a Service on another node port would have no URL on 127.0.0.1.
 */
export function requireMapped(
  state: LocalClusterState,
  wanted: Array<{ name: string; containerPort: number }>,
  hint: (missing: { name: string; containerPort: number }) => string,
): void {
  const missing = wanted.filter((w) => !state.mappings.some((m) => m.containerPort === w.containerPort));
  if (!missing.length) return;
  const what = missing.map((m) => `${m.containerPort} (${m.name})`).join(', ');
  throw new UsageError(
    `node port ${what} ${missing.length > 1 ? 'are' : 'is'} not mapped to the host by the local kind cluster "${state.name}", which maps only ${state.mappings.map((m) => m.containerPort).join(', ')} on 127.0.0.1 (kind sets port mappings when it creates a cluster)`,
    { hint: hint(missing[0]) },
  );
}

/** The kind that loads images into cluster `name`: the one this run resolved, else the one that created it, else PATH's. */
export function kindBinaryFor(cacheDir: string, name: string, local?: { name: string; kind?: string }): string {
  if (local?.name === name && local.kind) return local.kind;
  const state = readState(cacheDir, name);
  return state ? trustedKindForState(cacheDir, state) : 'kind';
}

/** Is the cluster behind the record's context still the one meshdemo created? Unknown (no CA on either side) counts as yes. */
export function sameClusterAsRecorded(state: LocalClusterState, kubeconfigFiles: string[]): boolean {
  if (!state.caSha256) return true;
  const now = clusterCaSha256(kubeconfigFiles, state.context);
  return now === undefined || now === state.caSha256;
}

export interface LocalClusterLock {
  /** Another run held it first: what that run did (create, delete) must be looked at again. */
  waited: boolean;
  release(): void;
}

/**
 * The machine-local lock of one local cluster: a file `<cache>/local-clusters/<name>.lock`, created exclusively
 * (O_EXCL), holding `<pid> <pid namespace>`. It is held from before the state file is written until the cluster
 * exists (up) or is gone with its state file (down): cluster creation happens before any in-cluster lock can be
 * taken, and without it a run that lost the race to create the cluster would, cleaning up, delete the state file
 * of the run that won. A lock whose process is gone (killed) is broken: by one rename, so that two runs that both
 * find it stale cannot both break it.
 */
export async function lockLocalCluster(
  cacheDir: string,
  name: string,
  o: { waitMs: number; signal?: AbortSignal; onWait?: (holderPid: number) => void },
): Promise<LocalClusterLock> {
  const file = localClusterLockPath(cacheDir, name);
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const me = `${process.pid} ${pidNamespace()}`;
  const deadline = Date.now() + o.waitMs;
  let waited = false;
  for (;;) {
    if (o.signal?.aborted) throw new InterruptedError();
    try {
      fs.writeFileSync(file, `${me}\n`, { flag: 'wx', mode: 0o600 });
      return {
        waited,
        release: () => {
          if (readText(file)?.trim() === me) fs.rmSync(file, { force: true });
        },
      };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = readText(file);
    if (holder === undefined) continue; // released meanwhile
    const [pidText, namespace = ''] = holder.trim().split(' ');
    const pid = Number(pidText);
    if (processGone(pid, namespace) || (!holder.trim() && ageMs(file) > 10_000)) {
      breakStaleLock(file, holder);
      continue;
    }
    if (Date.now() >= deadline) {
      throw new PreflightError(`another meshdemo run (pid ${pidText}) is creating or deleting the local kind cluster "${name}"`, {
        hint: `wait for it to finish and run again; if no meshdemo runs on this machine, remove ${file}`,
      });
    }
    if (!waited) o.onWait?.(pid);
    waited = true;
    await sleep(250, undefined, { signal: o.signal }).catch(() => {
      throw new InterruptedError();
    });
  }
}

function breakStaleLock(file: string, stale: string): void {
  const aside = `${file}.${process.pid}.stale`;
  try {
    fs.renameSync(file, aside);
  } catch {
    return; // broken (or released) by someone else meanwhile
  }
  // what was moved aside is a new holder's lock if another run broke the stale one first: put it back
  if (readText(aside) !== stale) {
    try {
      fs.linkSync(aside, file);
    } catch {
      /* a third run holds it by now */
    }
  }
  fs.rmSync(aside, { force: true });
}

function readText(file: string): string | undefined {
  try {
    return fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
}

function ageMs(file: string): number {
  try {
    return Date.now() - fs.statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}
