import type { Context } from '../record/context.js';
import { describeRef, type ObjectRef } from '../kube/client.js';
import { ISTIO_NAMESPACE } from '../demo/facts.js';
import { deleteAndWait, deleteItems, namespacesToDelete, stepOf, type DownStep, type PlanItem, type Target, type Work } from '../down/phase.js';
import { records, type DownSettings } from '../down/records.js';

interface LabelRevert {
  ref: ObjectRef;
  /** A label, or (recorded for objects the addons' apply changed) an annotation. */
  kind: 'label' | 'annotation';
  key: string;
  previous: string | null;
  now: string | null;
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
