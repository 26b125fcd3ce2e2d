import type { CreatedEntry } from '../record/inventory.js';
import { deleteAndWait, deleteItems, foreignNotes, liveTargets, stepOf, type DownStep } from '../down/phase.js';
import { ISTIO_HALF_STEPS, records, type DownRecords } from '../down/records.js';

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
