import { Option, type Command } from 'commander';
import { lazyAction } from './lazy-action.js';

export function register(program: Command): void {
  program
    .command('down')
    .option('--keep-istio', 'leave Istio installed')
    .option('--force', 'with no record: remove the well-known demo objects by name and label')
    .option('--keep-cluster', 'on the local kind cluster meshdemo created: remove only the demo, keep the cluster (implied by --keep-istio)')
    .addOption(new Option('--cluster-name <name>', 'the local kind cluster, when no context is in use').default('meshdemo').env('MESHDEMO_CLUSTER_NAME'))
    .option('--dry-run', 'print the plan, change nothing')
    .addHelpText(
      'after',
      `
down works from the record up keeps (ConfigMap meshdemo-inventory in --namespace). It deletes only what up
created — the app, the addons (with the Kiali CRD and their cluster RBAC), Istio (istioctl x uninstall --purge,
when up installed it), istio-system and the app namespace when up created them — and reverts what up changed:
the dashboard Services' type and ports, the namespace's istio-injection label. It waits until all of it is
gone (--timeout), then removes the record. Before changing anything it shows the plan and asks (--yes skips).

On the local kind cluster that meshdemo up created (recorded in the cache dir), down deletes the whole cluster
(kind delete cluster) instead; --keep-cluster (implied by --keep-istio) removes only the demo from it. A cluster
meshdemo did not create is never deleted.

--force, only when there is no record: deletes the demo's Deployments/Services/Gateway/VirtualService by name
and anything labelled app.kubernetes.io/managed-by=meshdemo in --namespace, the cached release's addon objects
that carry that label, namespaces with that label, and uninstalls Istio if istioctl is cached. It leaves
istio-system and the istio-injection label as they are.

Examples:
  meshdemo down
  meshdemo down --dry-run
  meshdemo down --yes --keep-istio
  meshdemo down --yes --force
  meshdemo down --yes --keep-cluster`,
    )
    .action(lazyAction(() => import('./down.run.js')));
}
