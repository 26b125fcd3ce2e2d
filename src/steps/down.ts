import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, oneLine, ReadinessTimeoutError } from '../core/errors.js';
import { MANAGED_BY, parseRecord, type ChangedEntry, type CreatedEntry } from '../core/inventory.js';
import type { CheckResult, Context, Step } from '../core/step.js';
import { runCommand } from '../exec/run.js';
import { mapLimit } from '../kube/apply.js';
import { describeRef, KubeApiError, refOf, type KubeClient, type KubeObject, type ObjectRef } from '../kube/client.js';
import {
  INVENTORY_REF,
  ISTIO_HALF_STEPS,
  PROTECTED_NAMESPACES,
  istioObjects,
  istioctlFor,
  records,
  type DownRecords,
  type DownSettings,
} from './down-records.js';
import { ISTIO_NAMESPACE } from './facts.js';
import { istioctlKubeArgs } from './istio-install.js';
import { istioctlPath } from './istio-release.js';

/**
 * The steps of `meshdemo down`, one per phase, in order. Each works out from the record and the live cluster
 * what is left to do (check() is satisfied when nothing is), so a re-run after a failure continues, and
 * objects that are already gone are fine.
 */
export interface PlanItem {
  phase: string;
  action: 'delete' | 'revert' | 'restore' | 'uninstall' | 'remove' | 'rewrite';
  target: string;
  detail?: string;
}

interface Work {
  items: PlanItem[];
  /** Said when there is nothing to do. */
  nothing: string;
  /** Said in the plan even when there is nothing to do (e.g. "kept: --keep-istio"). */
  notes?: string[];
}

export type DownStep = Step<DownSettings> & { work(ctx: Context<DownSettings>): Promise<Work> };

const MANAGED_KEY = Object.keys(MANAGED_BY)[0];
const MANAGED_VALUE = Object.values(MANAGED_BY)[0];

// ------------------------------------------------------------------------------------------------ objects

interface Target {
  ref: ObjectRef;
  terminating: boolean;
}

/**
 * Which recorded objects are still there. An object whose uid differs from the recorded one and that does not
 * carry meshdemo's label was replaced by someone else: it is left alone.
 */
async function liveTargets(kube: KubeClient, entries: CreatedEntry[]): Promise<{ targets: Target[]; foreign: ObjectRef[] }> {
  const targets: Target[] = [];
  const foreign: ObjectRef[] = [];
  await Promise.all(
    entries.map(async (e) => {
      const ref: ObjectRef = { apiVersion: e.apiVersion, kind: e.kind, name: e.name, namespace: e.namespace };
      const live = await kube.get(ref);
      if (!live) return;
      if (e.uid && live.metadata.uid !== e.uid && live.metadata.labels?.[MANAGED_KEY] !== MANAGED_VALUE) return void foreign.push(ref);
      targets.push({ ref: { ...ref, namespace: live.metadata.namespace ?? ref.namespace }, terminating: Boolean(live.metadata.deletionTimestamp) });
    }),
  );
  return { targets: sortForDeletion(targets), foreign };
}

/** Custom resources before their CRDs, workloads before what they use, RBAC and CRDs last. */
function deletionRank(ref: ObjectRef): number {
  const group = ref.apiVersion.includes('/') ? ref.apiVersion.split('/')[0] : '';
  if (ref.kind === 'Namespace') return 7;
  if (ref.kind === 'CustomResourceDefinition') return 6;
  if (/^(ClusterRole|ClusterRoleBinding|Role|RoleBinding|ServiceAccount)$/.test(ref.kind)) return 5;
  if (/WebhookConfiguration$/.test(ref.kind)) return 0;
  if (group.includes('.') && !group.endsWith('.k8s.io')) return 1;
  if (/^(Deployment|StatefulSet|DaemonSet|Job|CronJob|HorizontalPodAutoscaler|PodDisruptionBudget)$/.test(ref.kind)) return 2;
  if (ref.kind === 'Service') return 3;
  return 4;
}

function sortForDeletion<T extends { ref: ObjectRef }>(items: T[]): T[] {
  return [...items].sort((a, b) => deletionRank(a.ref) - deletionRank(b.ref) || describeRef(a.ref).localeCompare(describeRef(b.ref)));
}

function deadline(ctx: Context<DownSettings>): number {
  return ctx.settings.state.deadline;
}

async function pause(ctx: Context<DownSettings>, ms: number): Promise<void> {
  await sleep(ms, undefined, { signal: ctx.signal }).catch(() => {
    throw new InterruptedError();
  });
}

/** Why an object is not gone yet: its finalizers, and for a namespace its deletion conditions. */
async function whyStillThere(kube: KubeClient, ref: ObjectRef): Promise<string> {
  let live: KubeObject | undefined;
  try {
    live = await kube.get(ref);
  } catch (err) {
    // a refused or failed lookup says nothing about whether it is gone
    return `${describeRef(ref)}: could not be looked up (${oneLine(err)})`;
  }
  if (!live) return `${describeRef(ref)}: gone`;
  const parts: string[] = [];
  if (!live.metadata.deletionTimestamp) parts.push('not being deleted');
  const finalizers = [...((live.metadata.finalizers as string[] | undefined) ?? []), ...((live.spec?.finalizers as string[] | undefined) ?? [])];
  if (finalizers.length) parts.push(`finalizers ${finalizers.join(', ')}`);
  for (const c of live.status?.conditions ?? []) {
    if (c.status === 'True' && c.message && /Namespace|Content|Finalizer|Discovery|GroupVersion/.test(c.type ?? '')) parts.push(c.message);
  }
  return `${describeRef(ref)}: ${parts.join('; ') || 'still terminating'}`;
}

/** Polls until every ref is gone (or was replaced: another uid), up to down's deadline. */
export async function waitGone(ctx: Context<DownSettings>, refs: ObjectRef[], what: string): Promise<void> {
  const kube = await ctx.kube();
  const uids = new Map<string, string | undefined>();
  await Promise.all(refs.map(async (r) => uids.set(describeRef(r), (await kube.get(r))?.metadata.uid)));
  let lastReport = Date.now();
  for (;;) {
    const left: ObjectRef[] = [];
    await Promise.all(
      refs.map(async (r) => {
        const live = await kube.get(r);
        if (live && (uids.get(describeRef(r)) === undefined || live.metadata.uid === uids.get(describeRef(r)))) left.push(r);
      }),
    );
    if (!left.length) return;
    if (Date.now() >= deadline(ctx)) {
      const details = await Promise.all(sortForDeletion(left.map((ref) => ({ ref }))).slice(0, 10).map((l) => whyStillThere(kube, l.ref)));
      throw new ReadinessTimeoutError(`${what}: ${left.length} still there before the deadline: ${left.slice(0, 5).map(describeRef).join(', ')}${left.length > 5 ? ', …' : ''}`, {
        hint: 'see below why they are not gone; fix that (or raise --timeout) and re-run meshdemo down',
        details,
      });
    }
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      ctx.log.info(`waiting for ${left.length} to go: ${left.slice(0, 3).map(describeRef).join(', ')}${left.length > 3 ? ', …' : ''}`);
    }
    await pause(ctx, 300);
  }
}

/** Deletes the targets in order (background propagation), then waits for all of them to be gone. */
async function deleteAndWait(ctx: Context<DownSettings>, targets: Target[], what: string): Promise<number> {
  const kube = await ctx.kube();
  let deleted = 0;
  const ranks = [...new Set(targets.map((t) => deletionRank(t.ref)))].sort((a, b) => a - b);
  for (const rank of ranks) {
    const batch = sortForDeletion(targets.filter((t) => deletionRank(t.ref) === rank && !t.terminating));
    await mapLimit(batch, 8, async (t) => {
      if (ctx.signal.aborted) throw new InterruptedError();
      if (await kube.delete(t.ref)) {
        deleted++;
        ctx.log.debug(`deleted ${describeRef(t.ref)}`);
      }
    });
  }
  await waitGone(ctx, targets.map((t) => t.ref), what);
  return deleted;
}

function deleteItems(phase: string, targets: Target[]): PlanItem[] {
  return targets.map((t) => ({ phase, action: 'delete', target: describeRef(t.ref), ...(t.terminating ? { detail: 'already terminating' } : {}) }));
}

function foreignNotes(foreign: ObjectRef[]): string[] {
  return foreign.map((r) => `${describeRef(r)} was replaced by an object meshdemo did not create: left alone`);
}

/** "delete 44: A, B, C, … (44 in all)" — the check detail, and a dry run's "would run". */
function summary(work: Work): string {
  const counts = new Map<string, number>();
  for (const i of work.items) counts.set(i.action, (counts.get(i.action) ?? 0) + 1);
  const head = [...counts].map(([action, n]) => (['delete', 'revert', 'restore'].includes(action) ? `${action} ${n}` : action)).join(', ');
  const first = work.items.slice(0, 3).map((i) => i.target).join(', ');
  return `${head}: ${first}${work.items.length > 3 ? `, … (${work.items.length} in all)` : ''}`;
}

/** What check() just found, handed to run() — unless the records were reloaded in between (after the lock). */
const checked = new WeakMap<DownRecords, Map<string, Work>>();

function stepOf(id: string, title: string, work: DownStep['work'], run: (ctx: Context<DownSettings>, w: Work) => Promise<string>): DownStep {
  return {
    id,
    title,
    work,
    async check(ctx): Promise<CheckResult> {
      const w = await work(ctx);
      const r = records(ctx);
      if (!checked.has(r)) checked.set(r, new Map());
      checked.get(r)!.set(id, w);
      return w.items.length ? { satisfied: false, detail: summary(w) } : { satisfied: true, detail: w.nothing };
    },
    async run(ctx) {
      const memo = checked.get(records(ctx));
      const w = memo?.get(id) ?? (await work(ctx));
      memo?.delete(id);
      for (const note of w.notes ?? []) ctx.log.note(note);
      return run(ctx, w);
    },
  };
}

// ------------------------------------------------------------------------------------------------ phases

function appEntries(r: DownRecords): CreatedEntry[] {
  return r.created.filter((c) => !ISTIO_HALF_STEPS.has(c.step) && c.kind !== 'Namespace');
}

export const downApp: DownStep = stepOf(
  'down-app',
  'Delete the demo app, its Gateway and VirtualService',
  async (ctx) => {
    const { targets, foreign } = await liveTargets(await ctx.kube(), appEntries(records(ctx)));
    return { items: deleteItems('down-app', targets), nothing: 'no app objects of meshdemo left', notes: foreignNotes(foreign) };
  },
  async (ctx) => {
    const { targets } = await liveTargets(await ctx.kube(), appEntries(records(ctx)));
    const n = await deleteAndWait(ctx, targets, 'app objects');
    return `deleted ${n} app object(s)`;
  },
);

interface ServiceRevert {
  ref: ObjectRef;
  previous: { type?: string; ports?: any[] };
  live: KubeObject;
}

function normalizePorts(ports: any[] | undefined): string {
  return JSON.stringify(
    (ports ?? []).map((p) => ({ name: p.name ?? '', port: p.port, targetPort: p.targetPort ?? p.port, protocol: p.protocol ?? 'TCP', nodePort: p.nodePort ?? null })),
  );
}

/** The ports exactly as they were; a ClusterIP Service gets no node ports. */
function previousPorts(previous: ServiceRevert['previous']): any[] | undefined {
  if (!previous.ports) return undefined;
  const noNodePorts = previous.type === 'ClusterIP' || previous.type === 'ExternalName';
  return previous.ports.map((p) => {
    const { nodePort, ...rest } = p;
    return noNodePorts || !nodePort ? rest : { ...rest, nodePort };
  });
}

function isReverted(live: KubeObject, previous: ServiceRevert['previous']): boolean {
  if (previous.type && live.spec?.type !== previous.type) return false;
  return !previous.ports || normalizePorts(live.spec?.ports) === normalizePorts(previousPorts(previous));
}

function describeService(type: string | undefined, ports: any[] | undefined): string {
  const nodePorts = (ports ?? []).map((p) => p.nodePort).filter(Boolean);
  return `${type ?? '?'}${nodePorts.length ? ` (node port ${nodePorts.join(', ')})` : ''}`;
}

async function serviceReverts(ctx: Context<DownSettings>): Promise<{ pending: ServiceRevert[]; gone: ChangedEntry[] }> {
  const kube = await ctx.kube();
  const r = records(ctx);
  const pending: ServiceRevert[] = [];
  const gone: ChangedEntry[] = [];
  for (const c of r.changed) {
    if (c.ref.kind !== 'Service' || !('type' in c.previous || 'ports' in c.previous)) continue;
    if (r.created.some((e) => e.kind === 'Service' && e.name === c.ref.name && e.namespace === c.ref.namespace)) continue;
    const live = await kube.get(c.ref);
    if (!live) {
      gone.push(c);
      continue;
    }
    const previous = { type: (c.previous.type as string | undefined) ?? undefined, ports: (c.previous.ports as any[] | undefined) ?? undefined };
    if (!isReverted(live, previous)) pending.push({ ref: c.ref, previous, live });
  }
  return { pending, gone };
}

export const downDashboards: DownStep = stepOf(
  'down-dashboards',
  'Revert the dashboard Services',
  async (ctx) => {
    const { pending, gone } = await serviceReverts(ctx);
    return {
      items: pending.map((p) => ({
        phase: 'down-dashboards',
        action: 'revert',
        target: describeRef(p.ref),
        detail: `back to ${describeService(p.previous.type, p.previous.ports)}, now ${describeService(p.live.spec?.type, p.live.spec?.ports)}`,
      })),
      nothing: 'no dashboard Service to revert',
      notes: gone.map((g) => `${describeRef(g.ref)} no longer exists: nothing to revert`),
    };
  },
  async (ctx) => {
    const kube = await ctx.kube();
    const { pending } = await serviceReverts(ctx);
    for (const p of pending) {
      // a merge patch replaces the ports list as a whole: node ports the previous list lacks are dropped
      const spec: Record<string, unknown> = {};
      if (p.previous.type) spec.type = p.previous.type;
      const ports = previousPorts(p.previous);
      if (ports) spec.ports = ports;
      try {
        await kube.mergePatch(p.ref, { spec });
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 422)) throw err;
        throw new KubeApiError(`reverting ${describeRef(p.ref)} to ${describeService(p.previous.type, ports)} was refused: ${err.message}`, 422, err.reason, {
          hint: 'a node port it had may now belong to another Service: free it (or change the Service by hand), then re-run meshdemo down',
        });
      }
      ctx.log.info(`${describeRef(p.ref)}: ${describeService(p.previous.type, ports)}`);
    }
    return `reverted ${pending.length} Service(s)`;
  },
);

function addonEntries(r: DownRecords): CreatedEntry[] {
  return r.created.filter((c) => ISTIO_HALF_STEPS.has(c.step) && c.kind !== 'Namespace');
}

export const downAddons: DownStep = stepOf(
  'down-addons',
  'Delete the addons (Prometheus, Grafana, Jaeger, Kiali and its CRD)',
  async (ctx) => {
    const { targets, foreign } = await liveTargets(await ctx.kube(), addonEntries(records(ctx)));
    return { items: deleteItems('down-addons', targets), nothing: 'no addon objects of meshdemo left', notes: foreignNotes(foreign) };
  },
  async (ctx) => {
    const { targets } = await liveTargets(await ctx.kube(), addonEntries(records(ctx)));
    const n = await deleteAndWait(ctx, targets, 'addon objects');
    return `deleted ${n} addon object(s)`;
  },
);

async function istioWork(ctx: Context<DownSettings>): Promise<Work & { objects: KubeObject[]; istioctl?: string }> {
  const r = records(ctx);
  if (ctx.settings.keepIstio) return { items: [], objects: [], nothing: 'Istio kept (--keep-istio)' };
  if (!r.istioOurs) return { items: [], objects: [], nothing: 'Istio was not installed by meshdemo: left as it is' };
  const objects = await istioObjects(await ctx.kube());
  if (!objects.length) return { items: [], objects, nothing: 'Istio is not installed' };
  const istioctl = istioctlFor(ctx.options.cacheDir, r.istioVersion);
  const notes = istioctl
    ? []
    : [`istioctl ${r.istioVersion} is not in the cache (${istioctlPath(ctx.options.cacheDir, r.istioVersion)}): deleting Istio's ${objects.length} objects directly (found by istioctl's labels) instead`];
  return {
    items: [
      {
        phase: 'down-istio',
        action: 'uninstall',
        target: `Istio ${r.istioVersion}`,
        detail: istioctl ? `istioctl x uninstall --purge (${objects.length} objects)` : `istioctl is not cached: delete its ${objects.length} objects directly`,
      },
    ],
    objects,
    istioctl,
    nothing: '',
    notes,
  };
}

export const downIstio: DownStep = stepOf(
  'down-istio',
  'Uninstall Istio (istioctl x uninstall --purge)',
  istioWork,
  async (ctx, w0) => {
    const w = w0 as Awaited<ReturnType<typeof istioWork>>;
    const kube = await ctx.kube();
    if (w.istioctl) {
      const seconds = Math.max(30, Math.round((deadline(ctx) - Date.now()) / 1000));
      await runCommand(w.istioctl, ['x', 'uninstall', '--purge', '-y', ...(await istioctlKubeArgs(ctx))], {
        signal: ctx.signal,
        timeoutMs: seconds * 1000,
        tailLines: 10,
        onLine: (line) => {
          if (line.trim()) ctx.log.info(line);
        },
      });
    }
    // whatever istioctl left (or all of it, without istioctl) is deleted directly
    const left = (await istioObjects(kube)).map((o) => ({ ref: refOf(o), terminating: Boolean(o.metadata.deletionTimestamp) }));
    const n = await deleteAndWait(ctx, left, 'Istio objects');
    return w.istioctl ? `istioctl x uninstall --purge${n ? `; ${n} leftover object(s) deleted` : ''}` : `${n} Istio object(s) deleted (istioctl not cached)`;
  },
);

interface LabelRevert {
  ref: ObjectRef;
  /** A label, or (recorded for objects the addons' apply changed) an annotation. */
  kind: 'label' | 'annotation';
  key: string;
  previous: string | null;
  now: string | null;
}

function namespacesToDelete(ctx: Context<DownSettings>): string[] {
  const r = records(ctx);
  const names = [...r.createdNamespaces, ...r.created.filter((c) => c.kind === 'Namespace').map((c) => c.name)];
  return [...new Set(names)].filter((n) => !PROTECTED_NAMESPACES.has(n) && !(n === ISTIO_NAMESPACE && ctx.settings.keepIstio));
}

async function labelReverts(ctx: Context<DownSettings>, deleting: string[]): Promise<{ pending: LabelRevert[]; skipped: string[] }> {
  const kube = await ctx.kube();
  const pending: LabelRevert[] = [];
  const skipped: string[] = [];
  for (const c of records(ctx).changed) {
    for (const [field, previous] of Object.entries(c.previous)) {
      const kind = field.startsWith('label:') ? 'label' : field.startsWith('annotation:') ? 'annotation' : undefined;
      if (!kind) {
        if (!(c.ref.kind === 'Service' && (field === 'type' || field === 'ports'))) skipped.push(`${describeRef(c.ref)}: meshdemo does not know how to revert "${field}"`);
        continue;
      }
      if (c.ref.kind === 'Namespace' && deleting.includes(c.ref.name)) continue;
      const live = await kube.get(c.ref);
      if (!live) continue;
      const key = field.slice(kind.length + 1);
      const now = (kind === 'label' ? live.metadata.labels : live.metadata.annotations)?.[key] ?? null;
      const want = (previous as string | null | undefined) ?? null;
      if (now !== want) pending.push({ ref: c.ref, kind, key, previous: want, now });
    }
  }
  return { pending, skipped };
}

async function namespaceWork(ctx: Context<DownSettings>): Promise<Work & { labels: LabelRevert[]; namespaces: Target[] }> {
  const kube = await ctx.kube();
  const deleting = namespacesToDelete(ctx);
  const { pending: labels, skipped } = await labelReverts(ctx, deleting);
  const namespaces: Target[] = [];
  for (const name of deleting) {
    const live = await kube.get({ apiVersion: 'v1', kind: 'Namespace', name });
    if (live) namespaces.push({ ref: { apiVersion: 'v1', kind: 'Namespace', name }, terminating: Boolean(live.metadata.deletionTimestamp) });
  }
  const items: PlanItem[] = [
    ...labels.map((l) => ({
      phase: 'down-namespaces',
      action: 'restore' as const,
      target: `${l.kind} ${l.key} of ${describeRef(l.ref)}`,
      detail: l.previous === null ? `remove it (was absent; now ${l.now})` : `back to ${l.previous} (now ${l.now ?? 'absent'})`,
    })),
    ...deleteItems('down-namespaces', namespaces),
  ];
  const notes = [...skipped];
  if (ctx.settings.keepIstio && records(ctx).createdNamespaces.includes(ISTIO_NAMESPACE)) notes.push(`namespace ${ISTIO_NAMESPACE} kept (--keep-istio)`);
  return { items, labels, namespaces, nothing: 'no namespace to restore or delete', notes };
}

export const downNamespaces: DownStep = stepOf(
  'down-namespaces',
  'Restore namespace labels, delete the namespaces meshdemo created',
  namespaceWork,
  async (ctx, w0) => {
    const kube = await ctx.kube();
    const w = w0 as Awaited<ReturnType<typeof namespaceWork>>;
    for (const l of w.labels) {
      await kube.mergePatch(l.ref, { metadata: { [l.kind === 'label' ? 'labels' : 'annotations']: { [l.key]: l.previous } } });
      ctx.log.info(`${describeRef(l.ref)}: ${l.key}${l.previous === null ? ' removed' : `=${l.previous}`}`);
    }
    // the app namespace (which holds the record) goes last, so a failure before it leaves the record in place
    const app = ctx.options.namespace;
    const first = w.namespaces.filter((t) => t.ref.name !== app);
    const last = w.namespaces.filter((t) => t.ref.name === app);
    if (first.length) await deleteAndWait(ctx, first, 'namespaces');
    if (last.length) await deleteAndWait(ctx, last, 'namespaces');
    const parts = [];
    if (w.labels.length) parts.push(`${w.labels.length} label(s) restored`);
    if (w.namespaces.length) parts.push(`deleted ${w.namespaces.map((n) => n.ref.name).join(', ')}`);
    return parts.join('; ');
  },
);

/** With --keep-istio the record keeps only that meshdemo installed Istio, so a later down can still remove it. */
function keepsIstioRecord(ctx: Context<DownSettings>): boolean {
  return ctx.settings.keepIstio && records(ctx).istioOurs;
}

function reducedInventory(ctx: Context<DownSettings>): Record<string, unknown> {
  const d = records(ctx).inventory!.data;
  const steps = Object.fromEntries(Object.entries(d.steps).filter(([id]) => id === 'istio-install' || id === 'istio-download'));
  return { createdNamespaces: d.createdNamespaces.filter((n) => n === ISTIO_NAMESPACE), created: d.created.filter((c) => c.step === 'istio-install'), changed: [], images: [], steps };
}

async function inventoryWork(ctx: Context<DownSettings>): Promise<Work> {
  const r = records(ctx);
  if (r.source !== 'inventory' || !r.inventory) return { items: [], nothing: 'no inventory to remove' };
  const app = ctx.options.namespace;
  if (namespacesToDelete(ctx).includes(app)) {
    const notes = keepsIstioRecord(ctx) ? [`the record that meshdemo installed Istio goes with namespace ${app}; remove Istio later with meshdemo down --force`] : [];
    const present = await (await ctx.kube()).get({ apiVersion: 'v1', kind: 'Namespace', name: app });
    if (present) return { items: [], nothing: `the inventory goes with namespace ${app}`, notes };
  }
  const live = await (await ctx.kube()).get(INVENTORY_REF(app));
  if (!live) return { items: [], nothing: 'the inventory is already gone' };
  if (keepsIstioRecord(ctx)) {
    const current: Record<string, unknown> = parseRecord(live.data?.['inventory.json'], app);
    const wanted = reducedInventory(ctx);
    const same = Object.entries(wanted).every(([k, v]) => JSON.stringify(current[k] ?? null) === JSON.stringify(v));
    if (same) return { items: [], nothing: 'the inventory holds only the Istio install (--keep-istio)' };
    return { items: [{ phase: 'down-inventory', action: 'rewrite', target: describeRef(INVENTORY_REF(app)), detail: 'keep only that meshdemo installed Istio (--keep-istio)' }], nothing: '' };
  }
  return { items: [{ phase: 'down-inventory', action: 'remove', target: describeRef(INVENTORY_REF(app)) }], nothing: '' };
}

export const downInventory: DownStep = stepOf(
  'down-inventory',
  'Remove the inventory',
  inventoryWork,
  async (ctx) => {
    const inventory = records(ctx).inventory!;
    if (keepsIstioRecord(ctx)) {
      Object.assign(inventory.data, reducedInventory(ctx));
      await inventory.flush();
      return 'kept only the record of the Istio install';
    }
    await inventory.remove();
    return `removed ${describeRef(INVENTORY_REF(ctx.options.namespace))}`;
  },
);

export const DOWN_STEPS: DownStep[] = [downApp, downDashboards, downAddons, downIstio, downNamespaces, downInventory];

/** The whole plan, phase by phase, with the notes each phase wants said. */
export async function planDown(ctx: Context<DownSettings>): Promise<{ items: PlanItem[]; notes: string[]; nothing: Record<string, string> }> {
  const items: PlanItem[] = [];
  const notes: string[] = [...records(ctx).notes];
  const nothing: Record<string, string> = {};
  for (const step of DOWN_STEPS) {
    const w = await step.work(ctx);
    items.push(...w.items);
    notes.push(...(w.notes ?? []));
    if (!w.items.length) nothing[step.id] = w.nothing;
  }
  return { items, notes, nothing };
}
