import type { CreatedEntry } from '../record/inventory.js';
import { deleteAndWait, deleteItems, foreignNotes, liveTargets, stepOf, type DownStep } from '../down/phase.js';
import { ISTIO_HALF_STEPS, records, type DownRecords } from '../down/records.js';

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
