import { UsageError } from '../core/errors.js';
import type { Inventory } from '../record/inventory.js';
import type { Step } from '../record/context.js';
import { KubeApiError, type KubeClient, type KubeObject } from '../kube/client.js';
import { ISTIO_NAMESPACE, servicePort } from '../demo/facts.js';
import { DASHBOARDS, DEFAULT_DASHBOARDS, type UpSettings } from '../settings.js';

type Settings = Pick<UpSettings, 'addons' | 'nodePorts'>;

/** The dashboards up exposes: the default four whose addon is applied; `explicit` when --node-port named the port. */
export function dashboardsFor(settings: Settings): Array<{ name: string; nodePort: number; explicit: boolean }> {
  const names = [...DEFAULT_DASHBOARDS, 'zipkin'].filter((n) => settings.addons.includes(DASHBOARDS[n].addon));
  return names.map((name) => ({ name, nodePort: settings.nodePorts[name] ?? DASHBOARDS[name].defaultNodePort, explicit: settings.nodePorts[name] !== undefined }));
}

/** The node port of a dashboard's Service when it is exposed (NodePort with one allocated), else undefined. */
function exposedPort(svc: KubeObject | undefined, name: string): number | undefined {
  if (!svc || svc.spec?.type !== 'NodePort') return undefined;
  return servicePort(svc, DASHBOARDS[name].portName)?.nodePort;
}

/**
 * A default port (not given with --node-port) is satisfied by the port up chose on an earlier run when the
 * default was taken (recorded as the dashboards step's input).
 */
function acceptablePorts(w: { name: string; nodePort: number; explicit: boolean }, inventory: Inventory): number[] {
  const recorded = (inventory.data.steps.dashboards?.inputs?.nodePorts as Record<string, number> | undefined)?.[w.name];
  return w.explicit || recorded === undefined ? [w.nodePort] : [w.nodePort, recorded];
}

export function isExposed(svc: KubeObject | undefined, name: string, nodePort: number): boolean {
  if (!svc || svc.spec?.type !== 'NodePort') return false;
  return servicePort(svc, DASHBOARDS[name].portName)?.nodePort === nodePort;
}

/**
 * Switches a dashboard Service to NodePort with a fixed node port, patching the live object. The previous
 * type and ports are recorded first, so `down` can revert them. A server-side dry run finds a port that is
 * out of range or taken before anything changes.
 */
export async function exposeDashboard(
  kube: KubeClient,
  inventory: Inventory,
  name: string,
  nodePort: number,
  opts: {
    /**
     * The port is only a default: when another Service holds it, let the API server allocate a free one and
     * call this with the holder (about 1 install in 100: the ingress gateway's five random node ports).
     */
    onTaken?: (holder: string) => void;
  } = {},
): Promise<'changed' | 'unchanged'> {
  const d = DASHBOARDS[name];
  const ref = { apiVersion: 'v1', kind: 'Service', namespace: ISTIO_NAMESPACE, name: d.service };
  const svc = await kube.get(ref);
  if (!svc) {
    throw new UsageError(`the ${name} dashboard is not installed (no Service ${ISTIO_NAMESPACE}/${d.service})`, {
      hint: `run meshdemo up${d.addon === 'zipkin' ? ' --addons prometheus,grafana,kiali,zipkin' : ''} first`,
    });
  }
  if (isExposed(svc, name, nodePort)) return 'unchanged';
  const main = servicePort(svc, d.portName);
  const withPort = (port: number | undefined) => ({
    spec: { type: 'NodePort', ports: (svc.spec.ports as any[]).map((p) => (p !== main ? p : port === undefined ? withoutNodePort(p) : { ...p, nodePort: port })) },
  });
  let patch = withPort(nodePort);
  try {
    await kube.mergePatch(ref, patch, { dryRun: true });
  } catch (err) {
    const holder = opts.onTaken && (await portHolder(kube, err, nodePort));
    if (!holder) throw await explainNodePortError(kube, err, name, nodePort);
    opts.onTaken!(holder);
    patch = withPort(undefined);
  }
  const mark = inventory.mark();
  const recordedBefore = inventory.isCreated(ref) || inventory.previousOf(ref) !== undefined;
  if (!inventory.isCreated(ref)) {
    await inventory.recordChanged('dashboards', ref, { type: svc.spec.type, ports: svc.spec.ports });
  }
  try {
    // some API servers check the NodePort range only when really allocating, not in a dry run
    await kube.mergePatch(ref, patch);
  } catch (err) {
    const explained = await explainNodePortError(kube, err, name, nodePort);
    // refused (422): the Service is unchanged, so the record of changing it goes again (a bad port changes nothing);
    // only that entry, when there was a record already: steps running beside this one may have recorded meanwhile
    if (explained instanceof UsageError) {
      if (!mark.existed) await inventory.rollback(mark);
      else if (!recordedBefore) await inventory.forgetChanged(ref);
    }
    throw explained;
  }
  return 'changed';
}

function withoutNodePort(port: any): any {
  const { nodePort: _dropped, ...rest } = port;
  return rest;
}

/** When the API server refused the port because it is allocated: who holds it ("Service ns/name"). */
async function portHolder(kube: KubeClient, err: unknown, nodePort: number): Promise<string | undefined> {
  if (!(err instanceof KubeApiError) || err.status !== 422 || !/already allocated/.test(err.message)) return undefined;
  const services = await kube.list('v1', 'Service');
  const holder = services.find((s) => (s.spec?.ports ?? []).some((p: any) => p.nodePort === nodePort));
  return holder ? `Service ${holder.metadata.namespace}/${holder.metadata.name}` : 'another Service';
}

async function explainNodePortError(kube: KubeClient, err: unknown, name: string, nodePort: number): Promise<unknown> {
  if (!(err instanceof KubeApiError) || err.status !== 422) return err;
  const who = await portHolder(kube, err, nodePort);
  if (who) {
    return new UsageError(`node port ${nodePort} for ${name} is already used by ${who}`, {
      hint: `choose another port with --node-port ${name}=<port>`,
    });
  }
  const range = /valid ports is ([\d-]+)/.exec(err.message)?.[1];
  if (range || /not in the valid range/.test(err.message)) {
    return new UsageError(`node port ${nodePort} for ${name} is outside the cluster's NodePort range${range ? ` ${range}` : ''}`, {
      hint: `choose a port in that range with --node-port ${name}=<port>`,
    });
  }
  return new UsageError(`node port ${nodePort} for ${name} was refused: ${err.message}`, { hint: `choose another port with --node-port ${name}=<port>` });
}

export const dashboards: Step<Settings> = {
  id: 'dashboards',
  title: 'Expose dashboards on NodePorts',
  // the addons' Services are all it needs, so it runs as soon as they exist, while istioctl may still wait; on kind
  // it waits for the gateway's pinned node ports too, so that none of its default ports is found taken by them
  after: ['addons', 'gateway-ports'],
  async check(ctx) {
    const reads = await ctx.reads();
    const inventory = await ctx.inventory();
    const wanted = dashboardsFor(ctx.settings);
    const pending: string[] = [];
    const exposed: string[] = [];
    for (const w of wanted) {
      const svc = await reads.get({ apiVersion: 'v1', kind: 'Service', namespace: ISTIO_NAMESPACE, name: DASHBOARDS[w.name].service });
      const port = exposedPort(svc, w.name);
      if (port !== undefined && acceptablePorts(w, inventory).includes(port)) exposed.push(`${w.name}:${port}`);
      else pending.push(`${w.name}:${w.nodePort}`);
    }
    return pending.length ? { satisfied: false, detail: `expose ${pending.join(', ')}` } : { satisfied: true, detail: exposed.join(', ') };
  },
  async run(ctx) {
    const kube = await ctx.kube();
    const inventory = await ctx.inventory();
    const wanted = dashboardsFor(ctx.settings);
    const ports: Record<string, number> = {};
    for (const w of wanted) {
      const ref = { apiVersion: 'v1', kind: 'Service', namespace: ISTIO_NAMESPACE, name: DASHBOARDS[w.name].service };
      const current = exposedPort(await kube.get(ref), w.name);
      if (current !== undefined && acceptablePorts(w, inventory).includes(current)) {
        ports[w.name] = current;
        continue;
      }
      let takenBy: string | undefined;
      await exposeDashboard(kube, inventory, w.name, w.nodePort, w.explicit ? {} : { onTaken: (holder) => (takenBy = holder) });
      ports[w.name] = exposedPort(await kube.get(ref), w.name) ?? w.nodePort;
      if (takenBy) {
        ctx.log.note(`node port ${w.nodePort} for ${w.name} is already used by ${takenBy}: ${w.name} got node port ${ports[w.name]} instead (choose one with --node-port ${w.name}=<port>)`);
      }
    }
    await inventory.completeStep('dashboards', { nodePorts: ports });
    return wanted.map((w) => `${w.name}:${ports[w.name]}`).join(', ');
  },
};
