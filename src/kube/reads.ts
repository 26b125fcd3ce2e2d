import { KubeApiError, KubeForbiddenError, type KubeClient, type KubeObject, type ObjectRef } from './client.js';

/** What the read-only questions about the cluster need: a KubeClient answers them, and so does ClusterReads. */
export type KubeReader = Pick<KubeClient, 'get' | 'list'>;

/**
 * Kinds whose objects are looked up several at a time in one run (the dashboards' Services, the addons' and
 * istiod's Deployments, istio-system and the app namespace, the nodes for URLs): one list per kind and namespace
 * answers every get.
 */
const LISTED = new Set(['v1/Namespace', 'v1/Service', 'v1/Node', 'apps/v1/Deployment']);

/**
 * One run's reads of the cluster, shared by the steps' checks, the summary and `status`: each list (per kind,
 * namespace and selector) and each get is asked once. Anything read before a request of this run that may have
 * changed the cluster is asked again. Changes made by other processes (istioctl) are not seen until then; the steps
 * that run after those read the cluster themselves.
 */
export class ClusterReads implements KubeReader {
  private lists = new Map<string, Promise<KubeObject[]>>();
  private names = new Map<string, Promise<string[]>>();
  private gets = new Map<string, Promise<KubeObject | undefined>>();
  private readAt = -1;

  readonly contextName: string;

  constructor(readonly kube: KubeClient) {
    this.contextName = kube.contextName;
  }

  private fresh(): void {
    if (this.readAt === this.kube.changeCount) return;
    this.lists.clear();
    this.names.clear();
    this.gets.clear();
    this.readAt = this.kube.changeCount;
  }

  list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, opts: { namespace?: string; labelSelector?: string; fieldSelector?: string } = {}): Promise<T[]> {
    this.fresh();
    const key = [apiVersion, kind, opts.namespace ?? '', opts.labelSelector ?? '', opts.fieldSelector ?? ''].join('|');
    let entry = this.lists.get(key);
    if (!entry) {
      entry = this.kube.list(apiVersion, kind, opts);
      this.lists.set(key, entry);
      entry.catch(() => this.lists.delete(key));
    }
    return entry as Promise<T[]>;
  }

  /**
   * The names of a kind's objects in a namespace, for existence checks: from the full list when this run reads that
   * anyway (a LISTED kind, or a list already asked), otherwise from a list of their metadata alone.
   */
  namesOf(apiVersion: string, kind: string, opts: { namespace?: string } = {}): Promise<string[]> {
    this.fresh();
    const key = [apiVersion, kind, opts.namespace ?? '', '', ''].join('|');
    if (LISTED.has(`${apiVersion}/${kind}`) || this.lists.has(key)) return this.list(apiVersion, kind, opts).then((items) => items.map((o) => o.metadata.name));
    let entry = this.names.get(key);
    if (!entry) {
      entry = this.kube.listNames(apiVersion, kind, opts);
      this.names.set(key, entry);
      entry.catch(() => this.names.delete(key));
    }
    return entry;
  }

  /** The object, or undefined; from its kind's list when that kind is LISTED (a get when the list is forbidden). */
  get<T extends KubeObject = KubeObject>(ref: ObjectRef): Promise<T | undefined> {
    this.fresh();
    const key = [ref.apiVersion, ref.kind, ref.namespace ?? '', ref.name].join('|');
    let entry = this.gets.get(key);
    if (!entry) {
      entry = LISTED.has(`${ref.apiVersion}/${ref.kind}`) ? this.fromList(ref) : this.kube.get(ref);
      this.gets.set(key, entry);
      entry.catch(() => this.gets.delete(key));
    }
    return entry as Promise<T | undefined>;
  }

  private async fromList(ref: ObjectRef): Promise<KubeObject | undefined> {
    try {
      const items = await this.list(ref.apiVersion, ref.kind, { namespace: ref.namespace });
      return items.find((o) => o.metadata.name === ref.name);
    } catch (err) {
      if (err instanceof KubeForbiddenError || (err instanceof KubeApiError && err.status === 404)) return this.kube.get(ref);
      throw err;
    }
  }
}
