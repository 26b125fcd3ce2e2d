// Stands in for Envoy (no Envoy runs here): the ingress gateway, or a sidecar's outbound route to one Service,
// routing each request by the VirtualServices and DestinationRules really applied to the test's API server — the
// objects meshdemo wrote, read back continuously (one list of each every ~50 ms, as Envoy receives istiod's pushes
// shortly after a change; `synced()` waits for a read that started after the call).
// It extends test/support/round-robin.ts (a Service with no VirtualService is still balanced in turn over its
// endpoints) with Istio 1.8's routing semantics, each cited where it is implemented:
//   istio/api branch release-1.8, networking/v1alpha3/virtual_service.proto (VS) and destination_rule.proto (DR);
//   Envoy 1.16 (Istio 1.8's proxy), source/common/router/router.cc and source/extensions/filters/http/fault.
// DestinationRule.trafficPolicy (the circuit breaker) as Istio 1.8 turns it into Envoy's cluster config
// (istio/istio 1.8.4 pilot/pkg/networking/core/v1alpha3/cluster.go applyConnectionPool, applyOutlierDetection):
// outlier detection (Envoy source/common/upstream/outlier_detection_impl.cc) ejects a host after
// `consecutive5xxErrors` 5xx answers in a row, for baseEjectionTime × its ejections, while fewer than
// maxEjectionPercent of the hosts are ejected; the connection pool's limits (Envoy's circuit breakers,
// docs intro/arch_overview/upstream/circuit_breaking) refuse a request beyond maxConnections busy and
// http1MaxPendingRequests queued with 503 and flag UO ("upstream connect error or disconnect/reset before headers.
// reset reason: overflow"). Each router is one Envoy: its breaker and outlier state are its own, as each sidecar's.
// startGrpcMeshRouter is the same for a gRPC (HTTP/2) Service port, as micro-order's sidecar routes doPay to micro-pay.
// Strictness: a route naming a subset that no DestinationRule defines is a 503 with response flag NR, as Envoy's
// router answers a route whose cluster does not exist (router.cc: no cluster → NoRouteFound, 503); no matching
// route is a 404 NR; no endpoint is a 503 UH "no healthy upstream". Every answer goes to `log` with its flags,
// as Envoy's access log has %RESPONSE_FLAGS%.
// A plain HTTP/1.1 forwarder on 127.0.0.1; to an endpoint whose URL is https:// (a pod with a sidecar: its
// startInboundSidecar) it speaks Istio's mutual TLS with the router's `identity`, as auto mTLS does.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import http2 from 'node:http2';
import https from 'node:https';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import tls from 'node:tls';

export interface Endpoint {
  /** The pod's labels (app, version): a DR subset selects endpoints by them (DR Subset.labels). */
  labels: Record<string, string>;
  /** Where that "pod" listens, e.g. http://127.0.0.1:40123 */
  url: string;
}

export interface AccessLogEntry {
  path: string;
  status: number;
  /** Envoy's response flags: '-' for none, FI fault abort, DI delay injected, UT upstream timeout, NR no route/cluster, UH no healthy upstream, URX retries exhausted, UO overflow (circuit breaker). */
  flags: string;
  /** gRPC routers: the grpc-status of the answer (headers or trailers), as %GRPC_STATUS% would show it. */
  grpcStatus?: number;
  upstream?: string;
  subset?: string;
  attempts: number;
}

export interface MeshRouterOptions {
  /** GET against the test's API server, returning the parsed body (test/support/control-plane.ts kubeJson). */
  get: (path: string) => Promise<{ status: number; body: any }>;
  namespace: string;
  /** The Service this router routes to (its short name, as meshdemo's objects name hosts). */
  host: string;
  /** Set for the ingress gateway: the VirtualServices bound to this Gateway route (VS.gateways); else the mesh's. */
  gateway?: string;
  /** The Service's endpoints (every Ready pod), asked per request: pods come and go with meshdemo's Deployments. */
  endpoints: Endpoint[] | (() => Promise<Endpoint[]>);
  port?: number;
  /** Randomness for weights and percentages (Envoy draws per request): Math.random, or seededRandom's. */
  random?: () => number;
  /** The config read shared with other routers of the same host (one reader for several sidecars); closing the router leaves it running. */
  watch?: MeshWatch;
  /** The proxy's workload certificate, for endpoints with a sidecar (https:// URLs). */
  identity?: MeshIdentity;
}

export interface MeshRouter {
  url: string;
  log: AccessLogEntry[];
  /** Resolves once the router has read the API server afresh (after this call). */
  synced(): Promise<void>;
  close(): Promise<void>;
}

function durationMs(d: string | undefined): number | undefined {
  if (!d) return undefined;
  const m = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(d);
  if (!m) throw new Error(`stand-in: unsupported duration ${d}`);
  return Number(m[1]) * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[m[2] as 'ms'];
}

/** VS StringMatch: exact, prefix or regex (RE2, matched whole). */
function stringMatches(m: any, value: string | undefined): boolean {
  if (value === undefined) return false;
  if (m.exact !== undefined) return value === m.exact;
  if (m.prefix !== undefined) return value.startsWith(m.prefix);
  if (m.regex !== undefined) return new RegExp(`^(?:${m.regex})$`).test(value);
  return true;
}

/**
 * VS HTTPRoute.match: the rule applies when ANY HTTPMatchRequest matches; within one, ALL conditions must hold
 * (uri, headers — header names lower-case, as HTTPMatchRequest.headers requires). No match list: every request.
 */
function ruleMatches(rule: any, req: { url?: string; headers: Record<string, unknown> }): boolean {
  const matches: any[] = rule.match ?? [];
  if (!matches.length) return true;
  const path = (req.url ?? '/').split('?')[0];
  return matches.some((m) => (!m.uri || stringMatches(m.uri, path)) && Object.entries(m.headers ?? {}).every(([name, sm]) => stringMatches(sm, req.headers[name] as string | undefined)));
}

/** VS hosts: a short name matches the Service in the VS's namespace; "*" matches every host. */
const hostMatches = (hosts: string[], host: string, namespace: string) => hosts.some((h) => h === '*' || h === host || h === `${host}.${namespace}` || h === `${host}.${namespace}.svc.cluster.local`);

/** Envoy's defaults for what a DestinationRule's outlierDetection leaves unset (envoy api cluster/v3/outlier_detection.proto). */
const OUTLIER_DEFAULTS = { consecutive5xx: 5, intervalMs: 10_000, baseEjectionMs: 30_000, maxEjectionPercent: 10 };

interface ClusterPolicy {
  outlier?: { consecutive5xx: number; intervalMs: number; baseEjectionMs: number; maxEjectionPercent: number };
  /** Requests at once (busy connections) and queued; undefined: Istio's defaults (2^32−1, cluster.go getDefaultCircuitBreakerThresholds). */
  maxActive?: number;
  maxPending?: number;
}

/**
 * The cluster config Istio 1.8 builds from DestinationRule.trafficPolicy (cluster.go applyConnectionPool,
 * applyOutlierDetection). consecutive5xxErrors sets consecutive_5xx, enforced at 100% when above 0 (0 turns it off);
 * success-rate ejection is always off. tcp.maxConnections → max_connections; http.http1MaxPendingRequests →
 * max_pending_requests; http.maxRequestsPerConnection 1 makes every request take a connection of its own, so
 * max_connections bounds the requests at once; with HTTP/2 and no such limit the requests share one connection
 * and only http2MaxRequests (max_requests) bounds them.
 */
function clusterPolicy(dr: any, protocol: 'http' | 'grpc'): ClusterPolicy {
  const tp = dr?.spec?.trafficPolicy;
  const out: ClusterPolicy = {};
  const od = tp?.outlierDetection;
  if (od) {
    const c = od.consecutive5xxErrors ?? OUTLIER_DEFAULTS.consecutive5xx;
    if (c > 0) {
      out.outlier = {
        consecutive5xx: c,
        intervalMs: durationMs(od.interval) ?? OUTLIER_DEFAULTS.intervalMs,
        baseEjectionMs: durationMs(od.baseEjectionTime) ?? OUTLIER_DEFAULTS.baseEjectionMs,
        maxEjectionPercent: od.maxEjectionPercent > 0 ? od.maxEjectionPercent : OUTLIER_DEFAULTS.maxEjectionPercent,
      };
    }
  }
  const cp = tp?.connectionPool;
  if (cp) {
    const maxConnections = cp.tcp?.maxConnections > 0 ? cp.tcp.maxConnections : undefined;
    const oneEach = cp.http?.maxRequestsPerConnection === 1;
    const h2Max = cp.http?.http2MaxRequests > 0 ? cp.http.http2MaxRequests : undefined;
    if (protocol === 'http') out.maxActive = maxConnections; // HTTP/1.1: one request per connection at a time
    else out.maxActive = oneEach ? Math.min(maxConnections ?? Infinity, h2Max ?? Infinity) : h2Max;
    if (out.maxActive === Infinity) out.maxActive = undefined;
    out.maxPending = cp.http?.http1MaxPendingRequests > 0 ? cp.http.http1MaxPendingRequests : undefined;
  }
  return out;
}

/** What one Envoy knows of one cluster: round-robin turn, each host's outlier state, the requests at once and queued. */
class EnvoyCluster {
  private turn = 0;
  private readonly hosts = new Map<string, { consecutive5xx: number; ejectedAt?: number; ejections: number }>();
  private active = 0;
  private readonly queue: Array<() => void> = [];

  constructor(private policy: ClusterPolicy) {}

  update(policy: ClusterPolicy): void {
    this.policy = policy;
    // outlier detection removed: every host is back (Envoy builds the cluster without a detector)
    if (!policy.outlier) for (const h of this.hosts.values()) h.ejectedAt = undefined;
  }

  private host(url: string) {
    let h = this.hosts.get(url);
    if (!h) this.hosts.set(url, (h = { consecutive5xx: 0, ejections: 0 }));
    return h;
  }

  /**
   * The hosts not ejected. An ejected host comes back once baseEjectionTime × its ejections have passed, checked
   * on the interval timer (outlier_detection_impl.cc DetectorImpl::onIntervalTimer, checkHostForUneject). Istio sets
   * healthy_panic_threshold to minHealthPercent (0 by default), so with every host ejected none is used: 503 UH.
   */
  healthy(endpoints: Endpoint[], now = Date.now()): Endpoint[] {
    const o = this.policy.outlier;
    return endpoints.filter((e) => {
      const h = this.hosts.get(e.url);
      if (!h?.ejectedAt || !o) return true;
      const due = h.ejectedAt + o.baseEjectionMs * h.ejections;
      const tick = h.ejectedAt + Math.ceil((due - h.ejectedAt) / o.intervalMs) * o.intervalMs;
      if (now < tick) return false;
      h.ejectedAt = undefined;
      return true;
    });
  }

  /** Envoy's ROUND_ROBIN (Istio 1.8's default simple load balancer) over the given hosts, skipping `avoid` (retry_host_predicate previous_hosts) when it can. */
  pick(endpoints: Endpoint[], avoid?: Set<string>): Endpoint {
    const candidates = avoid && endpoints.some((e) => !avoid.has(e.url)) ? endpoints.filter((e) => !avoid.has(e.url)) : endpoints;
    return candidates[this.turn++ % candidates.length];
  }

  /**
   * The answer's code as the outlier detector takes it (router.cc: the HTTP status, or for gRPC the grpc-status of
   * the response headers mapped to HTTP; a reset or connect failure counts as 503). A 5xx adds to the host's run of
   * failures; reaching consecutive5xxErrors ejects it if fewer than maxEjectionPercent of `hostCount` are ejected
   * (DetectorImpl::ejectHost); anything else ends the run.
   */
  report(url: string, httpCode: number, hostCount: number, now = Date.now()): void {
    const o = this.policy.outlier;
    if (!o) return;
    const h = this.host(url);
    if (httpCode < 500) {
      h.consecutive5xx = 0;
      return;
    }
    h.consecutive5xx++;
    if (h.ejectedAt !== undefined || h.consecutive5xx < o.consecutive5xx) return;
    const ejected = [...this.hosts.values()].filter((x) => x.ejectedAt !== undefined).length;
    h.consecutive5xx = 0;
    if ((100 * ejected) / Math.max(hostCount, 1) < o.maxEjectionPercent) {
      h.ejectedAt = now;
      h.ejections++;
    }
  }

  /**
   * A request's turn under the circuit breakers: at once when fewer than maxActive are busy, queued while fewer than
   * maxPending wait, else refused ('overflow': Envoy's upstream_rq_pending_overflow, 503 with flag UO).
   */
  async admit(): Promise<'go' | 'overflow'> {
    if (this.active < (this.policy.maxActive ?? Infinity)) {
      this.active++;
      return 'go';
    }
    if (this.queue.length >= (this.policy.maxPending ?? Infinity)) return 'overflow';
    await new Promise<void>((resolve) => this.queue.push(resolve));
    return 'go';
  }

  release(): void {
    const next = this.queue.shift();
    if (next) next(); // the freed connection goes to the oldest waiting request
    else this.active--;
  }
}

/** The mesh config one Envoy has: the VirtualServices, DestinationRules and endpoints, read afresh every ~50 ms. */
export async function watchMesh(opts: Pick<MeshRouterOptions, 'get' | 'namespace' | 'host' | 'gateway' | 'endpoints' | 'random'>) {
  const random = opts.random ?? Math.random;
  const list = async (kind: string) => {
    const r = await opts.get(`/apis/networking.istio.io/v1alpha3/namespaces/${opts.namespace}/${kind}`);
    return r.status === 200 ? (r.body.items as any[]) : [];
  };
  let config = { virtualservices: [] as any[], destinationrules: [] as any[], endpoints: [] as Endpoint[] };
  const refresh = async () => {
    const [virtualservices, destinationrules, endpoints] = await Promise.all([
      list('virtualservices'),
      list('destinationrules'),
      typeof opts.endpoints === 'function' ? opts.endpoints() : opts.endpoints,
    ]);
    config = { virtualservices, destinationrules, endpoints };
  };
  const poll = await pollConfig(refresh);
  const items = async (kind: 'virtualservices' | 'destinationrules') => config[kind];

  /** The rules that apply: the gateway's VS (VS.gateways names it), or a mesh VS (gateways empty or "mesh"). */
  const httpRules = async (): Promise<any[] | undefined> => {
    const vss = (await items('virtualservices')).filter((vs) => {
      const gateways: string[] = vs.spec?.gateways ?? [];
      const bound = opts.gateway ? gateways.includes(opts.gateway) : !gateways.length || gateways.includes('mesh');
      return bound && hostMatches(vs.spec?.hosts ?? [], opts.host, opts.namespace);
    });
    // Istio merges VSs for one host by creation time; meshdemo writes one per host
    vss.sort((a, b) => String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)));
    return vss.length ? vss.flatMap((vs) => vs.spec.http ?? []) : undefined;
  };

  /** HTTPRouteDestination.weight: a destination is drawn per request; a lone destination takes all (weight assumed 100). */
  const pick = (route: any[]): any => {
    if (route.length === 1) return route[0];
    const total = route.reduce((a, d) => a + (d.weight ?? 0), 0);
    let x = random() * total;
    for (const d of route) {
      x -= d.weight ?? 0;
      if (x < 0) return d;
    }
    return route[route.length - 1];
  };

  /** Percent.value (0.0–100.0): the share of requests a fault hits; unset: every request (HTTPFaultInjection.Delay/Abort). */
  const hits = (percentage: any) => random() * 100 < (percentage?.value ?? 100);

  /** The DestinationRule for a host (DR.host). */
  const ruleFor = (host: string) => config.destinationrules.find((dr) => hostMatches([dr.spec?.host ?? ''], host, opts.namespace));

  /** The endpoints of the destination: the Service's (app=<host>), narrowed by the DR subset's labels; undefined when the subset is unknown. */
  const endpointsFor = async (destination: any): Promise<Endpoint[] | undefined> => {
    const ofService = config.endpoints.filter((e) => e.labels.app === destination.host);
    if (!destination.subset) return ofService;
    const rule = ruleFor(destination.host);
    const subset = (rule?.spec?.subsets ?? []).find((s: any) => s.name === destination.subset);
    if (!subset) return undefined;
    return ofService.filter((e) => Object.entries(subset.labels ?? {}).every(([k, v]) => e.labels[k] === v));
  };

  return {
    httpRules,
    pick,
    hits,
    endpointsFor,
    ruleFor,
    synced: poll.synced,
    stop: poll.stop,
  };
}

/** One Envoy cluster per destination host and subset (outbound|port|subset|host) — each router's own — its policy the DR's trafficPolicy as now applied. */
function clusterTable(ruleFor: (host: string) => any, protocol: 'http' | 'grpc') {
  const clusters = new Map<string, EnvoyCluster>();
  return (destination: any): EnvoyCluster => {
    const key = `${destination.host}|${destination.subset ?? ''}`;
    const policy = clusterPolicy(ruleFor(destination.host), protocol);
    let c = clusters.get(key);
    if (!c) clusters.set(key, (c = new EnvoyCluster(policy)));
    else c.update(policy);
    return c;
  };
}

export type MeshWatch = Awaited<ReturnType<typeof watchMesh>>;

export async function startMeshRouter(opts: MeshRouterOptions): Promise<MeshRouter> {
  const watch = opts.watch ?? (await watchMesh(opts));
  const { httpRules, pick, hits, endpointsFor, synced } = watch;
  const clusterFor = clusterTable(watch.ruleFor, 'http');
  const log: AccessLogEntry[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const mtlsAgent = opts.identity ? new https.Agent({ keepAlive: true, ...mtlsClientOptions(opts.identity) }) : undefined;
  const forward = (target: string, req: http.IncomingMessage, body: Buffer, timeoutMs: number | undefined) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer } | { error: 'timeout' | 'connect' }>((resolve) => {
      const secure = target.startsWith('https:');
      if (secure && !mtlsAgent) throw new Error(`stand-in: ${target} has a sidecar, but this router was given no identity for mutual TLS`);
      const out = (secure ? https : http).request(new URL(req.url ?? '/', target), { method: req.method, headers: { ...req.headers, host: opts.host }, agent: secure ? mtlsAgent : agent }, (up) => {
        const chunks: Buffer[] = [];
        up.on('data', (c) => chunks.push(c));
        up.on('end', () => {
          clearTimeout(timer);
          resolve({ status: up.statusCode ?? 502, headers: up.headers, body: Buffer.concat(chunks) });
        });
      });
      const timer = timeoutMs !== undefined ? setTimeout(() => {
        out.destroy();
        resolve({ error: 'timeout' });
      }, timeoutMs) : undefined;
      out.on('error', () => {
        clearTimeout(timer);
        resolve({ error: 'connect' });
      });
      out.end(body);
    });

  /**
   * HTTPRetry.retry_on, Envoy's x-envoy-retry-on policies: 5xx (any 5xx or no response), gateway-error (502, 503,
   * 504), connect-failure, retriable-status-codes (503, Istio's default code). Unset retries: Istio 1.8's default
   * policy, 2 attempts on "connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes"
   * (pilot/pkg/networking/core/v1alpha3/route/retry/retry.go DefaultPolicy).
   */
  const retriable = (retryOn: string, r: { status?: number; error?: string }) => {
    const on = new Set(retryOn.split(',').map((s) => s.trim()));
    if (r.error === 'connect') return on.has('connect-failure') || on.has('5xx') || on.has('gateway-error');
    if (r.error === 'timeout') return on.has('5xx') || on.has('gateway-error');
    const s = r.status ?? 0;
    return (on.has('5xx') && s >= 500) || (on.has('gateway-error') && [502, 503, 504].includes(s)) || (on.has('retriable-status-codes') && s === 503);
  };

  const server = http.createServer(async (req, res) => {
    const chunks: Buffer[] = [];
    for await (const c of req) chunks.push(c as Buffer);
    const body = Buffer.concat(chunks);
    const path = req.url ?? '/';
    const answer = (status: number, flags: string, text: string, extra: Partial<AccessLogEntry> = {}) => {
      log.push({ path, status, flags, attempts: 0, ...extra });
      res.writeHead(status, { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(text) });
      res.end(text);
    };
    try {
      const rules = await httpRules();
      // no VirtualService: the Service's own route, every endpoint of it
      const rule = rules ? rules.find((r) => ruleMatches(r, req)) : { route: [{ destination: { host: opts.host } }] };
      if (!rule) return answer(404, 'NR', ''); // no route matches: Envoy's 404 with NR
      const flags: string[] = [];
      // fault filter runs before the router: the delay first, then the abort (HTTPFaultInjection; Envoy fault filter)
      if (rule.fault?.delay && hits(rule.fault.delay.percentage)) {
        await new Promise((r) => setTimeout(r, durationMs(rule.fault.delay.fixedDelay)));
        flags.push('DI');
      }
      if (rule.fault?.abort && hits(rule.fault.abort.percentage)) return answer(rule.fault.abort.httpStatus, [...flags, 'FI'].join(','), 'fault filter abort');
      const chosen = pick(rule.route ?? []);
      const destination = chosen.destination;
      const endpoints = await endpointsFor(destination);
      if (!endpoints) return answer(503, [...flags, 'NR'].join(','), '', { subset: destination.subset }); // router.cc: cluster not found
      if (!endpoints.length) return answer(503, [...flags, 'UH'].join(','), 'no healthy upstream', { subset: destination.subset });
      // HTTPRoute.timeout bounds the whole request, retries included (default: disabled in 1.8)
      const routeTimeout = durationMs(rule.timeout);
      const deadline = routeTimeout !== undefined ? Date.now() + routeTimeout : Infinity;
      const retries = rule.retries ?? { attempts: 2, retryOn: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes' };
      const retryOn = retries.retryOn ?? 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes';
      const perTry = durationMs(retries.perTryTimeout);
      const cluster = clusterFor(destination);
      const tried = new Set<string>();
      let attempts = 0;
      for (;;) {
        const healthy = cluster.healthy(endpoints);
        if (!healthy.length) return answer(503, [...flags, 'UH'].join(','), 'no healthy upstream', { subset: destination.subset, attempts });
        const target = cluster.pick(healthy, tried);
        tried.add(target.url);
        attempts++;
        if ((await cluster.admit()) === 'overflow') {
          return answer(503, [...flags, 'UO'].join(','), 'upstream connect error or disconnect/reset before headers. reset reason: overflow', { subset: destination.subset, attempts });
        }
        const left = deadline - Date.now();
        const limit = Math.min(left, perTry ?? Infinity);
        const r = await forward(target.url, req, body, Number.isFinite(limit) ? Math.max(limit, 1) : undefined).finally(() => cluster.release());
        // a reset or connect failure counts as 503, a timeout as 504 (router.cc onUpstreamReset, onPerTryTimeout)
        cluster.report(target.url, 'error' in r ? (r.error === 'timeout' ? 504 : 503) : r.status, endpoints.length);
        const overall = Date.now() >= deadline;
        const again = !overall && attempts <= retries.attempts && retriable(retryOn, 'error' in r ? r : { status: r.status });
        if (again) {
          await new Promise((x) => setTimeout(x, 25)); // Envoy's base retry interval, 25 ms
          continue;
        }
        if ('error' in r) {
          if (r.error === 'timeout') return answer(504, [...flags, 'UT'].join(','), 'upstream request timeout', { upstream: target.url, subset: destination.subset, attempts });
          return answer(503, [...flags, attempts > 1 ? 'URX' : 'UF'].join(','), 'upstream connect error or disconnect/reset before headers', { upstream: target.url, subset: destination.subset, attempts });
        }
        log.push({ path, status: r.status, flags: flags.join(',') || '-', upstream: target.url, subset: destination.subset, attempts });
        res.writeHead(r.status, r.headers);
        res.end(r.body);
        return;
      }
    } catch (err) {
      if (!res.headersSent) answer(500, 'stand-in-error', String(err));
    }
  });
  server.listen(opts.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    synced,
    close: async () => {
      if (!opts.watch) await watch.stop();
      agent.destroy();
      mtlsAgent?.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}

/** gRPC status → HTTP status, as Envoy maps it (source/common/grpc/status.cc Utility::grpcToHttpStatus). */
const GRPC_TO_HTTP: Record<number, number> = { 0: 200, 1: 499, 2: 500, 3: 400, 4: 504, 5: 404, 6: 409, 7: 403, 8: 429, 9: 400, 10: 409, 11: 400, 12: 501, 13: 500, 14: 503, 15: 500, 16: 401 };

/** HTTP status → gRPC status for Envoy's local replies to gRPC requests (Utility::httpToGrpcStatus). */
function httpToGrpc(status: number): number {
  return ({ 400: 13, 401: 16, 403: 7, 404: 12, 429: 14, 502: 14, 503: 14, 504: 14 } as Record<number, number>)[status] ?? 2;
}

/** grpc-message is percent-encoded: '%' and bytes outside printable ASCII only (gRPC's PROTOCOL-HTTP2.md, Envoy's Grpc::Utility). */
const grpcMessage = (m: string) => Array.from(Buffer.from(m, 'utf8'), (b) => (b < 0x20 || b > 0x7e || b === 0x25 ? `%${b.toString(16).toUpperCase().padStart(2, '0')}` : String.fromCharCode(b))).join('');

/**
 * The same routing for a gRPC Service port (HTTP/2 without TLS, as the app speaks it to its sidecar): micro-order's
 * sidecar calling micro-pay. Envoy answers a gRPC request it cannot route itself "trailers-only": HTTP 200 with
 * grpc-status in the headers (source/common/http/utility.cc sendLocalReply: 503 → 14 UNAVAILABLE), and the access
 * log's response code is that 200 (envoyproxy/envoy#17707); the response flags tell why (UO, UH, NR, FI).
 * Retries: Istio 1.8's default policy unless the route sets its own — gRPC conditions (unavailable, cancelled,
 * deadline-exceeded, internal, resource-exhausted) read the grpc-status of the response headers; connect-failure a
 * refused connection; another host is tried first (retry_host_predicate previous_hosts, retry.go DefaultPolicy).
 */
export async function startGrpcMeshRouter(opts: MeshRouterOptions): Promise<MeshRouter> {
  const watch = opts.watch ?? (await watchMesh(opts));
  const { httpRules, pick, hits, endpointsFor, synced } = watch;
  const clusterFor = clusterTable(watch.ruleFor, 'grpc');
  const log: AccessLogEntry[] = [];
  const sessions = new Map<string, http2.ClientHttp2Session>();
  const session = (url: string) => {
    const s = sessions.get(url);
    if (s && !s.closed && !s.destroyed) return s;
    const fresh = http2.connect(url);
    fresh.on('error', () => {});
    sessions.set(url, fresh);
    return fresh;
  };
  const GRPC_RETRY_ON: Record<string, number> = { cancelled: 1, 'deadline-exceeded': 4, 'resource-exhausted': 8, internal: 13, unavailable: 14 };

  type Upstream = { headers: http2.IncomingHttpHeaders; data: Buffer; trailers: http2.IncomingHttpHeaders } | { error: 'connect' };
  const forward = (url: string, headers: http2.IncomingHttpHeaders, body: Buffer) =>
    new Promise<Upstream>((resolve) => {
      const forwarded = Object.fromEntries(Object.entries(headers).filter(([k]) => !k.startsWith(':') || k === ':method' || k === ':path'));
      let req: http2.ClientHttp2Stream;
      try {
        req = session(url).request({ ...forwarded, ':authority': opts.host });
      } catch {
        return resolve({ error: 'connect' });
      }
      let head: http2.IncomingHttpHeaders | undefined;
      let trailers: http2.IncomingHttpHeaders = {};
      const chunks: Buffer[] = [];
      req.on('response', (h) => (head = h));
      req.on('trailers', (t) => (trailers = t));
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => resolve(head ? { headers: head, data: Buffer.concat(chunks), trailers } : { error: 'connect' }));
      req.on('error', () => resolve({ error: 'connect' }));
      req.end(body);
    });

  const server = http2.createServer();
  const downstream = new Set<http2.ServerHttp2Session>();
  server.on('session', (s) => {
    downstream.add(s);
    s.on('close', () => downstream.delete(s));
  });
  server.on('stream', (stream, headers) => {
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', () => {});
    stream.on('end', () => void route(stream, headers, Buffer.concat(chunks)));
  });

  const route = async (stream: http2.ServerHttp2Stream, headers: http2.IncomingHttpHeaders, body: Buffer) => {
    const path = String(headers[':path'] ?? '/');
    /** Envoy's own trailers-only answer: HTTP 200, grpc-status from the HTTP status it stands for. */
    const localReply = (httpStatus: number, flags: string, message: string, extra: Partial<AccessLogEntry> = {}) => {
      const grpcStatus = httpToGrpc(httpStatus);
      log.push({ path, status: 200, flags, grpcStatus, attempts: 0, ...extra });
      if (!stream.destroyed) stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': String(grpcStatus), 'grpc-message': grpcMessage(message) }, { endStream: true });
    };
    try {
      const rules = await httpRules();
      const rule = rules ? rules.find((r) => ruleMatches(r, { url: path, headers })) : { route: [{ destination: { host: opts.host } }] };
      if (!rule) return localReply(404, 'NR', 'route not found');
      const flags: string[] = [];
      if (rule.fault?.delay && hits(rule.fault.delay.percentage)) {
        await new Promise((r) => setTimeout(r, durationMs(rule.fault.delay.fixedDelay)));
        flags.push('DI');
      }
      if (rule.fault?.abort && hits(rule.fault.abort.percentage)) return localReply(rule.fault.abort.httpStatus, [...flags, 'FI'].join(','), 'fault filter abort');
      const destination = pick(rule.route ?? []).destination;
      const endpoints = await endpointsFor(destination);
      if (!endpoints) return localReply(503, [...flags, 'NR'].join(','), 'cluster not found', { subset: destination.subset });
      const retries = rule.retries ?? { attempts: 2, retryOn: 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes' };
      const on = new Set(String(retries.retryOn ?? 'connect-failure,refused-stream,unavailable,cancelled,retriable-status-codes').split(',').map((x) => x.trim()));
      const cluster = clusterFor(destination);
      const tried = new Set<string>();
      let attempts = 0;
      for (;;) {
        const healthy = cluster.healthy(endpoints);
        if (!healthy.length) return localReply(503, [...flags, 'UH'].join(','), 'no healthy upstream', { subset: destination.subset, attempts });
        const target = cluster.pick(healthy, tried);
        tried.add(target.url);
        attempts++;
        if ((await cluster.admit()) === 'overflow') {
          return localReply(503, [...flags, 'UO'].join(','), 'upstream connect error or disconnect/reset before headers. reset reason: overflow', { subset: destination.subset, attempts });
        }
        const r = await forward(target.url, headers, body).finally(() => cluster.release());
        const headerStatus = 'error' in r || r.headers['grpc-status'] === undefined ? undefined : Number(r.headers['grpc-status']);
        // router.cc onUpstreamHeaders: the outlier detector gets grpc-status mapped to HTTP only when it is in the
        // response headers (trailers-only); a grpc-status sent in trailers is not seen
        cluster.report(target.url, 'error' in r ? 503 : headerStatus !== undefined ? GRPC_TO_HTTP[headerStatus] ?? 500 : Number(r.headers[':status']), endpoints.length);
        const retriable = 'error' in r ? on.has('connect-failure') || on.has('5xx') || on.has('gateway-error') : headerStatus !== undefined && [...on].some((c) => GRPC_RETRY_ON[c] === headerStatus);
        if (retriable && attempts <= retries.attempts) {
          await new Promise((x) => setTimeout(x, 25)); // Envoy's base retry interval, 25 ms
          continue;
        }
        if ('error' in r) return localReply(503, [...flags, attempts > 1 ? 'URX' : 'UF'].join(','), 'upstream connect error or disconnect/reset before headers', { upstream: target.url, subset: destination.subset, attempts });
        const status = Number(r.headers[':status'] ?? 200);
        const trailerStatus = r.trailers['grpc-status'] === undefined ? undefined : Number(r.trailers['grpc-status']);
        log.push({ path, status, flags: flags.join(',') || '-', grpcStatus: headerStatus ?? trailerStatus, upstream: target.url, subset: destination.subset, attempts });
        if (stream.destroyed) return;
        const out = Object.fromEntries(Object.entries(r.headers).filter(([k]) => !k.startsWith(':')));
        const hasTrailers = Object.keys(r.trailers).length > 0;
        stream.respond({ ':status': status, ...out }, { endStream: !r.data.length && !hasTrailers, waitForTrailers: hasTrailers });
        if (hasTrailers) stream.once('wantTrailers', () => stream.sendTrailers(Object.fromEntries(Object.entries(r.trailers).filter(([k]) => !k.startsWith(':')))));
        if (r.data.length || hasTrailers) stream.end(r.data);
        return;
      }
    } catch (err) {
      if (!stream.headersSent && !stream.destroyed) localReply(500, 'stand-in-error', String(err));
    }
  };

  server.listen(opts.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    log,
    synced,
    close: async () => {
      if (!opts.watch) await watch.stop();
      for (const s of sessions.values()) s.destroy();
      for (const s of downstream) s.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}

/**
 * A workload certificate as istiod's CA issues it (SPIFFE URI SAN spiffe://<trust domain>/ns/<ns>/sa/<sa>), signed
 * by the mesh's root; one identity serves every sidecar of the test mesh. Made with openssl, EC P-256, valid a day.
 */
export interface MeshIdentity {
  key: string;
  cert: string;
  /** The mesh root certificate both sides verify the peer against. */
  ca: string;
}

export function createMeshIdentity(dir: string, spiffeId = 'spiffe://cluster.local/ns/default/sa/default'): MeshIdentity {
  fs.mkdirSync(dir, { recursive: true });
  const f = (n: string) => path.join(dir, n);
  const openssl = (args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  openssl(['req', '-x509', ...ec, '-keyout', f('root-key.pem'), '-out', f('root-cert.pem'), '-subj', '/O=cluster.local', '-days', '1']);
  openssl(['req', ...ec, '-keyout', f('key.pem'), '-out', f('cert.csr'), '-subj', '/O=cluster.local']);
  fs.writeFileSync(f('san.ext'), `subjectAltName=URI:${spiffeId}\n`);
  openssl(['x509', '-req', '-in', f('cert.csr'), '-CA', f('root-cert.pem'), '-CAkey', f('root-key.pem'), '-CAcreateserial', '-out', f('cert.pem'), '-days', '1', '-extfile', f('san.ext')]);
  return { key: fs.readFileSync(f('key.pem'), 'utf8'), cert: fs.readFileSync(f('cert.pem'), 'utf8'), ca: fs.readFileSync(f('root-cert.pem'), 'utf8') };
}

/**
 * A client sidecar's TLS to a server sidecar (ISTIO_MUTUAL, chosen by auto mTLS for an endpoint with a sidecar):
 * its workload certificate, the peer verified against the mesh root by its SPIFFE identity, not a host name, and
 * ALPN "istio" offered beside the application protocol — the server's filter chain matches on it (istio/istio
 * 1.8.4 pilot/pkg/security/authn/utils/utils.go BuildInboundFilterChain: "Client sidecar outbound cluster's
 * TLSContext.ALPN must include istio").
 */
function mtlsClientOptions(identity: MeshIdentity): tls.ConnectionOptions {
  return { key: identity.key, cert: identity.cert, ca: identity.ca, ALPNProtocols: ['istio', 'http/1.1'], checkServerIdentity: () => undefined };
}

export type MutualTlsMode = 'STRICT' | 'PERMISSIVE' | 'DISABLE';

/**
 * The mTLS mode for a workload from the PeerAuthentications (security.istio.io/v1beta1) in its namespace and the
 * root namespace (istio-system), as istio/istio 1.8.4 composes them (pilot/pkg/security/authn/v1beta1/
 * policy_applier.go composePeerAuthentication): the narrowest scope wins — a workload policy (a selector whose
 * matchLabels the pod has, not in the root namespace) over the namespace's (no selector) over the mesh's (no selector,
 * in the root namespace); the oldest wins within a scope; UNSET (or no mtls) inherits from the scope above; none at
 * all: PERMISSIVE. portLevelMtls is not imitated (meshdemo writes none): a policy with it stops the stand-in.
 */
export function effectiveMtlsMode(policies: any[], namespace: string, labels: Record<string, string>, rootNamespace = 'istio-system'): MutualTlsMode {
  const oldest = (list: any[]) => list.sort((a, b) => String(a.metadata.creationTimestamp).localeCompare(String(b.metadata.creationTimestamp)))[0];
  const unscoped = (p: any) => !Object.keys(p.spec?.selector?.matchLabels ?? {}).length;
  const mesh = oldest(policies.filter((p) => p.metadata.namespace === rootNamespace && unscoped(p)));
  const ns = oldest(policies.filter((p) => p.metadata.namespace === namespace && namespace !== rootNamespace && unscoped(p)));
  const workload = oldest(
    policies.filter((p) => p.metadata.namespace === namespace && namespace !== rootNamespace && !unscoped(p) && Object.entries(p.spec.selector.matchLabels).every(([k, v]) => labels[k] === v)),
  );
  if (workload?.spec?.portLevelMtls) throw new Error('stand-in: portLevelMtls is not imitated');
  let mode: MutualTlsMode = 'PERMISSIVE';
  for (const p of [mesh, ns, workload]) {
    const m = p?.spec?.mtls?.mode;
    if (m && m !== 'UNSET') mode = m;
  }
  return mode;
}

export interface InboundSidecar {
  /** https://127.0.0.1:port — the pod's address as the mesh reaches it; http:// of the same port is a plaintext caller's way. */
  url: string;
  /** Connections as the inbound listener took them: 'mtls' (the mTLS filter chain), 'plaintext' (passed through), 'refused'. */
  log: Array<'mtls' | 'plaintext' | 'refused'>;
  synced(): Promise<void>;
  close(): Promise<void>;
}

/**
 * The inbound side of one pod's Envoy (the listener iptables sends every connection to the pod into), in front of
 * the app at `app` (http://127.0.0.1:port). Its filter chains follow the pod's effective PeerAuthentication mode,
 * read from the API server every ~50 ms (istio/istio 1.8.4 pilot/pkg/security/authn/utils/utils.go
 * BuildInboundFilterChain):
 *   STRICT: one filter chain, with a TLS context that requires a client certificate — every connection must be
 *     mutual TLS. A plaintext HTTP request is no TLS handshake: Envoy closes the connection, and the caller sees it
 *     reset (Istio 1.8's mutual TLS migration task: curl from a pod without a sidecar ends with
 *     "command terminated with exit code 56", curl's "Recv failure: Connection reset by peer").
 *   PERMISSIVE: the mTLS chain for TLS offering ALPN "istio" (tls_inspector), and a plaintext chain for the rest
 *     (here every TLS connection takes the mTLS chain: a TLS client outside the mesh is not imitated).
 *   DISABLE: plaintext only.
 * The mTLS chain verifies the client certificate against the mesh root (RequireClientCertificate), then the
 * decrypted stream goes to the app; a TLS client without a mesh certificate fails the handshake.
 */
export async function startInboundSidecar(opts: {
  get: MeshRouterOptions['get'];
  namespace: string;
  /** The pod's labels (a workload PeerAuthentication selects by them). */
  labels: Record<string, string>;
  app: string;
  identity: MeshIdentity;
}): Promise<InboundSidecar> {
  const appUrl = new URL(opts.app);
  const log: InboundSidecar['log'] = [];
  let mode: MutualTlsMode = 'PERMISSIVE';
  const refresh = async () => {
    const list = async (ns: string) => {
      const r = await opts.get(`/apis/security.istio.io/v1beta1/namespaces/${ns}/peerauthentications`);
      return r.status === 200 ? (r.body.items as any[]) : [];
    };
    mode = effectiveMtlsMode([...(await list(opts.namespace)), ...(await list('istio-system'))], opts.namespace, opts.labels);
  };
  const poll = await pollConfig(refresh);

  const toApp = (from: net.Socket | tls.TLSSocket, first?: Buffer) => {
    const upstream = net.connect(Number(appUrl.port), appUrl.hostname);
    upstream.on('error', () => from.destroy());
    from.on('error', () => upstream.destroy());
    if (first) upstream.write(first);
    from.pipe(upstream).pipe(from);
  };
  // the mTLS filter chain: client certificate required and verified, ALPN "istio" offered (the filter chain match);
  // what the connection carries is negotiated among ALPNHttp (h2, http/1.1), never "istio" itself
  const mtls = tls.createServer({
    key: opts.identity.key,
    cert: opts.identity.cert,
    ca: opts.identity.ca,
    requestCert: true,
    rejectUnauthorized: true,
    ALPNCallback: ({ protocols }) => (protocols.includes('istio') ? (protocols.includes('http/1.1') ? 'http/1.1' : protocols.find((p) => p !== 'istio')) : undefined),
  });
  mtls.on('secureConnection', (s) => {
    log.push('mtls');
    toApp(s);
  });
  mtls.on('tlsClientError', (_err, s) => s.destroy());
  mtls.listen(0, '127.0.0.1');
  await once(mtls, 'listening');
  const mtlsPort = (mtls.address() as net.AddressInfo).port;

  const listener = net.createServer((socket) => {
    socket.on('error', () => {});
    socket.once('data', (first: Buffer) => {
      socket.pause();
      const isTls = first[0] === 0x16; // a TLS record of type handshake: what tls_inspector looks for
      if (isTls && mode !== 'DISABLE') {
        // the bytes go as they came to the TLS chain's terminator (a listener of its own on loopback)
        const chain = net.connect(mtlsPort, '127.0.0.1');
        chain.on('error', () => socket.destroy());
        socket.on('close', () => chain.destroy());
        chain.write(first);
        socket.pipe(chain).pipe(socket);
        socket.resume();
        return;
      }
      if (mode === 'STRICT') {
        log.push('refused');
        socket.resetAndDestroy();
        return;
      }
      log.push('plaintext');
      toApp(socket, first);
      socket.resume();
    });
  });
  listener.listen(0, '127.0.0.1');
  await once(listener, 'listening');
  const { port } = listener.address() as net.AddressInfo;
  const sockets = new Set<net.Socket>();
  for (const srv of [listener, mtls]) srv.on('connection', (s: net.Socket) => (sockets.add(s), s.on('close', () => sockets.delete(s))));
  return {
    url: `https://127.0.0.1:${port}`,
    log,
    synced: poll.synced,
    close: async () => {
      await poll.stop();
      for (const s of sockets) s.destroy();
      await Promise.all([listener, mtls].map((srv) => new Promise((r) => srv.close(r))));
    },
  };
}

/**
 * A reproducible sequence in [0, 1) (mulberry32): Envoy's draws are random, but a test that measures a share over
 * a few hundred requests should not fail one run in twenty on the binomial spread alone.
 */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Reads the mesh's config now, then again every 50 ms (as istiod pushes it to the proxies, a moment after a change)
 * until stopped. synced() resolves once a read that started after the call has finished.
 */
async function pollConfig(refresh: () => Promise<void>): Promise<{ synced: () => Promise<void>; stop: () => Promise<void> }> {
  let waiting: Array<() => void> = [];
  let stopped = false;
  await refresh();
  const poller = (async () => {
    while (!stopped) {
      const served = waiting;
      waiting = [];
      await refresh().catch(() => {});
      for (const w of served) w();
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  return {
    synced: () => new Promise<void>((resolve) => waiting.push(resolve)),
    stop: async () => {
      stopped = true;
      for (const w of waiting) w();
      await poller;
    },
  };
}
