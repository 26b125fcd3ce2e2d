import type { ChangedEntry } from '../core/inventory.js';
import type { Context } from '../core/step.js';
import { describeRef, KubeApiError, type KubeObject, type ObjectRef } from '../kube/client.js';
import { stepOf, type DownStep } from '../down/phase.js';
import { records, type DownSettings } from '../down/records.js';

interface ServiceRevert {
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
  return `${type ?? '?'}${nodePorts.length ? ` (node port ${nodePorts.join(', ')})` : ''}`;
}

async function serviceReverts(ctx: Context<DownSettings>): Promise<{ pending: ServiceRevert[]; gone: ChangedEntry[] }> {
  const kube = await ctx.kube();
  const r = records(ctx);
  const pending: ServiceRevert[] = [];
  const gone: ChangedEntry[] = [];
  for (const c of r.changed) {
    if (c.ref.kind !== 'Service' || !('type' in c.previous || 'ports' in c.previous)) continue;
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

export const downDashboards: DownStep = stepOf(
  'down-dashboards',
  'Revert the dashboard Services',
  async (ctx) => {
    const { pending, gone } = await serviceReverts(ctx);
    return {
      items: pending.map((p) => ({
        phase: 'down-dashboards',
        action: 'revert',
        target: describeRef(p.ref),
        detail: `back to ${describeService(p.previous.type, p.previous.ports)}, now ${describeService(p.live.spec?.type, p.live.spec?.ports)}`,
      })),
      nothing: 'no dashboard Service to revert',
      notes: gone.map((g) => `${describeRef(g.ref)} no longer exists: nothing to revert`),
    };
  },
  async (ctx) => {
    const kube = await ctx.kube();
    const { pending } = await serviceReverts(ctx);
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
    return `reverted ${pending.length} Service(s)`;
  },
);
