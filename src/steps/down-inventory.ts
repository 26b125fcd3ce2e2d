import { parseRecord } from '../record/inventory.js';
import type { Context } from '../record/context.js';
import { describeRef } from '../kube/client.js';
import { ISTIO_NAMESPACE } from '../demo/facts.js';
import { namespacesToDelete, stepOf, type DownStep, type Work } from '../down/phase.js';
import { INVENTORY_REF, records, type DownSettings } from '../down/records.js';

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
