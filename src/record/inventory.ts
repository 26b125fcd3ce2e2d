import type { KubeClient, KubeObject, ObjectRef } from '../kube/client.js';
import { KubeApiError } from '../kube/client.js';
import { PreflightError } from '../core/errors.js';

export const INVENTORY_NAME = 'meshdemo-inventory';
const RECORD_KEY = 'inventory.json';
/**
 * The most a ConfigMap's data may hold: the API server refuses more (422) — ValidateConfigMap in
 * pkg/apis/core/validation/validation.go sums len(key) + len(value) over data and binaryData against
 * core.MaxSecretSize, 1 MiB.
 */
export const RECORD_LIMIT_BYTES = 1024 * 1024;
/** A uid as the API server writes it, for the size of an entry recorded once the object exists. */
const UID_PLACEHOLDER = '00000000-0000-0000-0000-000000000000';

/**
 * The record's data as stored. A record that is not what meshdemo writes (edited by hand, truncated) is refused
 * with the ConfigMap's name and how to recover — never half-read: down would remove the wrong things.
 */
export function parseRecord(text: string | undefined, namespace: string): Partial<InventoryData> {
  const corrupted = (why: string) =>
    new PreflightError(`the meshdemo record (ConfigMap ${namespace}/${INVENTORY_NAME}) is corrupted: ${why}`, {
      hint: `fix its data.${RECORD_KEY} (kubectl edit configmap -n ${namespace} ${INVENTORY_NAME}), or delete it (kubectl delete configmap -n ${namespace} ${INVENTORY_NAME}); without a record, meshdemo down --force removes the demo by name and label`,
    });
  let parsed: unknown;
  try {
    parsed = JSON.parse(text ?? '{}');
  } catch (err) {
    throw corrupted(`data.${RECORD_KEY} is not valid JSON (${(err as Error).message})`);
  }
  if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) throw corrupted(`data.${RECORD_KEY} is not a JSON object`);
  const record = parsed as Record<string, unknown>;
  for (const list of ['createdNamespaces', 'created', 'changed', 'images'] as const) {
    if (record[list] !== undefined && !Array.isArray(record[list])) throw corrupted(`"${list}" is not a list`);
  }
  for (const map of ['steps', 'nodesLoaded'] as const) {
    if (record[map] !== undefined && !isPlainObject(record[map])) throw corrupted(`"${map}" is not an object`);
  }
  const badEntry = ((record.created as unknown[] | undefined) ?? []).find((e: any) => !e || typeof e.apiVersion !== 'string' || typeof e.kind !== 'string' || typeof e.name !== 'string');
  if (badEntry !== undefined) throw corrupted(`an entry of "created" names no apiVersion, kind and name: ${JSON.stringify(badEntry)}`);
  const badChange = ((record.changed as unknown[] | undefined) ?? []).find((e: any) => !e?.ref || typeof e.ref.kind !== 'string' || typeof e.ref.name !== 'string' || typeof e.previous !== 'object');
  if (badChange !== undefined) throw corrupted(`an entry of "changed" names no object or previous values: ${JSON.stringify(badChange)}`);
  return record as Partial<InventoryData>;
}
/**
 * How long a node's Node .status.images may lag behind its runtime: the kubelet lists images from a cache refreshed
 * every 30 s (kubelet 1.19/1.20 pkg/kubelet/images/image_gc_manager.go Start) and reports node status every 10 s
 * (nodeStatusUpdateFrequency); with a margin.
 */
const KUBELET_IMAGE_LIST_LAG_MS = 60_000;

function isPlainObject(value: unknown): boolean {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

export const MANAGED_BY = { 'app.kubernetes.io/managed-by': 'meshdemo' } as const;

/** Whether the object carries meshdemo's label (up labels what it applies or creates). */
export function labelledByMeshdemo(obj: KubeObject | undefined): boolean {
  return Object.entries(MANAGED_BY).every(([k, v]) => obj?.metadata.labels?.[k] === v);
}

/**
 * Record writes are not cancelled with the run (Ctrl-C, a lost lock): a change that reached the cluster must reach
 * the record too, or down would not know of it.
 */
const UNCANCELLED = new AbortController().signal;

export interface CreatedEntry extends ObjectRef {
  uid?: string;
  step: string;
}

export interface ChangedEntry {
  ref: ObjectRef;
  step: string;
  /** What the changed fields held before meshdemo touched them (the first value seen is kept). */
  previous: Record<string, unknown>;
}

export interface InventoryMark {
  existed: boolean;
  data: InventoryData;
}

export interface InventoryData {
  version: 1;
  namespace: string;
  createdNamespaces: string[];
  created: CreatedEntry[];
  changed: ChangedEntry[];
  images: string[];
  /** Per image loaded with kind load: the uids of the nodes it went into, and when (their kubelets report it only later). */
  nodesLoaded?: Record<string, { nodes: string[]; at: string }>;
  steps: Record<string, { completedAt: string; inputs?: Record<string, unknown> }>;
}

/**
 * The record `down` reads: a ConfigMap `meshdemo-inventory` in the app namespace, written through on every
 * change so a run killed at any point leaves a true record.
 */
export class Inventory {
  private constructor(
    private readonly kube: KubeClient,
    readonly data: InventoryData,
    private exists: boolean,
  ) {}

  static async load(kube: KubeClient, namespace: string): Promise<Inventory> {
    const cm = await kube.get({ apiVersion: 'v1', kind: 'ConfigMap', namespace, name: INVENTORY_NAME });
    const empty: InventoryData = { version: 1, namespace, createdNamespaces: [], created: [], changed: [], images: [], steps: {} };
    if (!cm) return new Inventory(kube, empty, false);
    return new Inventory(kube, { ...empty, ...parseRecord(cm.data?.[RECORD_KEY], namespace) }, true);
  }

  get recorded(): boolean {
    return this.exists;
  }

  isCreated(ref: ObjectRef): boolean {
    return this.data.created.some((c) => sameRef(c, ref));
  }

  /**
   * Refuses (before the change is made) a change whose record would not fit in the ConfigMap: the objects a step
   * is about to create are recorded only once they exist, with their uid, and a record that cannot be written
   * then would leave them unknown to down.
   */
  ensureRoomFor(step: string, objects: Array<KubeObject | ObjectRef>): void {
    const created = objects
      .map((o) => ('metadata' in o ? { apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace: o.metadata.namespace } : o))
      .filter((ref) => !this.isCreated(ref))
      .map((ref) => ({ ...ref, uid: UID_PLACEHOLDER, step }));
    this.ensureFits({ ...this.data, created: [...this.data.created, ...created] }, `with what step ${step} is about to create`);
  }

  private ensureFits(data: InventoryData, what: string): void {
    const bytes = Buffer.byteLength(RECORD_KEY) + Buffer.byteLength(serialize(data));
    if (bytes <= RECORD_LIMIT_BYTES) return;
    throw new PreflightError(
      `the meshdemo record (ConfigMap ${data.namespace}/${INVENTORY_NAME}) would grow to ${bytes} bytes ${what}, over the ${RECORD_LIMIT_BYTES} bytes a ConfigMap holds; stopped before that change`,
      { hint: `run meshdemo down to remove what is recorded (the record goes with it), then meshdemo up again; or remove entries it no longer needs (kubectl edit configmap -n ${data.namespace} ${INVENTORY_NAME})` },
    );
  }

  async recordCreated(step: string, obj: KubeObject | ObjectRef): Promise<void> {
    const ref: ObjectRef = 'metadata' in obj ? { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace } : obj;
    if (this.isCreated(ref)) return;
    const uid = 'metadata' in obj ? obj.metadata.uid : undefined;
    this.data.created.push({ ...ref, uid, step });
    await this.flush();
  }

  /** The object is gone (replaced by a newer one, or deleted): the record stops naming it. */
  async forgetCreated(ref: ObjectRef): Promise<void> {
    const kept = this.data.created.filter((c) => !sameRef(c, ref));
    if (kept.length === this.data.created.length) return;
    this.data.created = kept;
    await this.flush();
  }

  /** The namespace was not created after all (its create was refused): the record stops naming it. */
  async forgetCreatedNamespace(name: string): Promise<void> {
    if (!this.data.createdNamespaces.includes(name)) return;
    this.data.createdNamespaces = this.data.createdNamespaces.filter((n) => n !== name);
    await this.flush();
  }

  /** The change recorded for ref did not happen (it was refused): the record stops naming it. */
  async forgetChanged(ref: ObjectRef): Promise<void> {
    const kept = this.data.changed.filter((c) => !sameRef(c.ref, ref));
    if (kept.length === this.data.changed.length) return;
    this.data.changed = kept;
    await this.flush();
  }

  async recordCreatedNamespace(name: string): Promise<void> {
    if (this.data.createdNamespaces.includes(name)) return;
    this.data.createdNamespaces.push(name);
    await this.flush();
  }

  /** Keeps the first previous value of each field, so re-runs never overwrite what was there before meshdemo. */
  async recordChanged(step: string, ref: ObjectRef, previous: Record<string, unknown>): Promise<void> {
    let entry = this.data.changed.find((c) => sameRef(c.ref, ref));
    if (!entry) {
      entry = { ref, step, previous: {} };
      this.data.changed.push(entry);
    }
    let changed = false;
    for (const [key, value] of Object.entries(previous)) {
      if (!(key in entry.previous)) {
        entry.previous[key] = value ?? null;
        changed = true;
      }
    }
    if (changed || this.data.changed.length === 1) await this.flush();
  }

  previousOf(ref: ObjectRef): Record<string, unknown> | undefined {
    return this.data.changed.find((c) => sameRef(c.ref, ref))?.previous;
  }

  async recordImages(images: string[]): Promise<void> {
    const fresh = images.filter((i) => !this.data.images.includes(i));
    if (!fresh.length) return;
    this.data.images.push(...fresh);
    await this.flush();
  }

  /** Records that kind load put these images into the nodes with these uids, now. */
  async recordLoaded(images: string[], nodeUids: string[]): Promise<void> {
    const at = new Date().toISOString();
    for (const i of images) (this.data.nodesLoaded ??= {})[i] = { nodes: [...nodeUids].sort(), at };
    await this.flush();
  }

  /**
   * Whether kind load put the image into every one of these nodes (by uid) so recently that their kubelets may not
   * list it yet. Later, what the kubelets list is the truth: the image may have been removed since (crictl rmi, the
   * kubelet's image garbage collection).
   */
  loadedRecentlyIntoAll(image: string, nodeUids: string[]): boolean {
    const loaded = this.data.nodesLoaded?.[image];
    if (!loaded || !Array.isArray(loaded.nodes) || Date.now() - Date.parse(loaded.at) > KUBELET_IMAGE_LIST_LAG_MS) return false;
    return nodeUids.length > 0 && nodeUids.every((uid) => loaded.nodes.includes(uid));
  }

  async completeStep(id: string, inputs?: Record<string, unknown>): Promise<void> {
    this.data.steps[id] = { completedAt: new Date().toISOString(), inputs };
    await this.flush();
  }

  /** The record as it is now, for rollback() when the change recorded after it is refused. */
  mark(): InventoryMark {
    return { existed: this.exists, data: structuredClone(this.data) };
  }

  /**
   * Forgets what was recorded since mark() because that change did not happen (the API server refused it):
   * writes the record back as it was, or — when there was none — removes it again, with the namespace it created.
   */
  async rollback(mark: InventoryMark): Promise<void> {
    const ns = this.data.namespace;
    const createdNamespace = this.data.createdNamespaces.includes(ns) && !mark.data.createdNamespaces.includes(ns);
    Object.assign(this.data, structuredClone(mark.data));
    if (mark.existed) return this.flush();
    await this.writes;
    if (!this.exists) return;
    await this.remove();
    if (createdNamespace) await this.kube.delete({ apiVersion: 'v1', kind: 'Namespace', name: ns });
  }

  private writes: Promise<void> = Promise.resolve();
  /** The write that is waiting for its turn (not started yet), if any. */
  private pending: Promise<void> | undefined;

  /**
   * Writes are serialized, and each writes the data as it is when its turn comes. A flush asked for while
   * another write still waits for its turn joins that one: it will hold this change too (so N changes
   * recorded during one write cost one more write, not N).
   */
  flush(): Promise<void> {
    if (this.pending) return this.pending;
    const next = this.writes.then(() => {
      this.pending = undefined;
      return this.write();
    });
    this.pending = next;
    this.writes = next.catch(() => {});
    return next;
  }

  private async write(): Promise<void> {
    const ns = this.data.namespace;
    // changes are recorded before they are made: refusing this write refuses the change
    this.ensureFits(this.data, 'with the change about to be made');
    if (!this.exists) {
      const existing = await this.kube.get({ apiVersion: 'v1', kind: 'Namespace', name: ns }, { signal: UNCANCELLED });
      if (!existing) {
        await this.kube.create({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels: { ...MANAGED_BY } } }, { signal: UNCANCELLED });
        if (!this.data.createdNamespaces.includes(ns)) this.data.createdNamespaces.push(ns);
      }
    }
    const body = {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: INVENTORY_NAME, namespace: ns, labels: { ...MANAGED_BY } },
      data: { [RECORD_KEY]: serialize(this.data) },
    };
    await this.kube.apply(body, { signal: UNCANCELLED });
    this.exists = true;
  }

  /** Removes the record itself (the last thing `down` does). */
  async remove(): Promise<void> {
    try {
      await this.kube.delete({ apiVersion: 'v1', kind: 'ConfigMap', namespace: this.data.namespace, name: INVENTORY_NAME });
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 404)) throw err;
    }
    this.exists = false;
  }
}

function serialize(data: InventoryData): string {
  return JSON.stringify(data, null, 1);
}

export function sameRef(a: ObjectRef, b: ObjectRef): boolean {
  const group = (v: string) => (v.includes('/') ? v.split('/')[0] : '');
  return group(a.apiVersion) === group(b.apiVersion) && a.kind === b.kind && a.name === b.name && (a.namespace ?? '') === (b.namespace ?? '');
}
