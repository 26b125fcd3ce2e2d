import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, ReadinessTimeoutError } from '../core/errors.js';
import { KubeApiError, describeRef, refOf, type KubeClient, type KubeObject } from './client.js';

export interface ApplyOutcome {
  object: KubeObject;
  /** False when the object existed before this apply. */
  created: boolean;
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
  const applyOne = async (obj: KubeObject) => {
    if (opts.signal?.aborted) throw new InterruptedError();
    const placed = await place(kube, obj, opts);
    const live = await kube.get(refOf(placed));
    const object = await applyOrReplace(kube, placed, live);
    const existed = Boolean(live);
    const outcome = { object, created: !existed };
    outcomes.push(outcome);
    await opts.onApplied?.(outcome);
  };
  await mapLimit(crds, opts.concurrency ?? 8, applyOne);
  await Promise.all(crds.map((crd) => waitForCrd(kube, crd, opts)));
  await mapLimit(rest, opts.concurrency ?? 8, applyOne);
  return outcomes;
}

/**
 * Server-side apply, except for objects the server cannot turn into a typed patch (500 "failed to create typed
 * patch object"): grafana.yaml in Istio 1.8.4 declares containerPort 3000 twice under two names, and
 * jaeger.yaml's zipkin Service has a port without protocol, which 1.20's apply cannot key. Those are created, or
 * merge-patched, like kubectl's client-side apply does.
 */
export async function applyOrReplace(kube: KubeClient, obj: KubeObject, live: KubeObject | undefined): Promise<KubeObject> {
  try {
    return await kube.apply(obj);
  } catch (err) {
    if (!(err instanceof KubeApiError && /typed patch object|smd typed|duplicate entries/.test(err.message))) throw err;
    if (!live) return kube.create(obj);
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

export async function mapLimit<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(limit, items.length) }, async () => {
    while (next < items.length) await fn(items[next++]);
  });
  await Promise.all(workers);
}

export function describeApplyError(err: unknown, obj: KubeObject): unknown {
  if (err instanceof KubeApiError) return new KubeApiError(`applying ${describeRef(refOf(obj))}: ${err.message}`, err.status, err.reason);
  return err;
}
