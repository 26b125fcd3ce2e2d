import { UsageError } from '../core/errors.js';
import type { GlobalOptions } from '../core/options.js';
import { currentContext, kubeconfigPaths, readKubeconfigFile } from '../kube/kubeconfig.js';
import type { UpSettings } from '../settings.js';
import { readState, stateForContext, type LocalClusterState } from './state.js';

/**
 * Does `up` work on the local kind cluster (creating it when needed)? Yes with --local; yes when no cluster is
 * given at all — no --kubeconfig/--context, no KUBECONFIG, and no ~/.kube/config or no current context in it;
 * yes when that file's current context is the local cluster meshdemo created. A kubeconfig whose server does not
 * answer is never a reason: that stays a preflight failure (exit 3) whose hint names --local.
 * In local mode the context is fixed to kind-<name> (what kind names it, pkg/cluster/internal/kubeconfig): the
 * command works on the returned context (action()'s `context`), nothing is written into the global options.
 */
export function decideLocalCluster(settings: Pick<UpSettings, 'clusterName' | 'forceLocal'>, global: GlobalOptions, env: NodeJS.ProcessEnv = process.env): UpSettings['local'] {
  const name = settings.clusterName;
  const context = `kind-${name}`;
  const local = (reason: string) => ({ name, context, reason });
  if (settings.forceLocal) {
    if (global.context && global.context !== context) {
      throw new UsageError(`--local works on context ${context}, but --context ${global.context} was given`, { hint: 'drop --context, or pass --cluster-name to choose the local cluster' });
    }
    return local('--local');
  }
  if (global.kubeconfig || global.context || env.KUBECONFIG) return undefined;
  const file = kubeconfigPaths(undefined, env).paths[0];
  const read = readKubeconfigFile(file);
  if (read.status === 'missing') return local(`no cluster given: no kubeconfig at ${file}`);
  if (read.status === 'unreadable') return undefined; // a directory, unreadable or invalid: the kubeconfig loader reports it
  const current = currentContext([file]);
  if (!current) return local(`no cluster given: ${file} has no current context`);
  if (current === context && readState(global.cacheDir, name)) return local(`the current context ${context} is meshdemo's local cluster`);
  return undefined;
}

/**
 * For down and status: the local cluster meshdemo created that the command works on, if any — the context in use
 * (--context, else the kubeconfig's current context) is kind-<name> with a record in the cache dir; or no context
 * is in use at all (no kubeconfig, or no current context, e.g. after kind removed it) and `name` has a record:
 * then `context` is the record's, for the command to work on.
 */
export function recordedLocalCluster(global: GlobalOptions, name: string, env: NodeJS.ProcessEnv = process.env): { cluster?: LocalClusterState; context?: string } {
  const context = global.context ?? currentContext(kubeconfigPaths(global.kubeconfig, env).paths);
  if (context) return { cluster: stateForContext(global.cacheDir, context) };
  const state = readState(global.cacheDir, name);
  return { cluster: state, context: state?.context };
}
