import fs from 'node:fs';
import type { Step } from '../record/context.js';
import { kindClusters, kindDeleteCluster } from '../exec/kind.js';
import { kindForState, trustedKindForState } from '../kind/binary.js';
import { lockLocalCluster, removeState, type LocalClusterState } from '../kind/state.js';

export interface LocalDownSettings {
  cluster: LocalClusterState;
}

/**
 * Deletes the local kind cluster meshdemo created (its record in the cache dir says so) with everything in it:
 * `kind delete cluster` removes the node containers and the kind-<name> entries from the kubeconfig
 * (pkg/cluster/internal/delete/delete.go); then the record goes.
 */
export const localClusterDelete: Step<LocalDownSettings> = {
  id: 'local-cluster-delete',
  title: 'Delete the local kind cluster',
  async check(ctx) {
    const { cluster } = ctx.settings;
    let passedOver: string | undefined;
    const kind = kindForState(ctx.options.cacheDir, cluster, (why) => (passedOver = why));
    // without any kind to use, run's refusal says why
    if (kind && passedOver) ctx.log.warn(`not running the kind that created kind cluster "${cluster.name}": ${passedOver}; using ${kind}`);
    if (kind && !(await kindClusters(kind, { signal: ctx.signal })).includes(cluster.name)) {
      return { satisfied: false, detail: `kind cluster "${cluster.name}" is already gone: remove meshdemo's record of it` };
    }
    return { satisfied: false, detail: `kind delete cluster --name ${cluster.name}` };
  },
  async run(ctx) {
    const { cluster } = ctx.settings;
    const kind = trustedKindForState(ctx.options.cacheDir, cluster);
    // not while an up --local creates it: that run's state file would go with it (src/kind/state.ts lockLocalCluster)
    const lock = await lockLocalCluster(ctx.options.cacheDir, cluster.name, {
      waitMs: ctx.options.timeoutMs,
      signal: ctx.signal,
      onWait: (pid) => ctx.log.info(`waiting for another meshdemo run (pid ${pid}) that is creating or deleting kind cluster "${cluster.name}"`),
    });
    let exists: boolean;
    try {
      exists = (await kindClusters(kind, { signal: ctx.signal })).includes(cluster.name);
      if (exists) {
        const kubeconfig = fs.existsSync(cluster.kubeconfig) ? cluster.kubeconfig : undefined;
        await kindDeleteCluster(kind, cluster.name, kubeconfig, { signal: ctx.signal, onLine: (line) => ctx.log.debug(line) });
      }
      removeState(ctx.options.cacheDir, cluster.name);
    } finally {
      lock.release();
    }
    return exists ? `deleted kind cluster "${cluster.name}" and its context ${cluster.context} in ${cluster.kubeconfig}` : `kind cluster "${cluster.name}" was already gone; removed meshdemo's record of it`;
  },
};
