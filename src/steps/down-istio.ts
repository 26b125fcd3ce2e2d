import type { Context } from '../record/context.js';
import { runCommand } from '../exec/run.js';
import { describeRef, refOf, type KubeClient, type KubeObject } from '../kube/client.js';
import { ISTIO_NAMESPACE } from '../demo/facts.js';
import { istioctlKubeArgs } from '../demo/istio-release.js';
import { deadline, deleteAndWait, stepOf, type DownStep, type Work } from '../down/phase.js';
import { istioObjects, istioObjectsElsewhere, istioctlFor, records, type DownSettings } from '../down/records.js';
import { revertItems, revertServices, serviceReverts, type ServiceRevert } from '../down/service-reverts.js';

async function istioWork(ctx: Context<DownSettings>): Promise<Work & { objects: KubeObject[]; istioctl?: string; gateway?: ServiceRevert[] }> {
  const r = records(ctx);
  if (ctx.settings.keepIstio || !r.istioOurs) {
    // Istio stays: the ingress gateway gets its node ports from before meshdemo pinned them back
    const { pending: gateway } = await serviceReverts(ctx, true);
    const nothing = ctx.settings.keepIstio ? 'Istio kept (--keep-istio)' : 'Istio was not installed by meshdemo: left as it is';
    return { items: revertItems('down-istio', gateway), objects: [], gateway, nothing };
  }
  const objects = await istioObjects(await ctx.kube());
  if (!objects.length) return { items: [], objects, nothing: 'Istio is not installed' };
  const { istioctl, why } = istioctlFor(ctx.options.cacheDir, r.istioVersion);
  const notes = istioctl
    ? [await purgeScopeNote(await ctx.kube())]
    : [`${why}: deleting Istio's ${objects.length} objects directly (found by istioctl's labels) instead`];
  for (const c of r.changed) {
    if (c.step === 'gateway-ports') notes.push(`${describeRef(c.ref)}: its pinned node ports are not reverted, it goes with Istio`);
  }
  return {
    items: [
      {
        phase: 'down-istio',
        action: 'uninstall',
        target: `Istio ${r.istioVersion}`,
        detail: istioctl ? `istioctl x uninstall --purge, cluster-wide (${objects.length} objects)` : `no trusted istioctl is cached: delete its ${objects.length} objects directly`,
      },
    ],
    objects,
    istioctl,
    nothing: '',
    notes,
  };
}

/**
 * istioctl 1.8.4's purge (operator/pkg/helmreconciler/prune.go GetPrunedResources) selects every IstioOperator and
 * every object labelled operator.istio.io/component in every namespace: the plan says so, and names what it would
 * take outside istio-system.
 */
async function purgeScopeNote(kube: KubeClient): Promise<string> {
  const elsewhere = await istioObjectsElsewhere(kube);
  const shown = elsewhere.slice(0, 5).map((o) => `${o.kind} ${o.metadata.namespace}/${o.metadata.name}`);
  return (
    'istioctl x uninstall --purge is cluster-wide: it deletes every IstioOperator and every object labelled operator.istio.io/component in every namespace, whoever installed it' +
    (elsewhere.length ? ` — here also ${elsewhere.length} outside ${ISTIO_NAMESPACE}: ${shown.join(', ')}${elsewhere.length > shown.length ? ', …' : ''}` : '')
  );
}

export const downIstio: DownStep = stepOf(
  'down-istio',
  'Uninstall Istio (istioctl x uninstall --purge)',
  istioWork,
  async (ctx, w0) => {
    const w = w0 as Awaited<ReturnType<typeof istioWork>>;
    if (w.gateway) {
      await revertServices(ctx, w.gateway);
      return `Istio left installed; reverted ${w.gateway.length} Service(s)`;
    }
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
