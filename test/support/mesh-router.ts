// Stands in for Envoy (no Envoy runs here): the ingress gateway, or a sidecar's outbound route to one Service,
// routing each request by the VirtualServices and DestinationRules really applied to the test's API server — the
// objects meshdemo wrote, read back continuously (one list of each every ~50 ms, as Envoy receives istiod's pushes
// shortly after a change; `synced()` waits for a read that started after the call).
// It extends test/support/round-robin.ts (a Service with no VirtualService is still balanced in turn over its
// endpoints) with Istio 1.8's routing semantics, each cited where it is implemented:
//   istio/api branch release-1.8, networking/v1alpha3/virtual_service.proto (VS) and destination_rule.proto (DR);
//   Envoy 1.16 (Istio 1.8's proxy), source/common/router/router.cc and source/extensions/filters/http/fault.
// Strictness: a route naming a subset that no DestinationRule defines is a 503 with response flag NR, as Envoy's
// router answers a route whose cluster does not exist (router.cc: no cluster → NoRouteFound, 503); no matching
// route is a 404 NR; no endpoint is a 503 UH "no healthy upstream". Every answer goes to `log` with its flags,
// as Envoy's access log has %RESPONSE_FLAGS%.
// A plain HTTP/1.1 forwarder on 127.0.0.1.
import http from 'node:http';
import { once } from 'node:events';
import type net from 'node:net';

export interface Endpoint {
  /** The pod's labels (app, version): a DR subset selects endpoints by them (DR Subset.labels). */
  labels: Record<string, string>;
  /** Where that "pod" listens, e.g. http://127.0.0.1:40123 */
  url: string;
}

export interface AccessLogEntry {
  path: string;
  status: number;
  /** Envoy's response flags: '-' for none, FI fault abort, DI delay injected, UT upstream timeout, NR no route/cluster, UH no healthy upstream, URX retries exhausted. */
  flags: string;
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
  /** Randomness for weights and percentages (Envoy draws per request); tests pass none. */
  random?: () => number;
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
function ruleMatches(rule: any, req: http.IncomingMessage): boolean {
  const matches: any[] = rule.match ?? [];
  if (!matches.length) return true;
  const path = (req.url ?? '/').split('?')[0];
  return matches.some((m) => (!m.uri || stringMatches(m.uri, path)) && Object.entries(m.headers ?? {}).every(([name, sm]) => stringMatches(sm, req.headers[name] as string | undefined)));
}

/** VS hosts: a short name matches the Service in the VS's namespace; "*" matches every host. */
const hostMatches = (hosts: string[], host: string, namespace: string) => hosts.some((h) => h === '*' || h === host || h === `${host}.${namespace}` || h === `${host}.${namespace}.svc.cluster.local`);

export async function startMeshRouter(opts: MeshRouterOptions): Promise<MeshRouter> {
  const random = opts.random ?? Math.random;
  const log: AccessLogEntry[] = [];
  const agent = new http.Agent({ keepAlive: true });
  const turns = new Map<string, number>();
  const list = async (kind: string) => {
    const r = await opts.get(`/apis/networking.istio.io/v1alpha3/namespaces/${opts.namespace}/${kind}`);
    return r.status === 200 ? (r.body.items as any[]) : [];
  };
  let config = { virtualservices: [] as any[], destinationrules: [] as any[], endpoints: [] as Endpoint[] };
  let waiting: Array<() => void> = [];
  let stopped = false;
  const refresh = async () => {
    const [virtualservices, destinationrules, endpoints] = await Promise.all([
      list('virtualservices'),
      list('destinationrules'),
      typeof opts.endpoints === 'function' ? opts.endpoints() : opts.endpoints,
    ]);
    config = { virtualservices, destinationrules, endpoints };
  };
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

  /** The endpoints of the destination: the Service's (app=<host>), narrowed by the DR subset's labels; undefined when the subset is unknown. */
  const endpointsFor = async (destination: any): Promise<Endpoint[] | undefined> => {
    const ofService = config.endpoints.filter((e) => e.labels.app === destination.host);
    if (!destination.subset) return ofService;
    const rule = (await items('destinationrules')).find((dr) => hostMatches([dr.spec?.host ?? ''], destination.host, opts.namespace));
    const subset = (rule?.spec?.subsets ?? []).find((s: any) => s.name === destination.subset);
    if (!subset) return undefined;
    return ofService.filter((e) => Object.entries(subset.labels ?? {}).every(([k, v]) => e.labels[k] === v));
  };

  const forward = (target: string, req: http.IncomingMessage, body: Buffer, timeoutMs: number | undefined) =>
    new Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer } | { error: 'timeout' | 'connect' }>((resolve) => {
      const out = http.request(new URL(req.url ?? '/', target), { method: req.method, headers: { ...req.headers, host: opts.host }, agent }, (up) => {
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
      const key = `${destination.host}|${destination.subset ?? ''}`;
      let attempts = 0;
      for (;;) {
        const turn = turns.get(key) ?? 0;
        turns.set(key, turn + 1);
        const target = endpoints[turn % endpoints.length];
        attempts++;
        const left = deadline - Date.now();
        const limit = Math.min(left, perTry ?? Infinity);
        const r = await forward(target.url, req, body, Number.isFinite(limit) ? Math.max(limit, 1) : undefined);
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
    synced: () => new Promise<void>((resolve) => waiting.push(resolve)),
    close: async () => {
      stopped = true;
      for (const w of waiting) w();
      await poller;
      agent.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
