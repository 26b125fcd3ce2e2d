import type { ChangedEntry } from '../record/inventory.js';
import type { Context } from '../record/context.js';
import { describeRef, KubeApiError, type KubeObject, type ObjectRef } from '../kube/client.js';
import type { PlanItem } from './phase.js';
import { records, type DownSettings } from './records.js';

/** Services that up changed (the dashboards' type and node ports, the gateway's pinned node ports) and down reverts. */
export interface ServiceRevert {
  ref: ObjectRef;
  previous: { type?: string; ports?: any[] };
  live: KubeObject;
}

function normalizePorts(ports: any[] | undefined): string {
  return JSON.stringify(
    (ports ?? []).map((p) => ({ name: p.name ?? '', port: p.port, targetPort: p.targetPort ?? p.port, protocol: p.protocol ?? 'TCP', nodePort: p.nodePort ?? null })),
  );
}

/** The ports exactly as they were; a ClusterIP Service gets no node ports. */
function previousPorts(previous: ServiceRevert['previous']): any[] | undefined {
  if (!previous.ports) return undefined;
  const noNodePorts = previous.type === 'ClusterIP' || previous.type === 'ExternalName';
  return previous.ports.map((p) => {
    const { nodePort, ...rest } = p;
    return noNodePorts || !nodePort ? rest : { ...rest, nodePort };
  });
}

function isReverted(live: KubeObject, previous: ServiceRevert['previous']): boolean {
  if (previous.type && live.spec?.type !== previous.type) return false;
  return !previous.ports || normalizePorts(live.spec?.ports) === normalizePorts(previousPorts(previous));
}

function describeService(type: string | undefined, ports: any[] | undefined): string {
  const nodePorts = (ports ?? []).map((p) => p.nodePort).filter(Boolean);
  const list = nodePorts.length ? `node port ${nodePorts.join(', ')}` : '';
  // a record of the ports alone (the gateway's pinning) has no type: say only the ports
  if (!type) return list || 'as it was';
  return list ? `${type} (${list})` : type;
}

/**
 * The Services up changed that still differ from what they were. `gateway` selects the ingress gateway's pinned
 * node ports (step gateway-ports), which down reverts only in its Istio phase — after the addons are gone: the
 * gateway's random node ports from before pinning may be a dashboard's (31001–31005), and taking them back while
 * that dashboard still holds them is refused ("provided port is already allocated").
 */
export async function serviceReverts(ctx: Context<DownSettings>, gateway = false): Promise<{ pending: ServiceRevert[]; gone: ChangedEntry[] }> {
  const kube = await ctx.kube();
  const r = records(ctx);
  const pending: ServiceRevert[] = [];
  const gone: ChangedEntry[] = [];
  for (const c of r.changed) {
    if (c.ref.kind !== 'Service' || !('type' in c.previous || 'ports' in c.previous)) continue;
    if ((c.step === 'gateway-ports') !== gateway) continue;
    if (r.created.some((e) => e.kind === 'Service' && e.name === c.ref.name && e.namespace === c.ref.namespace)) continue;
    const live = await kube.get(c.ref);
    if (!live) {
      gone.push(c);
      continue;
    }
    const previous = { type: (c.previous.type as string | undefined) ?? undefined, ports: (c.previous.ports as any[] | undefined) ?? undefined };
    if (!isReverted(live, previous)) pending.push({ ref: c.ref, previous, live });
  }
  return { pending, gone };
}

export function revertItems(phase: string, pending: ServiceRevert[]): PlanItem[] {
  return pending.map((p) => ({
    phase,
    action: 'revert',
    target: describeRef(p.ref),
    detail: `back to ${describeService(p.previous.type, p.previous.ports)}, now ${describeService(p.live.spec?.type, p.live.spec?.ports)}`,
  }));
}

export async function revertServices(ctx: Context<DownSettings>, pending: ServiceRevert[]): Promise<void> {
  const kube = await ctx.kube();
  for (const p of pending) {
    // a merge patch replaces the ports list as a whole: node ports the previous list lacks are dropped
    const spec: Record<string, unknown> = {};
    if (p.previous.type) spec.type = p.previous.type;
    const ports = previousPorts(p.previous);
    if (ports) spec.ports = ports;
    try {
      await kube.mergePatch(p.ref, { spec });
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 422)) throw err;
      throw new KubeApiError(`reverting ${describeRef(p.ref)} to ${describeService(p.previous.type, ports)} was refused: ${err.message}`, 422, err.reason, {
        hint: 'a node port it had may now belong to another Service: free it (or change the Service by hand), then re-run meshdemo down',
      });
    }
    ctx.log.info(`${describeRef(p.ref)}: ${describeService(p.previous.type, ports)}`);
  }
}
