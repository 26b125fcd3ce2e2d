import type { Step } from '../record/context.js';
import { labelledByMeshdemo, MANAGED_BY } from '../record/inventory.js';
import { KubeApiError } from '../kube/client.js';
import { INJECTION_LABEL, ISTIO_NAMESPACE } from '../demo/facts.js';

const ref = { apiVersion: 'v1', kind: 'Namespace', name: ISTIO_NAMESPACE };

/**
 * istio-system, made before istioctl runs (istioctl creates it only when it is missing: operator/cmd/mesh/shared.go
 * createNamespace), so that the addons can be applied into it while istioctl installs and waits.
 */
export const istioNamespace: Step = {
  id: 'istio-namespace',
  title: `Create namespace ${ISTIO_NAMESPACE}`,
  async check(ctx) {
    return (await (await ctx.reads()).get(ref))
      ? { satisfied: true, detail: `${ISTIO_NAMESPACE} exists` }
      : { satisfied: false, detail: `create namespace ${ISTIO_NAMESPACE}` };
  },
  async run(ctx) {
    const kube = await ctx.kube();
    const inventory = await ctx.inventory();
    // recorded first: a run stopped right after the create still leaves a record that down can use
    await inventory.recordCreatedNamespace(ISTIO_NAMESPACE);
    try {
      // labelled as istioctl labels it when it makes it (no sidecars in Istio's own namespace), and as meshdemo's
      await kube.create({ ...ref, metadata: { name: ISTIO_NAMESPACE, labels: { [INJECTION_LABEL]: 'disabled', ...MANAGED_BY } } });
    } catch (err) {
      if (!(err instanceof KubeApiError) || err.status >= 500) throw err; // it may have been created: the record stays
      if (err.status === 409) {
        // a retried create that had worked finds its own namespace; one made by someone else is not ours to delete
        const live = await kube.get(ref);
        if (labelledByMeshdemo(live)) return `created namespace ${ISTIO_NAMESPACE}`;
        await inventory.forgetCreatedNamespace(ISTIO_NAMESPACE);
        return `${ISTIO_NAMESPACE} was created meanwhile by someone else`;
      }
      await inventory.forgetCreatedNamespace(ISTIO_NAMESPACE);
      throw err;
    }
    return `created namespace ${ISTIO_NAMESPACE}`;
  },
};
