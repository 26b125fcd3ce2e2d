import type { Step } from '../record/context.js';
import { MANAGED_BY } from '../record/inventory.js';
import { injectionLabel, INJECTION_LABEL } from '../demo/facts.js';

export const namespaceLabel: Step = {
  id: 'namespace-label',
  title: 'Label namespace for sidecar injection',
  // a label, independent of Istio: set while istioctl installs (the webhook reads it when pods are created); not
  // before the release is verified, so that a failed download changes nothing on the cluster
  after: ['preflight', 'istio-download'],
  async check(ctx) {
    const ns = ctx.options.namespace;
    const value = await injectionLabel(await ctx.reads(), ns);
    return value === 'enabled'
      ? { satisfied: true, detail: `${ns} has ${INJECTION_LABEL}=enabled` }
      : { satisfied: false, detail: `label ${ns} ${INJECTION_LABEL}=enabled (now ${value ?? 'unset'})` };
  },
  async run(ctx) {
    const kube = await ctx.kube();
    const inventory = await ctx.inventory();
    const name = ctx.options.namespace;
    const ref = { apiVersion: 'v1', kind: 'Namespace', name };
    const existing = await kube.get(ref);
    if (!existing) {
      // the record lives in this namespace: writing it creates the namespace (recorded as created by meshdemo)
      await inventory.recordCreatedNamespace(name);
      const labels = { [INJECTION_LABEL]: 'enabled', ...MANAGED_BY };
      if (await kube.get(ref)) await kube.mergePatch(ref, { metadata: { labels } });
      else await kube.create({ ...ref, metadata: { name, labels } });
      return `created namespace ${name} with ${INJECTION_LABEL}=enabled`;
    }
    const previous = existing.metadata.labels?.[INJECTION_LABEL] ?? null;
    if (!inventory.data.createdNamespaces.includes(name)) await inventory.recordChanged('namespace-label', ref, { [`label:${INJECTION_LABEL}`]: previous });
    await kube.mergePatch(ref, { metadata: { labels: { [INJECTION_LABEL]: 'enabled' } } });
    const pods = await kube.list('v1', 'Pod', { namespace: name });
    const bare = pods.filter((p) => p.status?.phase === 'Running' && !(p.spec?.containers ?? []).some((c: any) => c.name === 'istio-proxy'));
    if (bare.length) {
      ctx.log.warn(`${bare.length} pod(s) in ${name} run without a sidecar: ${bare.slice(0, 5).map((p) => p.metadata.name).join(', ')}${bare.length > 5 ? ', …' : ''}`);
      ctx.log.info(`restart them to inject it: kubectl rollout restart deployment -n ${name}`);
    }
    return `${name}: ${INJECTION_LABEL}=enabled (was ${previous ?? 'unset'})`;
  },
};
