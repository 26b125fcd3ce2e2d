import { UsageError } from '../core/errors.js';
import type { Inventory } from '../core/inventory.js';
import type { Step } from '../core/step.js';
import { KubeApiError, type KubeClient, type KubeObject } from '../kube/client.js';
import { ISTIO_NAMESPACE, servicePort } from './facts.js';
import { DASHBOARDS, DEFAULT_DASHBOARDS, type UpSettings } from './settings.js';

type Settings = Pick<UpSettings, 'addons' | 'nodePorts'>;

/** The dashboards up exposes: the default four whose addon is applied. */
export function dashboardsFor(settings: Settings): Array<{ name: string; nodePort: number }> {
  const names = [...DEFAULT_DASHBOARDS, 'zipkin'].filter((n) => settings.addons.includes(DASHBOARDS[n].addon));
  return names.map((name) => ({ name, nodePort: settings.nodePorts[name] ?? DASHBOARDS[name].defaultNodePort }));
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
export async function exposeDashboard(kube: KubeClient, inventory: Inventory, name: string, nodePort: number): Promise<'changed' | 'unchanged'> {
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
  const ports = (svc.spec.ports as any[]).map((p) => (p === main ? { ...p, nodePort } : p));
  const patch = { spec: { type: 'NodePort', ports } };
  try {
    await kube.mergePatch(ref, patch, { dryRun: true });
  } catch (err) {
    throw await explainNodePortError(kube, err, name, nodePort);
  }
  const mark = inventory.mark();
  if (!inventory.isCreated(ref)) {
    await inventory.recordChanged('dashboards', ref, { type: svc.spec.type, ports: svc.spec.ports });
  }
  try {
    // some API servers check the NodePort range only when really allocating, not in a dry run
    await kube.mergePatch(ref, patch);
  } catch (err) {
    const explained = await explainNodePortError(kube, err, name, nodePort);
    // refused (422): the Service is unchanged, so the record of changing it goes again (a bad port changes nothing)
    if (explained instanceof UsageError) await inventory.rollback(mark);
    throw explained;
  }
  return 'changed';
}

async function explainNodePortError(kube: KubeClient, err: unknown, name: string, nodePort: number): Promise<unknown> {
  if (!(err instanceof KubeApiError) || err.status !== 422) return err;
  if (/already allocated/.test(err.message)) {
    const services = await kube.list('v1', 'Service');
    const holder = services.find((s) => (s.spec?.ports ?? []).some((p: any) => p.nodePort === nodePort));
    const who = holder ? `Service ${holder.metadata.namespace}/${holder.metadata.name}` : 'another Service';
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
  async check(ctx) {
    const kube = await ctx.kube();
    const wanted = dashboardsFor(ctx.settings);
    const pending: string[] = [];
    for (const { name, nodePort } of wanted) {
      const svc = await kube.get({ apiVersion: 'v1', kind: 'Service', namespace: ISTIO_NAMESPACE, name: DASHBOARDS[name].service });
      if (!isExposed(svc, name, nodePort)) pending.push(`${name}:${nodePort}`);
    }
    return pending.length
      ? { satisfied: false, detail: `expose ${pending.join(', ')}` }
      : { satisfied: true, detail: wanted.map((w) => `${w.name}:${w.nodePort}`).join(', ') };
  },
  async run(ctx) {
    const kube = await ctx.kube();
    const inventory = await ctx.inventory();
    const wanted = dashboardsFor(ctx.settings);
    for (const { name, nodePort } of wanted) await exposeDashboard(kube, inventory, name, nodePort);
    await inventory.completeStep('dashboards', { nodePorts: Object.fromEntries(wanted.map((w) => [w.name, w.nodePort])) });
    return wanted.map((w) => `${w.name}:${w.nodePort}`).join(', ');
  },
};
