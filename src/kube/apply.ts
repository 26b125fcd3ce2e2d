import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, ReadinessTimeoutError } from '../core/errors.js';
import { KubeApiError, KubeForbiddenError, refOf, type KubeClient, type KubeObject } from './client.js';

export interface ApplyOutcome {
  object: KubeObject;
  /** False when the object existed before this apply. */
  created: boolean;
  /** The object as it was before this apply, when it existed (to record what the apply changed on it). */
  previous?: KubeObject;
}

export interface ApplyOptions {
  /** Namespace for namespaced objects that name none. */
  defaultNamespace: string;
  concurrency?: number;
  signal?: AbortSignal;
  deadline: number;
  /** Called after each object is applied (e.g. to record it). */
  onApplied?: (outcome: ApplyOutcome) => Promise<void>;
  labels?: Record<string, string>;
}

/**
 * Server-side apply of a set of objects: CustomResourceDefinitions first, each waited on until Established
 * and served, then everything else concurrently (bounded).
 */
export async function applyAll(kube: KubeClient, objects: KubeObject[], opts: ApplyOptions): Promise<ApplyOutcome[]> {
  const crds = objects.filter(isCrd);
  const rest = objects.filter((o) => !isCrd(o));
  const outcomes: ApplyOutcome[] = [];
  const applyGroup = async (group: KubeObject[]) => {
    if (opts.signal?.aborted) throw new InterruptedError();
    const placed = await Promise.all(group.map((obj) => place(kube, obj, opts)));
    const existing = await existingObjects(kube, placed);
    await mapLimit(placed, opts.concurrency ?? 8, async (obj) => {
      if (opts.signal?.aborted) throw new InterruptedError();
      const existed = existing.has(objectKey(obj));
      const previous = existed ? await kube.get(refOf(obj)) : undefined;
      const object = await applyOrReplace(kube, obj, existed);
      const outcome = { object, created: !existed, previous };
      outcomes.push(outcome);
      await opts.onApplied?.(outcome);
    });
  };
  await applyGroup(crds);
  await Promise.all(crds.map((crd) => waitForCrd(kube, crd, opts)));
  await applyGroup(rest);
  return outcomes;
}

function objectKey(o: KubeObject): string {
  return `${o.apiVersion}|${o.kind}|${o.metadata.namespace ?? ''}|${o.metadata.name}`;
}

/**
 * Which of the (placed) objects exist before they are applied: one list per kind and namespace, in parallel,
 * instead of a GET per object in the way of each apply. A kind the identity may not list is asked per object.
 */
async function existingObjects(kube: KubeClient, objects: KubeObject[]): Promise<Set<string>> {
  const groups = new Map<string, KubeObject[]>();
  for (const o of objects) {
    const key = `${o.apiVersion}|${o.kind}|${o.metadata.namespace ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), o]);
  }
  const found = new Set<string>();
  const getEach = (group: KubeObject[]) =>
    Promise.all(group.map(async (o) => void ((await kube.get(refOf(o))) && found.add(objectKey(o)))));
  await Promise.all(
    [...groups.values()].map(async (group) => {
      if (group.length === 1) return getEach(group);
      const { apiVersion, kind, metadata } = group[0];
      let names: Set<string>;
      try {
        names = new Set((await kube.list(apiVersion, kind, { namespace: metadata.namespace })).map((o) => o.metadata.name));
      } catch (err) {
        if (err instanceof KubeForbiddenError) return getEach(group);
        throw err;
      }
      for (const o of group) if (names.has(o.metadata.name)) found.add(objectKey(o));
    }),
  );
  return found;
}

/**
 * Server-side apply, except for objects the server cannot turn into a typed patch (500 "failed to create typed
 * patch object"): grafana.yaml in Istio 1.8.4 declares containerPort 3000 twice under two names, and
 * jaeger.yaml's zipkin Service has a port without protocol, which 1.20's apply cannot key. Those are created, or
 * merge-patched, like kubectl's client-side apply does.
 */
export async function applyOrReplace(kube: KubeClient, obj: KubeObject, existed: boolean): Promise<KubeObject> {
  try {
    return await kube.apply(obj);
  } catch (err) {
    if (!(err instanceof KubeApiError && /typed patch object|smd typed|duplicate entries/.test(err.message))) throw err;
    if (!existed) return kube.create(obj);
    return kube.mergePatch(refOf(obj), obj);
  }
}

export function isCrd(o: KubeObject): boolean {
  return o.kind === 'CustomResourceDefinition' && o.apiVersion.startsWith('apiextensions.k8s.io/');
}

async function place(kube: KubeClient, obj: KubeObject, opts: ApplyOptions): Promise<KubeObject> {
  const { namespaced } = await kube.resourceFor(obj.apiVersion, obj.kind);
  const metadata = { ...obj.metadata, labels: { ...(obj.metadata.labels ?? {}), ...(opts.labels ?? {}) } };
  if (namespaced && !metadata.namespace) metadata.namespace = opts.defaultNamespace;
  if (!namespaced) delete metadata.namespace;
  return { ...obj, metadata };
}

async function waitForCrd(kube: KubeClient, crd: KubeObject, opts: ApplyOptions): Promise<void> {
  const ref = { apiVersion: 'apiextensions.k8s.io/v1', kind: 'CustomResourceDefinition', name: crd.metadata.name };
  const group: string = crd.spec.group;
  const versions: string[] = (crd.spec.versions ?? [{ name: crd.spec.version }]).filter((v: any) => v.served !== false).map((v: any) => v.name);
  const kind: string = crd.spec.names.kind;
  for (let attempt = 0; ; attempt++) {
    const live = await kube.get(ref);
    const established = (live?.status?.conditions ?? []).some((c: any) => c.type === 'Established' && c.status === 'True');
    if (established) {
      const served = await Promise.all(versions.map((v) => kube.serves(`${group}/${v}`, kind, true)));
      if (served.every(Boolean)) return;
    }
    if (Date.now() > opts.deadline) {
      throw new ReadinessTimeoutError(`CustomResourceDefinition ${crd.metadata.name} was not established in time`, {
        hint: 'check the API server logs, or raise --timeout',
      });
    }
    await sleep(Math.min(50 * 2 ** attempt, 500), undefined, { signal: opts.signal }).catch(() => {
      throw new InterruptedError();
    });
  }
}

/**
 * Runs fn over the items with at most `limit` in flight. After the first failure no further item is started;
 * the ones already in flight are awaited (so their writes are finished, and recorded, before the caller goes on
 * — e.g. releases the lock), and then the first failure is thrown.
 */
export async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  let failure: { error: unknown } | undefined;
  const worker = async () => {
    while (!failure && next < items.length) {
      const item = items[next++];
      try {
        await fn(item);
      } catch (error) {
        failure ??= { error };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  if (failure) throw failure.error;
}
