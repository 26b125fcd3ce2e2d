import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, oneLine, ReadinessTimeoutError } from '../core/errors.js';
import { MANAGED_BY, type CreatedEntry } from '../record/inventory.js';
import type { CheckResult, Context, Step } from '../record/context.js';
import { mapLimit } from '../kube/apply.js';
import { describeRef, type KubeClient, type KubeObject, type ObjectRef } from '../kube/client.js';
import { ISTIO_NAMESPACE } from '../demo/facts.js';
import { PROTECTED_NAMESPACES, records, type DownSettings } from './records.js';

/**
 * What every phase of `meshdemo down` (src/steps/down-*.ts) shares: the shape of a phase (its work, then check and
 * run made from it), finding the recorded objects still there, deleting them in order and waiting until they are gone.
 */

export interface PlanItem {
  phase: string;
  action: 'delete' | 'revert' | 'restore' | 'uninstall' | 'remove' | 'rewrite';
  target: string;
  detail?: string;
}

export interface Work {
  items: PlanItem[];
  /** Said when there is nothing to do. */
  nothing: string;
  /** Said in the plan even when there is nothing to do (e.g. "kept: --keep-istio"). */
  notes?: string[];
}

export type DownStep = Step<DownSettings> & { work(ctx: Context<DownSettings>): Promise<Work> };

const MANAGED_KEY = Object.keys(MANAGED_BY)[0];
const MANAGED_VALUE = Object.values(MANAGED_BY)[0];

export interface Target {
  ref: ObjectRef;
  terminating: boolean;
}

/**
 * Which recorded objects are still there. An object whose uid differs from the recorded one and that does not
 * carry meshdemo's label was replaced by someone else: it is left alone.
 */
export async function liveTargets(kube: KubeClient, entries: CreatedEntry[]): Promise<{ targets: Target[]; foreign: ObjectRef[] }> {
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

export function deadline(ctx: Context<DownSettings>): number {
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
export async function deleteAndWait(ctx: Context<DownSettings>, targets: Target[], what: string): Promise<number> {
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

export function deleteItems(phase: string, targets: Target[]): PlanItem[] {
  return targets.map((t) => ({ phase, action: 'delete', target: describeRef(t.ref), ...(t.terminating ? { detail: 'already terminating' } : {}) }));
}

export function foreignNotes(foreign: ObjectRef[]): string[] {
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

/**
 * What check() just found, handed to run() in the run's own state (settings.state.checked) — unless the records
 * were reloaded in between (after the lock): then run() works it out again.
 */
export function stepOf(id: string, title: string, work: DownStep['work'], run: (ctx: Context<DownSettings>, w: Work) => Promise<string>): DownStep {
  return {
    id,
    title,
    work,
    async check(ctx): Promise<CheckResult> {
      const w = await work(ctx);
      const state = ctx.settings.state;
      const r = records(ctx);
      if (state.checked?.records !== r) state.checked = { records: r, work: new Map() };
      state.checked.work.set(id, w);
      return w.items.length ? { satisfied: false, detail: summary(w) } : { satisfied: true, detail: w.nothing };
    },
    async run(ctx) {
      const checked = ctx.settings.state.checked;
      const memo = checked?.records === records(ctx) ? checked.work : undefined;
      const w = memo?.get(id) ?? (await work(ctx));
      memo?.delete(id);
      for (const note of w.notes ?? []) ctx.log.note(note);
      return run(ctx, w);
    },
  };
}

/** The namespaces meshdemo created and down deletes (never a protected one; istio-system stays with --keep-istio). */
export function namespacesToDelete(ctx: Context<DownSettings>): string[] {
  const r = records(ctx);
  const names = [...r.createdNamespaces, ...r.created.filter((c) => c.kind === 'Namespace').map((c) => c.name)];
  return [...new Set(names)].filter((n) => !PROTECTED_NAMESPACES.has(n) && !(n === ISTIO_NAMESPACE && ctx.settings.keepIstio));
}
