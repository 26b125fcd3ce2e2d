import type { KubeObject } from '../kube/client.js';
import { MANAGED_BY } from '../record/inventory.js';
import type { ServiceName } from '../settings.js';
import { renderAppManifests, VIRTUAL_SERVICE_NAME, GATEWAY_NAME } from './app-manifests.js';

/**
 * The tutorial's next steps as Istio objects: a canary (DestinationRule subsets and a weighted VirtualService),
 * faults, timeouts, retries and a circuit breaker, and mutual TLS. Every field used is Istio 1.8's API
 * (istio/api, branch release-1.8): networking/v1alpha3/virtual_service.proto, destination_rule.proto and
 * security/v1beta1/peer_authentication.proto; the field each one comes from is named beside it.
 *
 * What is active is kept in meshdemo's record (step "scenarios"), so each command renders a service's objects from
 * the whole state: a canary and a delay on micro-order are one VirtualService.
 */

export const NETWORKING = 'networking.istio.io/v1alpha3';
export const SECURITY = 'security.istio.io/v1beta1';
export const SCENARIO_STEP = 'scenarios';

export interface CanaryState {
  /** Percent of requests to v2 (the rest to v1). */
  weight: number;
  /** Requests with this header (exact value) go to v2 whatever the weight, as Istio's request-routing task does. */
  header?: { name: string; value: string };
  /** All traffic to v2, v1's subset retired. */
  promoted?: boolean;
}

export interface ChaosState {
  delay?: { fixedDelay: string; percent: number };
  abort?: { httpStatus: number; percent: number };
  timeout?: string;
  retries?: { attempts: number; perTryTimeout?: string; retryOn?: string };
  /** micro-pay only: the tutorial repository's connectionPool and outlierDetection. */
  breaker?: boolean;
}

export interface ServiceScenarios {
  canary?: CanaryState;
  chaos?: ChaosState;
}

export interface ScenarioState {
  services: Partial<Record<ServiceName, ServiceScenarios>>;
  /** PeerAuthentication `default` in the app namespace. */
  mtls?: 'STRICT' | 'PERMISSIVE';
}

/** The Service port each route names (templates/manifests/app.yaml). */
export const ROUTE_PORT: Record<ServiceName, number> = { 'micro-api': 19090, 'micro-order': 80, 'micro-pay': 18888 };
export const CANARY_SERVICES: ServiceName[] = ['micro-api', 'micro-order'];
export const ORDER_PATH = '/api/order/create';

const labelled = (o: KubeObject): KubeObject => ({ ...o, metadata: { ...o.metadata, labels: { ...o.metadata.labels, ...MANAGED_BY } } });

/**
 * micro-api is reached from the ingress gateway, so its routing is the gateway's VirtualService micro-gateway (a
 * VirtualService for host micro-api alone would bind only to sidecars, `gateways` defaulting to `mesh`:
 * virtual_service.proto VirtualService.gateways). The others are reached from sidecars: a VirtualService each.
 */
export function virtualServiceName(service: ServiceName): string {
  return service === 'micro-api' ? VIRTUAL_SERVICE_NAME : service;
}

export function isEmpty(s: ServiceScenarios | undefined): boolean {
  return !s?.canary && !s?.chaos;
}

/** The subsets a service's routes name: none without a canary; v2 alone once promoted. */
export function subsetsOf(s: ServiceScenarios | undefined): string[] {
  if (!s?.canary) return [];
  return s.canary.promoted ? ['v2'] : ['v1', 'v2'];
}

/** HTTPRoute.fault, .timeout and .retries (virtual_service.proto HTTPFaultInjection, HTTPRoute.timeout, HTTPRetry). */
function routeExtras(chaos: ChaosState | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  if (chaos?.delay || chaos?.abort) {
    const fault: Record<string, unknown> = {};
    // HTTPFaultInjection.Delay.fixed_delay and .percentage (Percent.value, 0.0–100.0)
    if (chaos.delay) fault.delay = { fixedDelay: chaos.delay.fixedDelay, percentage: { value: chaos.delay.percent } };
    // HTTPFaultInjection.Abort.http_status and .percentage
    if (chaos.abort) fault.abort = { httpStatus: chaos.abort.httpStatus, percentage: { value: chaos.abort.percent } };
    out.fault = fault;
  }
  if (chaos?.timeout) out.timeout = chaos.timeout; // HTTPRoute.timeout
  if (chaos?.retries) {
    // HTTPRetry.attempts, .per_try_timeout, .retry_on
    const r = chaos.retries;
    out.retries = { attempts: r.attempts, ...(r.perTryTimeout ? { perTryTimeout: r.perTryTimeout } : {}), ...(r.retryOn ? { retryOn: r.retryOn } : {}) };
  }
  return out;
}

/** The service's VirtualService for this state; undefined when the plain demo has none (micro-order, micro-pay). */
export function renderVirtualService(namespace: string, service: ServiceName, s: ServiceScenarios | undefined): KubeObject | undefined {
  if (isEmpty(s)) return service === 'micro-api' ? baseGatewayVirtualService(namespace) : undefined;
  // HTTPRouteDestination.destination (Destination.host, .subset, .port) and .weight (0–100, summing to 100)
  const to = (subset?: string, weight?: number) => ({
    destination: { host: service, ...(subset ? { subset } : {}), port: { number: ROUTE_PORT[service] } },
    ...(weight !== undefined ? { weight } : {}),
  });
  const canary = s?.canary;
  const route = !canary ? [to()] : canary.promoted ? [to('v2')] : [to('v1', 100 - canary.weight), to('v2', canary.weight)];
  const extras = routeExtras(s?.chaos);
  const uri = service === 'micro-api' ? { uri: { exact: ORDER_PATH } } : {};
  const http: Record<string, unknown>[] = [];
  if (canary?.header && !canary.promoted) {
    // HTTPMatchRequest.headers: map of header name to StringMatch (exact); the first matching rule wins
    http.push({ name: 'canary-header', match: [{ ...uri, headers: { [canary.header.name]: { exact: canary.header.value } } }], route: [to('v2')], ...extras });
  }
  http.push({ name: 'default', ...(service === 'micro-api' ? { match: [uri] } : {}), route, ...extras });
  const spec = service === 'micro-api' ? { hosts: ['*'], gateways: [GATEWAY_NAME], http } : { hosts: [service], http };
  return labelled({ apiVersion: NETWORKING, kind: 'VirtualService', metadata: { name: virtualServiceName(service), namespace }, spec });
}

/** The tutorial's micro-gateway VirtualService, exactly as up applies it (templates/manifests/app.yaml). */
export function baseGatewayVirtualService(namespace: string): KubeObject {
  const images = { 'micro-api': 'unused', 'micro-order': 'unused', 'micro-pay': 'unused' };
  const vs = renderAppManifests(namespace, images).objects.find((o) => o.kind === 'VirtualService' && o.metadata.name === VIRTUAL_SERVICE_NAME)!;
  return labelled(vs);
}

/**
 * The tutorial repository's circuit breaker on micro-pay: at most one connection and one pending request
 * (ConnectionPoolSettings.tcp.max_connections, .http.http1_max_pending_requests, .max_requests_per_connection),
 * and a host ejected after one 5xx (OutlierDetection.consecutive_5xx_errors, .interval, .base_ejection_time,
 * .max_ejection_percent).
 */
export const BREAKER_POLICY = {
  connectionPool: { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 } },
  outlierDetection: { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '3m', maxEjectionPercent: 100 },
};

/** DestinationRule for the service: `subsets` (Subset.name, .labels) and the breaker's traffic_policy; undefined when neither. */
export function renderDestinationRule(namespace: string, service: ServiceName, subsets: string[], breaker: boolean): KubeObject | undefined {
  if (!subsets.length && !breaker) return undefined;
  const spec: Record<string, unknown> = { host: service };
  if (breaker) spec.trafficPolicy = BREAKER_POLICY;
  if (subsets.length) spec.subsets = subsets.map((v) => ({ name: v, labels: { version: v } }));
  return labelled({ apiVersion: NETWORKING, kind: 'DestinationRule', metadata: { name: service, namespace }, spec });
}

export const CANARY_VERSION = 'v2';

/** `<service>-v2`: v1's pod template with `version: v2`, VERSION=v2 (the services name their version in x-served-by). */
export function renderCanaryDeployment(v1: KubeObject, service: ServiceName): KubeObject {
  const template = structuredClone(v1.spec.template);
  template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, app: service, version: CANARY_VERSION } };
  for (const c of template.spec.containers ?? []) {
    c.env = [...(c.env ?? []).filter((e: any) => e.name !== 'VERSION'), { name: 'VERSION', value: CANARY_VERSION }];
  }
  return labelled({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: `${service}-${CANARY_VERSION}`, namespace: v1.metadata.namespace, labels: { app: service, version: CANARY_VERSION } },
    spec: { replicas: 1, selector: { matchLabels: { app: service, version: CANARY_VERSION } }, template },
  });
}

/** The breaker's proof: one micro-pay pod that fails every payment, beside micro-pay-v1's healthy two. */
export const FAILING_PAY = { name: 'micro-pay-failing', version: 'failing', status: 'INTERNAL' } as const;

/**
 * `micro-pay-failing`: micro-pay-v1's pod template with PAY_FAIL=INTERNAL (every doPay answers gRPC INTERNAL, which
 * the sidecar's outlier detection counts as a 500) and `version: failing`, so it is one more endpoint of the micro-pay
 * Service. INTERNAL, because Istio's default retry policy retries UNAVAILABLE on another pod and the caller would
 * never see the failure (retry.go DefaultPolicy: "unavailable" among retry_on).
 */
export function renderFailingPayDeployment(v1: KubeObject): KubeObject {
  const template = structuredClone(v1.spec.template);
  const labels = { app: 'micro-pay', version: FAILING_PAY.version };
  template.metadata = { ...template.metadata, labels: { ...template.metadata?.labels, ...labels } };
  for (const c of template.spec.containers ?? []) {
    c.env = [...(c.env ?? []).filter((e: any) => e.name !== 'PAY_FAIL' && e.name !== 'VERSION'), { name: 'VERSION', value: FAILING_PAY.version }, { name: 'PAY_FAIL', value: FAILING_PAY.status }];
  }
  return labelled({
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: FAILING_PAY.name, namespace: v1.metadata.namespace, labels },
    spec: { replicas: 1, selector: { matchLabels: labels }, template },
  });
}

/** PeerAuthentication `default` (no selector: namespace-wide) with PeerAuthentication.MutualTLS.mode. */
export function renderPeerAuthentication(namespace: string, mode: 'STRICT' | 'PERMISSIVE'): KubeObject {
  return labelled({ apiVersion: SECURITY, kind: 'PeerAuthentication', metadata: { name: 'default', namespace }, spec: { mtls: { mode } } });
}

/** One line per active scenario, for status and for the scenario commands' summaries. */
export function describeScenarios(state: ScenarioState | undefined): string[] {
  const out: string[] = [];
  for (const [service, s] of Object.entries(state?.services ?? {})) {
    if (s?.canary) out.push(describeCanary(service, s.canary));
    if (s?.chaos) out.push(...describeChaos(service, s.chaos));
  }
  if (state?.mtls) out.push(`mtls ${state.mtls.toLowerCase()}`);
  return out;
}

function describeCanary(service: string, c: CanaryState): string {
  const split = c.promoted ? 'promoted: all to v2' : `v1=${100 - c.weight}% v2=${c.weight}%`;
  return `canary ${service} ${split}${c.header && !c.promoted ? `, ${c.header.name}=${c.header.value} → v2` : ''}`;
}

function describeChaos(service: string, k: ChaosState): string[] {
  const out: string[] = [];
  if (k.delay) out.push(`chaos ${service} delay ${k.delay.fixedDelay} for ${k.delay.percent}%`);
  if (k.abort) out.push(`chaos ${service} abort ${k.abort.httpStatus} for ${k.abort.percent}%`);
  if (k.timeout) out.push(`chaos ${service} timeout ${k.timeout}`);
  if (k.retries) out.push(`chaos ${service} retries ${k.retries.attempts}${k.retries.perTryTimeout ? ` (${k.retries.perTryTimeout} each)` : ''}${k.retries.retryOn ? ` on ${k.retries.retryOn}` : ''}`);
  if (k.breaker) out.push(`chaos ${service} breaker (maxConnections 1, consecutive5xxErrors 1)`);
  return out;
}

/** The pod without a sidecar that `mtls --verify` calls micro-api from, in plaintext. */
export const PLAINTEXT_PROBE = { app: 'meshdemo-plaintext-probe', container: 'probe', terminationLog: '/dev/termination-log' } as const;

/** What the probe's call came to: its exit code. */
export const PROBE_EXIT = { answered: 0, reset: 1, failed: 2 } as const;
export type ProbeOutcome = keyof typeof PROBE_EXIT;

/**
 * The probe's program (node -e, argv: URL, the outcome expected, the termination log): one order POSTed in plaintext,
 * as a client without a sidecar sends it. A connection closed before any answer is a reset (Node: ECONNRESET), what
 * a STRICT sidecar does to plaintext. Sidecars take a changed policy a moment after it is applied, so it calls again,
 * 1 s apart, up to 5 times, until the outcome is the one expected; it writes the last one to the termination log
 * (the kubelet reports it in the pod's status) and exits with PROBE_EXIT's code.
 */
const PROBE_SCRIPT = `
const http = require('http');
const fs = require('fs');
const [url, expect, out] = process.argv.slice(1);
const body = JSON.stringify({ businessId: 'meshdemo-plaintext-probe', amount: 100, channel: 1 });
const call = () => new Promise((resolve) => {
  const req = http.request(url, { method: 'POST', headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 10000 }, (res) => {
    res.resume();
    resolve({ outcome: 'answered', text: 'answered HTTP ' + res.statusCode });
  });
  req.on('timeout', () => req.destroy(Object.assign(new Error('no answer within 10s'), { code: 'ETIMEDOUT' })));
  req.on('error', (e) => resolve(e.code === 'ECONNRESET' ? { outcome: 'reset', text: 'connection reset (' + e.message + ')' } : { outcome: 'failed', text: (e.code || 'error') + ': ' + e.message }));
  req.end(body);
});
(async () => {
  let r;
  for (let i = 1; i <= 5; i++) {
    r = await call();
    r.text += ' (attempt ' + i + ')';
    if (r.outcome === expect || i === 5) break;
    await new Promise((x) => setTimeout(x, 1000));
  }
  fs.writeFileSync(out, r.text);
  console.log(r.text);
  process.exit(${JSON.stringify(PROBE_EXIT)}[r.outcome]);
})();
`;

/**
 * `meshdemo-plaintext-probe-<suffix>`: runs once (restartPolicy Never) with micro-api's image (Node, already on the
 * node) and annotation sidecar.istio.io/inject "false", so no sidecar is injected and its call leaves in plaintext,
 * to micro-api's Service by its cluster DNS name.
 */
export function renderPlaintextProbe(apiDeployment: KubeObject, name: string, expect: ProbeOutcome): KubeObject {
  const namespace = apiDeployment.metadata.namespace!;
  const app = apiDeployment.spec.template.spec;
  const url = `http://micro-api.${namespace}.svc.cluster.local:${ROUTE_PORT['micro-api']}${ORDER_PATH}`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: PLAINTEXT_PROBE.app, ...MANAGED_BY }, annotations: { 'sidecar.istio.io/inject': 'false' } },
    spec: {
      restartPolicy: 'Never',
      ...(app.imagePullSecrets ? { imagePullSecrets: app.imagePullSecrets } : {}),
      containers: [
        {
          name: PLAINTEXT_PROBE.container,
          image: app.containers[0].image,
          ...(app.containers[0].imagePullPolicy ? { imagePullPolicy: app.containers[0].imagePullPolicy } : {}),
          command: ['node', '-e', PROBE_SCRIPT, url, expect, PLAINTEXT_PROBE.terminationLog],
          terminationMessagePath: PLAINTEXT_PROBE.terminationLog,
        },
      ],
    },
  };
}
