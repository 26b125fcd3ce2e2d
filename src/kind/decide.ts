import fs from 'node:fs';
import yaml from 'js-yaml';
import { UsageError } from '../core/errors.js';
import type { GlobalOptions } from '../core/options.js';
import { kubeconfigPaths } from '../kube/config.js';
import type { UpSettings } from '../settings.js';
import { readState, stateForContext, type LocalClusterState } from './state.js';

/**
 * Does `up` work on the local kind cluster (creating it when needed)? Yes with --local; yes when no cluster is
 * given at all — no --kubeconfig/--context, no KUBECONFIG, and no ~/.kube/config or no current context in it;
 * yes when that file's current context is the local cluster meshdemo created. A kubeconfig whose server does not
 * answer is never a reason: that stays a preflight failure (exit 3) whose hint names --local.
 * In local mode the context is fixed to kind-<name> (what kind names it, pkg/cluster/internal/kubeconfig).
 */
export function decideLocalCluster(settings: Pick<UpSettings, 'clusterName' | 'forceLocal'>, global: GlobalOptions, env: NodeJS.ProcessEnv = process.env): UpSettings['local'] {
  const name = settings.clusterName;
  const context = `kind-${name}`;
  const local = (reason: string) => {
    global.context = context;
    return { name, context, reason };
  };
  if (settings.forceLocal) {
    if (global.context && global.context !== context) {
      throw new UsageError(`--local works on context ${context}, but --context ${global.context} was given`, { hint: 'drop --context, or pass --cluster-name to choose the local cluster' });
    }
    return local('--local');
  }
  if (global.kubeconfig || global.context || env.KUBECONFIG) return undefined;
  const file = kubeconfigPaths(undefined, env).paths[0];
  let current: string | undefined;
  try {
    const stat = fs.statSync(file);
    if (!stat.isFile()) return undefined; // a directory: the kubeconfig loader says what is wrong
    const doc = yaml.load(fs.readFileSync(file, 'utf8')) as any;
    current = typeof doc?.['current-context'] === 'string' && doc['current-context'] ? doc['current-context'] : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return local(`no cluster given: no kubeconfig at ${file}`);
    return undefined; // unreadable or invalid: the kubeconfig loader reports it
  }
  if (!current) return local(`no cluster given: ${file} has no current context`);
  if (current === context && readState(global.cacheDir, name)) return local(`the current context ${context} is meshdemo's local cluster`);
  return undefined;
}

/**
 * For down and status: the local cluster meshdemo created that the command works on, if any — the context in use
 * (--context, else the kubeconfig's current context) is kind-<name> with a record in the cache dir; or no context
 * is in use at all (no kubeconfig, or no current context, e.g. after kind removed it) and `name` has a record.
 */
export function recordedLocalCluster(global: GlobalOptions, name: string, env: NodeJS.ProcessEnv = process.env): LocalClusterState | undefined {
  const context = global.context ?? currentContext(kubeconfigPaths(global.kubeconfig, env).paths);
  if (context) return stateForContext(global.cacheDir, context);
  const state = readState(global.cacheDir, name);
  if (state) global.context = state.context;
  return state;
}

function currentContext(paths: string[]): string | undefined {
  for (const file of paths) {
    try {
      const doc = yaml.load(fs.readFileSync(file, 'utf8')) as any;
      if (typeof doc?.['current-context'] === 'string' && doc['current-context']) return doc['current-context'];
    } catch {
      // missing or invalid: the kubeconfig loader reports what matters
    }
  }
  return undefined;
}
