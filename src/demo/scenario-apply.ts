import { randomBytes } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import yaml from 'js-yaml';
import { InterruptedError, PreflightError, ReadinessTimeoutError } from '../core/errors.js';
import type { Context } from '../record/context.js';
import type { Inventory } from '../record/inventory.js';
import { describeRef, refOf, type KubeClient, type KubeObject, type ObjectRef } from '../kube/client.js';
import { waitForDeployments } from '../kube/readiness.js';
import { DEPLOYMENT_OF, VIRTUAL_SERVICE_NAME } from './app-manifests.js';
import type { ServiceName } from '../settings.js';
import {
  CANARY_VERSION,
  FAILING_PAY,
  NETWORKING,
  PLAINTEXT_PROBE,
  PROBE_EXIT,
  SCENARIO_STEP,
  SECURITY,
  isEmpty,
  renderCanaryDeployment,
  renderDestinationRule,
  renderFailingPayDeployment,
  renderPeerAuthentication,
  renderPlaintextProbe,
  renderVirtualService,
  subsetsOf,
  type ProbeOutcome,
  type ScenarioState,
  type ServiceScenarios,
} from './scenarios.js';

/** The active scenarios, as the record holds them. */
export function scenarioState(inventory: Inventory): ScenarioState {
  const inputs = inventory.data.steps[SCENARIO_STEP]?.inputs as ScenarioState | undefined;
  return { services: { ...inputs?.services }, ...(inputs?.mtls ? { mtls: inputs.mtls } : {}) };
}

/**
 * A scenario needs the demo: its Deployment, the gateway's VirtualService (up's app-deploy) and Istio's networking
 * and security kinds. Otherwise it is refused (exit 3) before anything changes, with the way on.
 */
export async function requireDemo(kube: KubeClient, namespace: string, services: ServiceName[]): Promise<void> {
  const missing: string[] = [];
  for (const [apiVersion, kind] of [[NETWORKING, 'VirtualService'], [NETWORKING, 'DestinationRule'], [SECURITY, 'PeerAuthentication']]) {
    if (!(await kube.serves(apiVersion, kind))) missing.push(`the ${kind} kind (${apiVersion}: is Istio installed?)`);
  }
  if (!missing.length) {
    const vs = await kube.get({ apiVersion: NETWORKING, kind: 'VirtualService', namespace, name: VIRTUAL_SERVICE_NAME });
    if (!vs) missing.push(`VirtualService ${namespace}/${VIRTUAL_SERVICE_NAME}`);
  }
  for (const s of services) {
    if (!(await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: DEPLOYMENT_OF[s] }))) missing.push(`Deployment ${namespace}/${DEPLOYMENT_OF[s]}`);
  }
  if (missing.length) {
    throw new PreflightError(`the demo is not deployed in namespace ${namespace} (missing ${missing.join(', ')})`, {
      hint: `run meshdemo up first${namespace === 'default' ? '' : ` --namespace ${namespace}`}, or pass the --namespace the demo runs in`,
    });
  }
}

export interface ScenarioChange {
  /** The YAML of every object the new state applies (what --dry-run shows). */
  applied: KubeObject[];
  /** Objects the new state no longer needs, deleted. */
  deleted: ObjectRef[];
}

const vsRef = (namespace: string, service: ServiceName): ObjectRef => ({ apiVersion: NETWORKING, kind: 'VirtualService', namespace, name: service === 'micro-api' ? VIRTUAL_SERVICE_NAME : service });
const drRef = (namespace: string, service: ServiceName): ObjectRef => ({ apiVersion: NETWORKING, kind: 'DestinationRule', namespace, name: service });
const canaryRef = (namespace: string, service: ServiceName): ObjectRef => ({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: `${service}-${CANARY_VERSION}` });
const failingPayRef = (namespace: string): ObjectRef => ({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: FAILING_PAY.name });
const paRef = (namespace: string): ObjectRef => ({ apiVersion: SECURITY, kind: 'PeerAuthentication', namespace, name: 'default' });

/** What the new state applies for one service, in order, without touching the cluster (for --dry-run too). */
export async function planService(kube: KubeClient, namespace: string, service: ServiceName, next: ServiceScenarios | undefined): Promise<KubeObject[]> {
  const out: KubeObject[] = [];
  if (next?.canary) {
    const v1 = await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: DEPLOYMENT_OF[service] });
    if (v1) out.push(renderCanaryDeployment(v1, service));
  }
  const dr = renderDestinationRule(namespace, service, subsetsOf(next), Boolean(next?.chaos?.breaker));
  if (dr) out.push(dr);
  const vs = renderVirtualService(namespace, service, next);
  if (vs) out.push(vs);
  return out;
}

export function toYaml(objects: KubeObject[]): string {
  return objects.map((o) => yaml.dump(o, { lineWidth: 120, noRefs: true })).join('---\n');
}

/**
 * Applies and deletes the scenarios' objects, keeping the record true: an object is recorded before it is created
 * (a run killed between the two leaves a record `down` uses) and forgotten once it is deleted.
 */
function objectChanges(ctx: Context<unknown>, kube: KubeClient, inventory: Inventory, onChange: (line: string) => void) {
  const applied: KubeObject[] = [];
  const deleted: ObjectRef[] = [];
  const apply = async (obj: KubeObject) => {
    const ref = refOf(obj);
    const existed = await kube.get(ref);
    // up's own objects (the gateway's VirtualService) stay recorded as up's: down deletes them either way
    if (!existed) await inventory.recordCreated(SCENARIO_STEP, ref);
    await kube.apply(obj, { signal: ctx.signal });
    applied.push(obj);
    onChange(`${existed ? 'configured' : 'created'} ${describeRef(ref)}`);
  };
  const remove = async (ref: ObjectRef) => {
    if (await kube.delete(ref)) {
      deleted.push(ref);
      onChange(`deleted ${describeRef(ref)}`);
    }
    if (inventory.data.created.some((c) => c.step === SCENARIO_STEP && c.kind === ref.kind && c.name === ref.name && c.namespace === ref.namespace)) await inventory.forgetCreated(ref);
  };
  return { apply, remove, applied, deleted };
}

/**
 * Moves one service from its recorded scenarios to `next`, make-before-break as Istio's best practices ask
 * (istio.io/v1.8/docs/ops/best-practices/traffic-management: "Avoid 503 errors while reconfiguring service
 * routes" — a route may name a subset only once a DestinationRule defines it): the v2 Deployment ready first;
 * then the DestinationRule with the old and the new subsets; then the VirtualService; then the DestinationRule
 * as the new state wants it (or none); then the v2 Deployment goes when nothing routes to it.
 *
 * Every object is recorded before it is created (a run killed between the two leaves a record `down` uses, and
 * down tolerates what is already gone), and the new state is recorded before the first change.
 */
export async function applyService(
  ctx: Context<unknown>,
  service: ServiceName,
  next: ServiceScenarios | undefined,
  opts: { deadline: number; onChange: (line: string) => void },
): Promise<ScenarioChange> {
  const kube = await ctx.kube();
  const inventory = await ctx.inventory();
  const namespace = ctx.options.namespace;
  const state = scenarioState(inventory);
  if (isEmpty(next)) delete state.services[service];
  else state.services[service] = next;
  await inventory.completeStep(SCENARIO_STEP, state as unknown as Record<string, unknown>);

  const { apply, remove, applied, deleted } = objectChanges(ctx, kube, inventory, opts.onChange);

  const planned = await planService(kube, namespace, service, next);
  const deployment = planned.find((o) => o.kind === 'Deployment');
  const finalRule = planned.find((o) => o.kind === 'DestinationRule');
  const route = planned.find((o) => o.kind === 'VirtualService');
  if (deployment) {
    await apply(deployment);
    await waitForDeployments(kube, [{ namespace, name: deployment.metadata.name }], { deadline: opts.deadline, signal: ctx.signal, onWaiting: (n) => opts.onChange(`waiting for ${n.map((s) => `${s.name} ${s.available}/${s.desired}`).join(', ')}`) });
  }
  const live = await kube.get(drRef(namespace, service));
  const liveSubsets: string[] = (live?.spec?.subsets ?? []).map((s: any) => s.name);
  const union = [...new Set([...liveSubsets, ...subsetsOf(next)])].sort();
  const bridge = renderDestinationRule(namespace, service, union, Boolean(next?.chaos?.breaker));
  if (bridge && union.length > subsetsOf(next).length) await apply(bridge);
  else if (finalRule) await apply(finalRule);
  if (route) await apply(route);
  else await remove(vsRef(namespace, service));
  if (finalRule) {
    if (bridge && union.length > subsetsOf(next).length) await apply(finalRule);
  } else await remove(drRef(namespace, service));
  if (!deployment) await remove(canaryRef(namespace, service));
  // the breaker's failing pod lives only while --verify measures; one left by a killed run goes with the breaker
  if (service === 'micro-pay' && !next?.chaos?.breaker) await remove(failingPayRef(namespace));
  return { applied, deleted };
}

/**
 * Runs `measure` while micro-pay-failing (one pod failing every payment) is deployed and ready, and deletes it
 * afterwards, also when the measurement fails. It is recorded before it is created: after a kill, `chaos clear`
 * and `down` remove it.
 */
export async function withFailingPay<T>(ctx: Context<unknown>, opts: { deadline: number; onChange: (line: string) => void }, measure: () => Promise<T>): Promise<T> {
  const kube = await ctx.kube();
  const inventory = await ctx.inventory();
  const namespace = ctx.options.namespace;
  const { apply, remove } = objectChanges(ctx, kube, inventory, opts.onChange);
  const v1 = await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: DEPLOYMENT_OF['micro-pay'] });
  if (!v1) throw new PreflightError(`Deployment ${namespace}/${DEPLOYMENT_OF['micro-pay']} is gone`, { hint: 'run meshdemo up again' });
  try {
    await apply(renderFailingPayDeployment(v1));
    await waitForDeployments(kube, [{ namespace, name: FAILING_PAY.name }], { deadline: opts.deadline, signal: ctx.signal, onWaiting: (n) => opts.onChange(`waiting for ${n.map((s) => `${s.name} ${s.available}/${s.desired}`).join(', ')}`) });
    return await measure();
  } finally {
    await remove(failingPayRef(namespace));
  }
}

/** PeerAuthentication `default` in the app namespace; one there that meshdemo did not create is left alone (exit 3). */
export async function applyMtls(ctx: Context<unknown>, mode: 'STRICT' | 'PERMISSIVE' | undefined, onChange: (line: string) => void): Promise<ScenarioChange> {
  const kube = await ctx.kube();
  const inventory = await ctx.inventory();
  const namespace = ctx.options.namespace;
  const ref = paRef(namespace);
  const live = await kube.get(ref);
  if (live && !inventory.isCreated(ref)) {
    throw new PreflightError(`PeerAuthentication ${namespace}/default exists and meshdemo did not create it`, {
      hint: `meshdemo leaves your own policy alone: change it with kubectl edit peerauthentication -n ${namespace} default, or delete it first`,
    });
  }
  const state = scenarioState(inventory);
  if (mode) state.mtls = mode;
  else delete state.mtls;
  await inventory.completeStep(SCENARIO_STEP, state as unknown as Record<string, unknown>);
  if (!mode) {
    const gone = await kube.delete(ref);
    await inventory.forgetCreated(ref);
    if (gone) onChange(`deleted ${describeRef(ref)}`);
    return { applied: [], deleted: gone ? [ref] : [] };
  }
  const obj = renderPeerAuthentication(namespace, mode);
  if (!live) await inventory.recordCreated(SCENARIO_STEP, ref);
  await kube.apply(obj, { signal: ctx.signal });
  onChange(`${live ? 'configured' : 'created'} ${describeRef(ref)} (mtls.mode ${mode})`);
  return { applied: [obj], deleted: [] };
}

/**
 * Runs the plaintext probe pod (scenarios.ts renderPlaintextProbe) to its end and reads how its call went: the exit
 * code and the termination message. Recorded before it is created and deleted afterwards, also when waiting fails:
 * after a kill, `down` removes it.
 */
export async function runPlaintextProbe(
  ctx: Context<unknown>,
  expect: ProbeOutcome,
  opts: { deadline: number; onChange: (line: string) => void },
): Promise<{ outcome: ProbeOutcome; message: string }> {
  const kube = await ctx.kube();
  const inventory = await ctx.inventory();
  const namespace = ctx.options.namespace;
  const api = await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: DEPLOYMENT_OF['micro-api'] });
  if (!api) throw new PreflightError(`Deployment ${namespace}/${DEPLOYMENT_OF['micro-api']} is gone`, { hint: 'run meshdemo up again' });
  const pod = renderPlaintextProbe(api, `${PLAINTEXT_PROBE.app}-${randomBytes(3).toString('hex')}`, expect);
  const ref = refOf(pod);
  await inventory.recordCreated(SCENARIO_STEP, ref);
  try {
    await kube.create(pod, { signal: ctx.signal });
    opts.onChange(`created ${describeRef(ref)} (no sidecar), calling micro-api in plaintext`);
    for (;;) {
      const live = await kube.get(ref);
      const ended = live?.status?.containerStatuses?.find((c: any) => c.name === PLAINTEXT_PROBE.container)?.state?.terminated;
      if (ended) return probeResult(ended);
      if (Date.now() > opts.deadline) throw probeTimeout(live, namespace, pod.metadata.name);
      if (ctx.signal?.aborted) throw new InterruptedError('interrupted while the plaintext probe ran');
      await sleep(500);
    }
  } finally {
    if (await kube.delete(ref)) opts.onChange(`deleted ${describeRef(ref)}`);
    await inventory.forgetCreated(ref);
  }
}

function probeResult(ended: { exitCode: number; message?: string }): { outcome: ProbeOutcome; message: string } {
  const outcome = (Object.keys(PROBE_EXIT) as ProbeOutcome[]).find((k) => PROBE_EXIT[k] === ended.exitCode) ?? 'failed';
  return { outcome, message: String(ended.message ?? `exit code ${ended.exitCode}`).trim() };
}

function probeTimeout(live: KubeObject | undefined, namespace: string, name: string): ReadinessTimeoutError {
  const waiting = live?.status?.containerStatuses?.[0]?.state?.waiting;
  return new ReadinessTimeoutError(`the plaintext probe pod ${namespace}/${name} did not finish in time (${waiting ? waiting.reason : `phase ${live?.status?.phase ?? 'unknown'}`})`, {
    hint: `see kubectl describe pod -n ${namespace} ${name} while it runs, or pass a longer --timeout`,
  });
}
