import type { Step } from '../record/context.js';
import { UsageError } from '../core/errors.js';
import { KubeApiError } from '../kube/client.js';
import { gatewayNodePorts } from '../kind/config.js';
import { ISTIO_NAMESPACE } from '../demo/facts.js';
import type { UpSettings } from '../settings.js';

const GATEWAY = { apiVersion: 'v1', kind: 'Service', namespace: ISTIO_NAMESPACE, name: 'istio-ingressgateway' };

/** Port name → the node port wanted, for the ports the live Service has. */
function wanted(svc: any, http2: number): Map<string, number> {
  const pins = gatewayNodePorts(http2);
  return new Map((svc.spec?.ports ?? []).filter((p: any) => p.name in pins).map((p: any) => [p.name, pins[p.name]]));
}

function pending(svc: any, http2: number): string[] {
  const want = wanted(svc, http2);
  return (svc.spec?.ports ?? []).filter((p: any) => want.has(p.name) && p.nodePort !== want.get(p.name)).map((p: any) => `${p.name} ${p.nodePort ?? '-'}→${want.get(p.name)}`);
}

/**
 * On a kind cluster the ingress gateway's node ports are pinned: http2 to the port the local cluster maps to the
 * host (--gateway-node-port, default 31080), the others to fixed values too, so that no random node port can take
 * a dashboard's (31001–31005). The previous ports are recorded first, so down reverts them.
 */
export const gatewayPorts: Step<Pick<UpSettings, 'gatewayNodePort'>> = {
  id: 'gateway-ports',
  title: 'Pin the ingress gateway node ports (kind)',
  async check(ctx) {
    const reads = await ctx.reads();
    if (!reads.contextName.startsWith('kind-')) return { satisfied: true, detail: 'not a kind cluster: node ports left as Kubernetes chose them' };
    const svc = await reads.get(GATEWAY);
    if (!svc) return { satisfied: false, detail: `pin http2 to ${ctx.settings.gatewayNodePort} once istio-ingressgateway exists` };
    const todo = pending(svc, ctx.settings.gatewayNodePort);
    return todo.length ? { satisfied: false, detail: `pin ${todo.join(', ')}` } : { satisfied: true, detail: `http2 on ${ctx.settings.gatewayNodePort}` };
  },
  async run(ctx) {
    const kube = await ctx.kube();
    const inventory = await ctx.inventory();
    const svc = await kube.get(GATEWAY);
    if (!svc) throw new UsageError('istio-ingressgateway is not installed', { hint: 'run meshdemo up again to install Istio' });
    const todo = pending(svc, ctx.settings.gatewayNodePort);
    const want = wanted(svc, ctx.settings.gatewayNodePort);
    const ports = (svc.spec.ports as any[]).map((p) => (want.has(p.name) ? { ...p, nodePort: want.get(p.name) } : p));
    const patch = { spec: { ports } };
    const refused = (err: unknown) =>
      err instanceof KubeApiError && err.status === 422
        ? new UsageError(`pinning istio-ingressgateway's node ports (${todo.join(', ')}) was refused: ${err.message}`, { hint: 'another Service holds one of them: choose another --gateway-node-port or free the port' })
        : err;
    try {
      await kube.mergePatch(GATEWAY, patch, { dryRun: true });
    } catch (err) {
      throw refused(err);
    }
    if (!inventory.isCreated(GATEWAY)) await inventory.recordChanged('gateway-ports', GATEWAY, { ports: svc.spec.ports });
    try {
      await kube.mergePatch(GATEWAY, patch);
    } catch (err) {
      throw refused(err);
    }
    await inventory.completeStep('gateway-ports', { nodePorts: Object.fromEntries(want) });
    return todo.join(', ');
  },
};
