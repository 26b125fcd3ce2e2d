import type { KubeClient, KubeObject } from './client.js';
import type { KubeReader } from './reads.js';
import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, ReadinessTimeoutError } from '../core/errors.js';

export interface DeploymentState {
  name: string;
  namespace: string;
  present: boolean;
  ready: boolean;
  desired: number;
  available: number;
}

export async function deploymentState(kube: KubeReader, namespace: string, name: string): Promise<DeploymentState> {
  const d = await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name });
  return toState(namespace, name, d);
}

export function toState(namespace: string, name: string, d: KubeObject | undefined): DeploymentState {
  if (!d) return { name, namespace, present: false, ready: false, desired: 0, available: 0 };
  const desired = d.spec?.replicas ?? 1;
  const status = d.status ?? {};
  const available = status.availableReplicas ?? 0;
  const upToDate = status.updatedReplicas ?? 0;
  const observed = (status.observedGeneration ?? 0) >= (d.metadata.generation ?? 0);
  // as `kubectl rollout status`: old pods still counted means the rollout is not done (they may be what is available)
  const noOldPods = (status.replicas ?? 0) <= desired;
  return { name, namespace, present: true, desired, available, ready: observed && available >= desired && upToDate >= desired && noOldPods };
}

/** Why a Deployment is not ready: its pods' waiting reasons, scheduling failures and the last warning events. */
export async function diagnoseDeployment(kube: KubeClient, namespace: string, name: string): Promise<string[]> {
  const d = await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name });
  if (!d) return [`Deployment ${namespace}/${name} does not exist`];
  const state = toState(namespace, name, d);
  const conditions: any[] = d.status?.conditions ?? [];
  const lines = [`Deployment ${namespace}/${name}: ${state.available}/${state.desired} available`];
  for (const c of conditions) {
    if (c.status !== 'True' && c.message) lines.push(`  ${c.type}: ${c.message}`);
  }
  const selector = Object.entries(d.spec?.selector?.matchLabels ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  const pods = selector ? await kube.list('v1', 'Pod', { namespace, labelSelector: selector }) : [];
  if (!pods.length) {
    const rsFailure = conditions.find((c) => c.reason === 'FailedCreate' || c.type === 'ReplicaFailure');
    return [...lines, '  no pods were created', ...(await replicaSetWarnings(kube, namespace, name, rsFailure?.message))];
  }
  lines.push(...pods.slice(0, 5).map(podLine));
  const events = await kube.list('v1', 'Event', { namespace });
  const podNames = new Set(pods.map((p) => p.metadata.name));
  for (const e of events.filter((e) => e.type === 'Warning' && podNames.has(e.involvedObject?.name)).slice(-3)) {
    lines.push(`  event ${e.reason}: ${e.message}`);
  }
  return lines;
}

/** With no pods: the last warnings of the Deployment's ReplicaSets, or else the Deployment's own failure message. */
async function replicaSetWarnings(kube: KubeClient, namespace: string, name: string, failure: string | undefined): Promise<string[]> {
  const events = await kube.list('v1', 'Event', { namespace });
  const rsEvents = events
    .filter((e) => e.type === 'Warning' && e.involvedObject?.kind === 'ReplicaSet' && String(e.involvedObject?.name).startsWith(`${name}-`))
    .slice(-3);
  if (rsEvents.length) return rsEvents.map((e) => `  ${e.reason}: ${e.message}`);
  return failure ? [`  ${failure}`] : [];
}

/** One pod: its phase, and why it is not running (unschedulable, containers waiting, terminated or not ready). */
function podLine(pod: any): string {
  const phase = pod.status?.phase ?? 'Unknown';
  const reasons: string[] = [];
  for (const c of pod.status?.conditions ?? []) {
    if (c.type === 'PodScheduled' && c.status === 'False') reasons.push(`unschedulable: ${c.message ?? c.reason}`);
  }
  for (const cs of [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])]) {
    const reason = containerReason(cs);
    if (reason) reasons.push(`container ${cs.name}: ${reason}`);
  }
  return `  pod ${pod.metadata.name}: ${phase}${reasons.length ? ` — ${reasons.join('; ')}` : ''}`;
}

function containerReason(cs: any): string | undefined {
  const waiting = cs.state?.waiting;
  if (waiting) return `${waiting.reason}${waiting.message ? ` (${waiting.message})` : ''}`;
  if (cs.ready) return undefined;
  return cs.state?.terminated ? `terminated ${cs.state.terminated.reason ?? ''}` : 'not ready';
}

/** Polls until every Deployment is ready; on the deadline, a ReadinessTimeoutError whose details say why. */
export async function waitForDeployments(
  kube: KubeClient,
  deployments: Array<{ namespace: string; name: string }>,
  opts: { deadline: number; signal?: AbortSignal; onWaiting?: (notReady: DeploymentState[]) => void },
): Promise<void> {
  let lastReport = 0;
  const started = Date.now();
  for (;;) {
    const states = await Promise.all(deployments.map((d) => deploymentState(kube, d.namespace, d.name)));
    const notReady = states.filter((s) => !s.ready);
    if (!notReady.length) return;
    if (Date.now() >= opts.deadline) {
      const details: string[] = [];
      for (const s of notReady) details.push(...(await diagnoseDeployment(kube, s.namespace, s.name)));
      throw new ReadinessTimeoutError(`${notReady.map((s) => `${s.namespace}/${s.name}`).join(', ')} not ready before the deadline`, {
        hint: 'see the diagnosis below; fix the cause or raise --timeout, then re-run',
        details,
      });
    }
    if (Date.now() - lastReport > 10_000) {
      lastReport = Date.now();
      opts.onWaiting?.(notReady);
    }
    await sleep(pollInterval(started), undefined, { signal: opts.signal }).catch(() => {
      throw new InterruptedError();
    });
  }
}

/** Often at first, when what is awaited is usually a moment away, then once a second. */
function pollInterval(started: number): number {
  return Date.now() - started < 5000 ? 250 : 1000;
}
