import { UsageError } from '../core/errors.js';
import { parseDuration } from '../core/options.js';
import type { Context } from '../record/context.js';
import { SERVICES, type ServiceName } from '../settings.js';
import { applyService, planService, requireDemo, scenarioState, toYaml, withFailingPay } from './scenario-apply.js';
import { measure, type ScenarioCommonSettings } from './scenario-run.js';
import { formatCheck, shareCheck, type Check, type ShareCheck } from './scenario-verify.js';
import { formatSummary, type TrafficSummary } from './traffic.js';
import { BREAKER_POLICY, FAILING_PAY, type ChaosState, type ScenarioState, type ServiceScenarios } from './scenarios.js';
import type { ScenarioIO } from './canary.js';

export const CHAOS_KINDS = ['delay', 'abort', 'timeout', 'retries', 'breaker', 'clear'] as const;
export type ChaosKind = (typeof CHAOS_KINDS)[number];

export interface ChaosSettings extends ScenarioCommonSettings {
  kind: ChaosKind;
  /** The services it applies to (clear without a service: every one). */
  services: ServiceName[];
  change: Partial<ChaosState>;
}

/** Istio reads durations as protobuf Durations ("3s", "500ms"); meshdemo accepts the forms Istio's docs use. */
function istioDuration(text: string | undefined, what: string, example: string): string {
  if (text === undefined) throw new UsageError(`chaos ${what} needs a duration`, { hint: `e.g. meshdemo chaos ${example}` });
  if (!/^\d+(\.\d+)?(ms|s|m|h)$/.test(text)) throw new UsageError(`"${text}" is not a duration`, { hint: `use e.g. 3s or 500ms: meshdemo chaos ${example}` });
  parseDuration(text, what);
  return text;
}

function percent(value: unknown): number {
  const n = Number(value ?? 100);
  if (!Number.isFinite(n) || n <= 0 || n > 100) throw new UsageError(`--percent "${value}" is not a percentage above 0 and at most 100`, { hint: 'e.g. --percent 50' });
  return n;
}

export function parseChaosArgs(kind: string, service: string | undefined, value: string | undefined, opts: Record<string, any>): Pick<ChaosSettings, 'kind' | 'services' | 'change'> {
  if (!(CHAOS_KINDS as readonly string[]).includes(kind)) throw new UsageError(`unknown chaos "${kind}"`, { hint: `choose one of ${CHAOS_KINDS.join(', ')}` });
  const k = kind as ChaosKind;
  if (k === 'breaker' && service === undefined) service = 'micro-pay';
  if (service === undefined && k === 'clear') return { kind: k, services: [...SERVICES], change: {} };
  if (!service || !(SERVICES as readonly string[]).includes(service)) throw new UsageError(`chaos ${k} needs a service: ${SERVICES.join(', ')}${service ? `, not "${service}"` : ''}`, { hint: 'e.g. meshdemo chaos delay micro-order 3s --percent 50' });
  const s = service as ServiceName;
  if (opts.percent !== undefined && k !== 'delay' && k !== 'abort') throw new UsageError(`--percent goes with delay or abort, not ${k}`, { hint: 'e.g. meshdemo chaos abort micro-order 500 --percent 50' });
  return { kind: k, services: [s], change: chaosChange(k, s, value, opts) };
}

/** What `chaos <kind> <service> [value]` changes in the service's chaos state. */
function chaosChange(k: ChaosKind, s: ServiceName, value: string | undefined, opts: Record<string, any>): Partial<ChaosState> {
  switch (k) {
    case 'delay':
      return { delay: { fixedDelay: istioDuration(value, 'delay', `delay ${s} 3s --percent 50`), percent: percent(opts.percent) } };
    case 'abort': {
      const status = Number(value);
      if (!Number.isInteger(status) || status < 200 || status > 599) throw new UsageError(`chaos abort needs an HTTP status from 200 to 599${value ? `, not "${value}"` : ''}`, { hint: `e.g. meshdemo chaos abort ${s} 500 --percent 50` });
      return { abort: { httpStatus: status, percent: percent(opts.percent) } };
    }
    case 'timeout':
      return { timeout: istioDuration(value, 'timeout', `timeout ${s} 1s`) };
    case 'retries': {
      const attempts = Number(value);
      if (!Number.isInteger(attempts) || attempts < 1 || attempts > 100) throw new UsageError(`chaos retries needs a number of attempts from 1 to 100${value ? `, not "${value}"` : ''}`, { hint: `e.g. meshdemo chaos retries ${s} 3` });
      const perTryTimeout = opts.perTryTimeout !== undefined ? istioDuration(opts.perTryTimeout, 'retries --per-try-timeout', `retries ${s} 3 --per-try-timeout 1s`) : undefined;
      return { retries: { attempts, ...(perTryTimeout ? { perTryTimeout } : {}), ...(opts.retryOn ? { retryOn: String(opts.retryOn) } : {}) } };
    }
    case 'breaker':
      if (s !== 'micro-pay') throw new UsageError(`the circuit breaker is the tutorial's, on micro-pay, not ${s}`, { hint: 'meshdemo chaos breaker micro-pay' });
      return { breaker: true };
    case 'clear':
      return {};
  }
}

function nextState(current: ServiceScenarios | undefined, kind: ChaosKind, change: Partial<ChaosState>): ServiceScenarios | undefined {
  if (kind === 'clear') return { ...current, chaos: undefined };
  return { ...current, chaos: { ...current?.chaos, ...change } };
}

/** `meshdemo chaos`: applies the fault (or shows it with --dry-run), then with --verify measures its effect. */
export async function runChaos(ctx: Context<ChaosSettings>, io: ScenarioIO): Promise<{ lines: string[]; checks: Check[] }> {
  const { kind, services, change } = ctx.settings;
  const kube = await ctx.kube();
  const namespace = ctx.options.namespace;
  await requireDemo(kube, namespace, services);
  const state = scenarioState(await ctx.inventory());
  const targets = kind === 'clear' ? services.filter((s) => state.services[s]?.chaos) : services;
  if (ctx.settings.dryRun) {
    for (const s of targets) io.print(toYaml(await planService(kube, namespace, s, nextState(state.services[s], kind, change))));
    return { lines: [], checks: [] };
  }
  await io.acquireLock();
  const verify = ctx.settings.verify && kind !== 'clear';
  const delayMs = change.delay ? parseDuration(change.delay.fixedDelay, 'delay') : undefined;
  // a delay (or retries) is told from the path as it was by a baseline measured before it is applied, under the same load
  const baseline = verify && (delayMs !== undefined || change.retries) ? await measure(quarter(ctx), { slowerThanMs: delayMs }) : undefined;
  for (const s of targets) {
    await applyService(ctx, s, nextState(state.services[s], kind, change), { deadline: Date.now() + ctx.options.timeoutMs, onChange: io.info });
    io.print(kind === 'clear' ? `chaos ${s}: cleared` : `chaos ${s}: ${describeChange(change)}`);
  }
  if (kind === 'clear' && !targets.length) io.print('chaos: nothing to clear');
  if (!verify) return { lines: [], checks: [] };
  return verifyChaos(ctx, io, baseline?.summary, delayMs);
}

/** --verify: orders through the gateway with the change applied, measured against what the change should do. */
async function verifyChaos(ctx: Context<ChaosSettings>, io: ScenarioIO, baseline: TrafficSummary | undefined, delayMs: number | undefined): Promise<{ lines: string[]; checks: Check[] }> {
  const { kind, services, change } = ctx.settings;
  const after = scenarioState(await ctx.inventory());
  const timeoutMs = change.timeout ? parseDuration(change.timeout, 'timeout') : undefined;
  const slowerThanMs = delayMs ?? (timeoutMs !== undefined ? timeoutMs + TIMEOUT_SLACK_MS : undefined);
  const clientTimeoutMs = Math.max(delayMs ?? 0, timeoutMs ?? 0) + 5000;
  const run = () => measure(ctx, { slowerThanMs, timeoutMs: clientTimeoutMs });
  const sidecars = kind === 'breaker' ? await readyPods(ctx, 'micro-order') : 0;
  const { url, summary } = kind === 'breaker' ? await withFailingPay(ctx, { deadline: Date.now() + ctx.options.timeoutMs, onChange: io.info }, run) : await run();
  const lines = [`verify: ${summary.sent} orders through ${url}`];
  const checks = chaosChecks(change, services[0], after, summary, baseline, timeoutMs, sidecars, lines);
  lines.push(...checks.map(formatCheck));
  for (const l of [...formatSummary(summary), ...lines]) io.print(l);
  return { lines, checks };
}

/** The checks of each part of the change; the baseline's figures go to `lines` beside them. */
function chaosChecks(
  change: Partial<ChaosState>,
  service: ServiceName,
  after: ScenarioState,
  summary: TrafficSummary,
  baseline: TrafficSummary | undefined,
  timeoutMs: number | undefined,
  sidecars: number,
  lines: string[],
): Check[] {
  const checks: Check[] = [];
  if (change.delay && baseline) {
    lines.push(`latency without the delay  p50 ${ms(baseline.latencyMs.p50)}  p99 ${ms(baseline.latencyMs.p99)}  (${baseline.sent} orders first); with it  p50 ${ms(summary.latencyMs.p50)}  p99 ${ms(summary.latencyMs.p99)}`);
    checks.push(delayedShare(change.delay.fixedDelay, change.delay.percent, { slower: baseline.slower, sent: baseline.sent }, { slower: summary.slower, sent: summary.sent }));
  }
  if (change.abort) checks.push(shareCheck(`failed (abort ${change.abort.httpStatus})`, change.abort.percent, summary.errors, summary.sent));
  if (change.timeout && timeoutMs !== undefined) checks.push(...timeoutChecks(change.timeout, timeoutMs, service, after, summary));
  if (change.retries && baseline) {
    lines.push(`failed without these retries  ${baseline.errors}/${baseline.sent} (${baseline.sent} orders first)`);
    checks.push(retriedShare(change.retries.attempts, after.services[service]?.chaos?.abort?.percent ?? 0, baseline, summary));
  }
  if (change.breaker) checks.push(...breakerChecks(summary, sidecars));
  return checks;
}

/** The baseline's load: a quarter of --requests (at least 20). */
function quarter<T extends ScenarioCommonSettings>(ctx: Context<T>): Context<T> {
  return { ...ctx, settings: { ...ctx.settings, requests: Math.max(20, Math.round(ctx.settings.requests / 4)) } };
}

async function readyPods(ctx: Context<unknown>, app: string): Promise<number> {
  const kube = await ctx.kube();
  const pods = await kube.list('v1', 'Pod', { namespace: ctx.options.namespace, labelSelector: `app=${app}` });
  return pods.filter((p) => !p.metadata.deletionTimestamp && p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True')).length;
}

/** What the path itself may add on top of a route timeout (the hops before the timed route, the client). */
export const TIMEOUT_SLACK_MS = 500;

/** The services each one calls, directly or not: a delay there is what a timeout on this one cuts short. */
const DOWNSTREAM: Record<ServiceName, ServiceName[]> = { 'micro-api': ['micro-order', 'micro-pay'], 'micro-order': ['micro-pay'], 'micro-pay': [] };

/** Orders that failed because a route timed out: the gateway's own 504, or micro-api's word that micro-order answered 504. */
function timedOut(s: TrafficSummary): number {
  const relayed = Object.entries(s.errorMessages).filter(([m]) => /answered HTTP 504\b/.test(m)).reduce((a, [, n]) => a + n, 0);
  return (s.errorKinds['HTTP 504'] ?? 0) + relayed;
}

/**
 * A route timeout: no order is answered much later than it (Envoy answers 504 "upstream request timeout" when it
 * expires, HTTPRoute.timeout), and with a delay on a service behind the route that is at least as long, the share
 * it delays times out (Istio's request-timeouts task: a delay on ratings, a timeout on reviews).
 */
export function timeoutChecks(timeout: string, timeoutMs: number, service: ServiceName, state: ScenarioState, s: Pick<TrafficSummary, 'slower' | 'sent' | 'errorKinds' | 'errorMessages'>): Check[] {
  const checks: Check[] = [{ label: `answered within ${timeout}`, expected: `none later than ${timeout} + ${TIMEOUT_SLACK_MS}ms`, measured: `${s.slower} later`, ok: s.slower === 0 }];
  const delays = DOWNSTREAM[service].map((d) => state.services[d]?.chaos?.delay).filter((d) => d && parseDuration(d.fixedDelay, 'delay') >= timeoutMs);
  if (delays.length) {
    const expected = 100 * (1 - delays.reduce((a, d) => a * (1 - d!.percent / 100), 1));
    checks.push(shareCheck(`timed out (${timeout})`, Math.round(expected * 10) / 10, timedOut(s as TrafficSummary), s.sent));
  }
  return checks;
}

/**
 * Retries: an order fails only when every attempt fails. With a share q failing before (the baseline), of which
 * a share a is the route's own fault abort (Envoy's fault filter answers before the router: never retried), the
 * rest r = (q − a)/(1 − a) fails per attempt, so 1 + attempts tries leave a + (1 − a)·r^(1+attempts) failing.
 */
export function retriedShare(attempts: number, abortPercent: number, baseline: { errors: number; sent: number }, measured: { errors: number; sent: number }): ShareCheck {
  const q = baseline.sent ? baseline.errors / baseline.sent : 0;
  const a = Math.min(abortPercent / 100, q);
  const r = a < 1 ? Math.min(1, Math.max(0, (q - a) / (1 - a))) : 0;
  const expected = 100 * (a + (1 - a) * r ** (1 + attempts));
  return shareCheck(`failed (retries ${attempts})`, Math.round(expected * 10) / 10, measured.errors, measured.sent);
}

/**
 * The circuit breaker with micro-pay-failing among micro-pay's endpoints. Ejected: the failing pod is reached (it
 * is an endpoint) but only until each micro-order sidecar has seen consecutive5xxErrors failures from it — at most
 * (maxConnections + http1MaxPendingRequests) requests a sidecar has under way or queued when it ejects it — and not
 * again within baseEjectionTime (3m). Overflow: orders beyond the connection pool fail at the sidecar, 503 with
 * flag UO ("reset reason: overflow").
 */
export function breakerChecks(s: Pick<TrafficSummary, 'errorMessages' | 'sent'>, sidecars: number): Check[] {
  const count = (re: RegExp) => Object.entries(s.errorMessages).filter(([m]) => re.test(m)).reduce((a, [, n]) => a + n, 0);
  const failing = count(new RegExp(`\\b${FAILING_PAY.name}-`));
  const overflow = count(/reset reason: overflow/);
  const pool = BREAKER_POLICY.connectionPool;
  const bound = Math.max(1, sidecars) * (pool.tcp.maxConnections + pool.http.http1MaxPendingRequests) * BREAKER_POLICY.outlierDetection.consecutive5xxErrors;
  return [
    { label: `${FAILING_PAY.name} ejected`, expected: `reached, then ejected: 1 to ${bound} of ${s.sent} orders fail there`, measured: `${failing}`, ok: failing >= 1 && failing <= bound },
    { label: 'overflow (UO)', expected: 'orders beyond maxConnections 1 + http1MaxPendingRequests 1 refused', measured: `${overflow}`, ok: overflow > 0 },
  ];
}


const ms = (n?: number) => (n === undefined ? '-' : `${Math.round(n)}ms`);

/**
 * The share of requests the delay hit. A delayed request takes at least the delay; one that was not delayed may
 * too (a slow path): with q the share of requests at least that slow without the delay (the baseline) and s with
 * it, s = p + (1 − p)·q, so p = (s − q) / (1 − q).
 */
export function delayedShare(fixedDelay: string, percent: number, baseline: { slower: number; sent: number }, measured: { slower: number; sent: number }): ShareCheck {
  const q = baseline.sent ? baseline.slower / baseline.sent : 0;
  const s = measured.sent ? measured.slower / measured.sent : 0;
  const p = q < 1 ? Math.max(0, (s - q) / (1 - q)) : s;
  return shareCheck(`delayed by ${fixedDelay}`, percent, Math.round(p * measured.sent), measured.sent);
}

function describeChange(c: Partial<ChaosState>): string {
  if (c.delay) return `delay ${c.delay.fixedDelay} for ${c.delay.percent}% of requests (VirtualService fault.delay)`;
  if (c.abort) return `abort with HTTP ${c.abort.httpStatus} for ${c.abort.percent}% of requests (VirtualService fault.abort)`;
  if (c.timeout) return `timeout ${c.timeout} (VirtualService http[].timeout)`;
  if (c.retries) return `retries ${c.retries.attempts} (VirtualService http[].retries)`;
  return 'circuit breaker: connectionPool maxConnections 1, outlierDetection consecutive5xxErrors 1 (DestinationRule trafficPolicy)';
}
