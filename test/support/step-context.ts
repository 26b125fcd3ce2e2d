// fakeStepContext(): a step's Context for unit tests, in one call. The cluster is an in-memory KubeClient — the real
// class, its object methods answered from a list of objects (no label or field selectors: a step test that needs
// those runs against the real API server, test/support/control-plane.ts) — and the record is the real Inventory
// kept in that cluster. Anything else a step asks of the cluster goes to 127.0.0.1:1 and is refused.
import type { MeshEvent } from '../../src/core/events.js';
import { stepLog } from '../../src/core/events.js';
import type { GlobalOptions } from '../../src/core/options.js';
import { createPrompter, type Prompter } from '../../src/core/prompt.js';
import { KubeApiError, KubeClient, type KubeObject, type ObjectRef } from '../../src/kube/client.js';
import { ClusterReads } from '../../src/kube/reads.js';
import { Inventory } from '../../src/record/inventory.js';
import type { Context } from '../../src/record/context.js';

const same = (a: ObjectRef, b: KubeObject) =>
  a.apiVersion === b.apiVersion && a.kind === b.kind && a.name === b.metadata.name && (a.namespace ?? undefined) === (b.metadata.namespace ?? undefined);

export class InMemoryKube extends KubeClient {
  readonly objects: KubeObject[];
  private writes = 0;

  constructor(opts: { contextName?: string; clusterProvider?: string; objects?: KubeObject[] } = {}) {
    super(
      {
        contextName: opts.contextName ?? 'test-cluster',
        server: 'https://127.0.0.1:1',
        clusterProvider: opts.clusterProvider,
        paths: [],
        proxied: false,
        secrets: [],
        kubeConfig: () => Promise.reject(new Error('InMemoryKube has no kubeconfig')),
        applyToHTTPSOptions: async () => {},
      },
      { retryMs: 0 },
    );
    this.objects = opts.objects ?? [];
  }

  override async get<T extends KubeObject = KubeObject>(ref: ObjectRef): Promise<T | undefined> {
    return this.objects.find((o): o is T => same(ref, o));
  }

  override async list<T extends KubeObject = KubeObject>(apiVersion: string, kind: string, opts: { namespace?: string } = {}): Promise<T[]> {
    return this.listed(apiVersion, kind, opts) as T[];
  }

  override async listNames(apiVersion: string, kind: string, opts: { namespace?: string } = {}): Promise<string[]> {
    return this.listed(apiVersion, kind, opts).map((o) => o.metadata.name);
  }

  private listed(apiVersion: string, kind: string, opts: { namespace?: string }): KubeObject[] {
    return this.objects.filter((o) => o.apiVersion === apiVersion && o.kind === kind && (!opts.namespace || o.metadata.namespace === opts.namespace));
  }

  override async create<T extends KubeObject = KubeObject>(obj: KubeObject): Promise<T> {
    if (this.objects.some((o) => same(refOf(obj), o))) throw new KubeApiError(`${obj.kind} "${obj.metadata.name}" already exists`, 409, 'AlreadyExists');
    return this.store<T>(obj);
  }

  override async apply<T extends KubeObject = KubeObject>(obj: KubeObject): Promise<T> {
    return this.store<T>(obj);
  }

  /** A JSON merge patch (RFC 7386): objects merge, null removes, anything else replaces. */
  override async mergePatch<T extends KubeObject = KubeObject>(ref: ObjectRef, patch: unknown): Promise<T> {
    const found = await this.get(ref);
    if (!found) throw new KubeApiError(`${ref.kind} "${ref.name}" not found`, 404, 'NotFound');
    return this.store<T>(mergePatched(found, patch));
  }

  /** Every write counts as a change, as the real client's requests do: what ClusterReads read before is read again. */
  override get changeCount(): number {
    return this.writes;
  }

  override async delete(ref: ObjectRef): Promise<boolean> {
    this.writes++;
    const at = this.objects.findIndex((o) => same(ref, o));
    if (at >= 0) this.objects.splice(at, 1);
    return at >= 0;
  }

  private store<T extends KubeObject>(obj: KubeObject): T {
    this.writes++;
    const copy: T = structuredClone(obj) as T;
    const at = this.objects.findIndex((o) => same(refOf(obj), o));
    if (at >= 0) this.objects[at] = copy;
    else this.objects.push(copy);
    return copy;
  }
}

function mergePatched<V>(target: V, patch: unknown): V {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return structuredClone(patch as V);
  const out: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...target } : {};
  for (const [k, v] of Object.entries(patch)) {
    if (v === null) delete out[k];
    else out[k] = mergePatched(out[k], v);
  }
  return out as V;
}

function refOf(obj: KubeObject): ObjectRef {
  return { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace };
}

/** A step's Context over an InMemoryKube; `logged` collects the events the step emitted. */
export function fakeStepContext<S>(
  settings: S,
  opts: { options?: Partial<GlobalOptions>; kube?: KubeClient; prompt?: Prompter; dryRun?: boolean } = {},
): Context<S> & { logged: MeshEvent[]; kubeClient: KubeClient } {
  const events: MeshEvent[] = [];
  const sink = { emit: (e: MeshEvent) => void events.push(e) };
  const options: GlobalOptions = {
    namespace: 'default',
    yes: true,
    json: false,
    verbose: false,
    cacheDir: '/nonexistent-meshdemo-cache',
    timeoutMs: 60_000,
    ...opts.options,
  };
  const kube = opts.kube ?? new InMemoryKube();
  let inventory: Promise<Inventory> | undefined;
  let reads: Promise<ClusterReads> | undefined;
  return {
    options,
    settings,
    events: sink,
    logged: events,
    log: stepLog(sink),
    signal: new AbortController().signal,
    dryRun: opts.dryRun ?? false,
    // no TTY: a question throws the UsageError naming the flag that skips it, as in CI
    prompt: opts.prompt ?? createPrompter({ json: false, isTTY: false }),
    secrets: new Set(),
    kubeClient: kube,
    kube: async () => kube,
    reads: () => (reads ??= Promise.resolve(new ClusterReads(kube))),
    inventory: () => (inventory ??= Inventory.load(kube, options.namespace)),
  };
}
