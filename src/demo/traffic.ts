import { randomBytes } from 'node:crypto';
import { ExternalCommandError } from '../core/errors.js';
import { traceLink } from './trace-link.js';

export { traceLink };

/** Steady load on the order endpoint, so Kiali's graph and Jaeger's traces fill (`meshdemo traffic`, `up --traffic`). */
export interface TrafficOptions {
  /** The order endpoint, e.g. http://127.0.0.1:31380/api/order/create */
  url: string;
  /** Requests per second (all workers together); undefined: as fast as `concurrency` allows. */
  rate?: number;
  durationMs?: number;
  requests?: number;
  concurrency: number;
  /** Per request: headers and body each within this. */
  timeoutMs?: number;
  /** Stops issuing; requests in flight finish (each bounded by timeoutMs). */
  signal?: AbortSignal;
  onProgress?: (snapshot: TrafficSnapshot) => void;
  /** How often onProgress is called. */
  progressEveryMs?: number;
  /** Count the answered requests (whatever their outcome) that took at least this long (a delay fault's check). */
  slowerThanMs?: number;
}

export interface TrafficSnapshot {
  sent: number;
  ok: number;
  errors: number;
  elapsedMs: number;
  p50?: number;
  p99?: number;
}

export interface TrafficSummary extends TrafficSnapshot {
  /** Stopped by the signal (Ctrl-C) rather than by --requests/--duration. */
  interrupted: boolean;
  successRate: number;
  latencyMs: { p50?: number; p95?: number; p99?: number };
  /** Successful requests per micro-order pod (x-order-served-by, `<pod>/<version>`), the tutorial's load-balancing observation. */
  servedBy: Record<string, number>;
  /** Successful requests per micro-pay pod (x-pay-served-by): the sidecar balances each gRPC request. */
  payServedBy: Record<string, number>;
  /** Successful requests per micro-api pod (micro-api's own x-served-by). */
  apiServedBy: Record<string, number>;
  /** Failures by kind: `code 9999`, `HTTP 503`, `ECONNREFUSED`, `timeout` … */
  errorKinds: Record<string, number>;
  /** Failures by the message micro-api answered (its `message`: what failed downstream), at most 50 different ones. */
  errorMessages: Record<string, number>;
  /** The trace of the slowest successful request, as micro-api returned it in x-b3-traceid. */
  traceId?: string;
  /** Answered requests that took at least `slowerThanMs`. */
  slower: number;
}

export function percentile(sorted: number[], p: number): number | undefined {
  if (!sorted.length) return undefined;
  const i = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[i];
}

const round = (n: number | undefined) => (n === undefined ? undefined : Math.round(n * 10) / 10);

/** B3 headers for a new sampled trace: the ingress gateway (Envoy) continues it, micro-api hands the id back. */
function newTrace(): Record<string, string> {
  return { 'x-b3-traceid': randomBytes(16).toString('hex'), 'x-b3-spanid': randomBytes(8).toString('hex'), 'x-b3-sampled': '1' };
}

function failureKind(err: unknown): string {
  const e = err as { code?: string; name?: string; cause?: { code?: string } };
  if (e?.code === 'UND_ERR_HEADERS_TIMEOUT' || e?.code === 'UND_ERR_BODY_TIMEOUT') return 'timeout';
  return e?.cause?.code ?? e?.code ?? e?.name ?? 'error';
}

/** What the orders came to so far, counted as each is answered or fails. */
class Tally {
  sent = 0;
  ok = 0;
  errors = 0;
  slower = 0;
  traceId: string | undefined;
  readonly latencies: number[] = [];
  readonly servedBy: Record<string, number> = {};
  readonly payServedBy: Record<string, number> = {};
  readonly apiServedBy: Record<string, number> = {};
  readonly errorKinds: Record<string, number> = {};
  readonly errorMessages: Record<string, number> = {};
  private slowest = -1;

  constructor(private readonly slowerThanMs: number | undefined) {}

  answered(statusCode: number, headers: Record<string, unknown>, body: { code?: unknown; message?: unknown } | undefined, ms: number): void {
    if (this.slowerThanMs !== undefined && ms >= this.slowerThanMs) this.slower++;
    if (statusCode !== 200 || body?.code !== 0) {
      this.errors++;
      this.countError(typeof body?.code === 'number' && body.code !== 0 ? `code ${body.code}` : `HTTP ${statusCode}`);
      const message = typeof body?.message === 'string' ? body.message : undefined;
      if (message !== undefined && (message in this.errorMessages || Object.keys(this.errorMessages).length < 50)) this.errorMessages[message] = (this.errorMessages[message] ?? 0) + 1;
      return;
    }
    this.ok++;
    this.latencies.push(ms);
    const count = (into: Record<string, number>, header: string) => {
      const pod = String(headers[header] ?? 'unknown');
      into[pod] = (into[pod] ?? 0) + 1;
    };
    count(this.servedBy, 'x-order-served-by');
    count(this.payServedBy, 'x-pay-served-by');
    count(this.apiServedBy, 'x-served-by');
    const id = headers['x-b3-traceid'];
    if (typeof id === 'string' && id && ms > this.slowest) {
      this.slowest = ms;
      this.traceId = id;
    }
  }

  summary(snapshot: TrafficSnapshot, interrupted: boolean): TrafficSummary {
    const sorted = [...this.latencies].sort((a, b) => a - b);
    return {
      ...snapshot,
      interrupted,
      successRate: this.sent ? this.ok / this.sent : 0,
      latencyMs: { p50: round(percentile(sorted, 50)), p95: round(percentile(sorted, 95)), p99: round(percentile(sorted, 99)) },
      servedBy: this.servedBy,
      payServedBy: this.payServedBy,
      apiServedBy: this.apiServedBy,
      errorKinds: this.errorKinds,
      errorMessages: this.errorMessages,
      traceId: this.traceId,
      slower: this.slower,
    };
  }

  failed(err: unknown): void {
    this.errors++;
    this.countError(failureKind(err));
  }

  private countError(kind: string): void {
    this.errorKinds[kind] = (this.errorKinds[kind] ?? 0) + 1;
  }
}

/** Waits until `at` (performance.now() time); false when the signal stopped it first (or had). */
function waitUntil(at: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    const ms = at - performance.now();
    if (ms <= 0) return resolve(signal?.aborted !== true);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(signal?.aborted !== true);
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** Runs until `requests` are answered, `durationMs` has passed, or the signal aborts. Uses one undici Pool. */
export async function runTraffic(opts: TrafficOptions): Promise<TrafficSummary> {
  const { Pool } = await import('undici');
  const target = new URL(opts.url);
  const pool = new Pool(target.origin, { connections: opts.concurrency, pipelining: 1 });
  const timeoutMs = opts.timeoutMs ?? 5000;
  const started = performance.now();
  const deadline = opts.durationMs !== undefined ? started + opts.durationMs : Number.POSITIVE_INFINITY;
  const tally = new Tally(opts.slowerThanMs);
  let issued = 0;
  const stopped = () => opts.signal?.aborted === true;

  const snapshot = (): TrafficSnapshot => {
    const sorted = [...tally.latencies].sort((a, b) => a - b);
    return { sent: tally.sent, ok: tally.ok, errors: tally.errors, elapsedMs: Math.round(performance.now() - started), p50: round(percentile(sorted, 50)), p99: round(percentile(sorted, 99)) };
  };

  const one = async (i: number) => {
    const t0 = performance.now();
    tally.sent++;
    try {
      const res = await pool.request({
        path: target.pathname + target.search,
        method: 'POST',
        headers: { 'content-type': 'application/json', ...newTrace() },
        body: JSON.stringify({ businessId: `meshdemo-traffic-${i}`, amount: 100, channel: 1 }),
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
      });
      const body = (await res.body.json().catch(() => undefined)) as { code?: unknown; message?: unknown } | undefined;
      tally.answered(res.statusCode, res.headers, body, performance.now() - t0);
    } catch (err) {
      tally.failed(err);
    }
  };

  const worker = async () => {
    for (;;) {
      if (stopped() || performance.now() >= deadline) return;
      if (opts.requests !== undefined && issued >= opts.requests) return;
      const i = issued++;
      const due = opts.rate ? started + (i * 1000) / opts.rate : 0;
      // a request due after --duration is never sent; a stop (Ctrl-C) while waiting sends nothing more
      if (due >= deadline || (opts.rate && !(await waitUntil(due, opts.signal)))) return;
      await one(i);
    }
  };

  const ticker = opts.onProgress ? setInterval(() => opts.onProgress!(snapshot()), opts.progressEveryMs ?? 1000) : undefined;
  try {
    await Promise.all(Array.from({ length: opts.concurrency }, worker));
  } finally {
    if (ticker) clearInterval(ticker);
    await pool.close().catch(() => {});
  }
  return tally.summary(snapshot(), stopped());
}

export function formatSnapshot(s: TrafficSnapshot): string {
  const ms = (n?: number) => (n === undefined ? '-' : `${Math.round(n)}ms`);
  return `sent ${s.sent}  ok ${s.ok}  errors ${s.errors}  p50 ${ms(s.p50)}  p99 ${ms(s.p99)}`;
}

/** The summary's lines: counts, success rate, latency, the share per micro-order pod, one trace and its link. */
export function formatSummary(s: TrafficSummary, tracingUrl?: string): string[] {
  const ms = (n?: number) => (n === undefined ? '-' : `${Math.round(n)}ms`);
  const lines = [
    `${s.interrupted ? 'stopped' : 'done'} after ${(s.elapsedMs / 1000).toFixed(1)}s: ${s.sent} sent, ${s.ok} ok, ${s.errors} failed — success rate ${(s.successRate * 100).toFixed(1)}%`,
    `latency     p50 ${ms(s.latencyMs.p50)}  p95 ${ms(s.latencyMs.p95)}  p99 ${ms(s.latencyMs.p99)}`,
  ];
  if (s.errors) lines.push(`failures    ${Object.entries(s.errorKinds).map(([k, v]) => `${k} ×${v}`).join(', ')}`);
  for (const [service, counts] of [['micro-order', s.servedBy], ['micro-pay', s.payServedBy]] as const) {
    const pods = Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : 1));
    if (!pods.length) continue;
    lines.push(`${service.padEnd(11)} ${pods.length} pod(s) answered:`);
    for (const [pod, n] of pods) lines.push(`  ${pod.padEnd(40)} ${String(n).padStart(6)}  ${((n / s.ok) * 100).toFixed(1)}%`);
  }
  const versions = versionShares(s);
  if (versions) lines.push(`versions    ${versions}`);
  if (s.traceId) {
    lines.push(`trace       ${s.traceId} (the slowest successful request)`);
    lines.push(tracingUrl ? `jaeger      ${traceLink(tracingUrl, s.traceId)}` : 'jaeger      no tracing URL known: run meshdemo expose tracing, or pass --tracing-url');
  } else if (s.ok) {
    lines.push('trace       micro-api returned no x-b3-traceid header');
  }
  return lines;
}

/** The version in a served-by value, `<pod>/<version>` (templates/services/common/runtime.mjs servedBy). */
export function versionOf(servedBy: string): string {
  return servedBy.includes('/') ? servedBy.slice(servedBy.lastIndexOf('/') + 1) : 'unknown';
}

/** The share per version of each service that answered in more than one version (a canary), e.g. `micro-order v1 80.0% v2 20.0%`. */
export function versionShares(s: Pick<TrafficSummary, 'apiServedBy' | 'servedBy' | 'payServedBy'>): string | undefined {
  const parts: string[] = [];
  for (const [service, byPod] of [['micro-api', s.apiServedBy], ['micro-order', s.servedBy], ['micro-pay', s.payServedBy]] as const) {
    const counts: Record<string, number> = {};
    for (const [pod, n] of Object.entries(byPod)) counts[versionOf(pod)] = (counts[versionOf(pod)] ?? 0) + n;
    const total = Object.values(counts).reduce((a, b) => a + b, 0);
    if (Object.keys(counts).length < 2 || !total) continue;
    parts.push(`${service} ${Object.entries(counts).sort(([a], [b]) => (a < b ? -1 : 1)).map(([v, n]) => `${v} ${((n / total) * 100).toFixed(1)}%`).join(' ')}`);
  }
  return parts.length ? parts.join('; ') : undefined;
}

/** `traffic` fails (exit 6) only when nothing got through. */
export function checkTraffic(s: TrafficSummary, url: string): void {
  if (s.sent > 0 && s.ok === 0) {
    throw new ExternalCommandError(`no request succeeded through ${url}`, {
      details: Object.entries(s.errorKinds).map(([k, v]) => `${k} ×${v}`),
      hint: 'check meshdemo status and the ingress gateway',
    });
  }
}
