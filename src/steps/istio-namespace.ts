import type { Step } from '../core/step.js';
import { KubeApiError } from '../kube/client.js';
import { ISTIO_NAMESPACE } from '../demo/facts.js';
import { INJECTION_LABEL } from './namespace-label.js';

const ref = { apiVersion: 'v1', kind: 'Namespace', name: ISTIO_NAMESPACE };

/**
 * istio-system, made before istioctl runs (istioctl creates it only when it is missing: operator/cmd/mesh/shared.go
 * createNamespace), so that the addons can be applied into it while istioctl installs and waits.
 */
export const istioNamespace: Step = {
  id: 'istio-namespace',
  title: `Create namespace ${ISTIO_NAMESPACE}`,
  async check(ctx) {
    return (await (await ctx.kube()).get(ref))
      ? { satisfied: true, detail: `${ISTIO_NAMESPACE} exists` }
      : { satisfied: false, detail: `create namespace ${ISTIO_NAMESPACE}` };
  },
  async run(ctx) {
    const kube = await ctx.kube();
    const inventory = await ctx.inventory();
    const mark = inventory.mark();
    // recorded first: a run stopped right after the create still leaves a record that down can use
    await inventory.recordCreatedNamespace(ISTIO_NAMESPACE);
    try {
      // labelled as istioctl labels it when it makes it: no sidecars in Istio's own namespace
      await kube.create({ ...ref, metadata: { name: ISTIO_NAMESPACE, labels: { [INJECTION_LABEL]: 'disabled' } } });
    } catch (err) {
      // made by someone else since the check: not ours to delete
      await inventory.rollback(mark);
      if (err instanceof KubeApiError && err.status === 409) return `${ISTIO_NAMESPACE} was created meanwhile by someone else`;
      throw err;
    }
    return `created namespace ${ISTIO_NAMESPACE}`;
  },
};
