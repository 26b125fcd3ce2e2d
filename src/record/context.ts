import type { BaseContext, Step as CoreStep } from '../core/step.js';
import type { KubeClient } from '../kube/client.js';
import type { ClusterReads } from '../kube/reads.js';
import type { Inventory } from './inventory.js';

export type { CheckResult } from '../core/step.js';

/** What every step may use. Steps reach the cluster, the network and processes only through this. */
export interface Context<S = unknown> extends BaseContext<S> {
  /** Lazily connects, so commands that never touch the cluster never load @kubernetes/client-node. */
  kube(): Promise<KubeClient>;
  inventory(): Promise<Inventory>;
  /** This run's shared reads of the cluster (one list per kind and namespace): what checks ask. */
  reads(): Promise<ClusterReads>;
}

/** A step of up's or down's: it reaches the cluster and meshdemo's record through its Context. */
export type Step<S = unknown> = CoreStep<Context<S>>;
