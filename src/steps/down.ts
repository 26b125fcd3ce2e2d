import type { Context } from '../record/context.js';
import type { DownStep, PlanItem } from '../down/phase.js';
import { records, type DownSettings } from '../down/records.js';
import { downAddons } from './down-addons.js';
import { downApp } from './down-app.js';
import { downDashboards } from './down-dashboards.js';
import { downInventory } from './down-inventory.js';
import { downIstio } from './down-istio.js';
import { downNamespaces } from './down-namespaces.js';

/**
 * The steps of `meshdemo down`, one per phase, in order. Each works out from the record and the live cluster
 * what is left to do (check() is satisfied when nothing is), so a re-run after a failure continues, and
 * objects that are already gone are fine.
 */
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
