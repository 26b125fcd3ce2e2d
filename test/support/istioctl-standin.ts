/**
 * A STAND-IN for istioctl 1.8.4 — not the real binary, which cannot run in meshdemo's tests. The release
 * archive built by release-archive.ts ships a bin/istioctl sh script that execs this file with Node.
 *
 * It does what meshdemo needs from istioctl, against a real API server:
 *   istioctl version --remote=false                      prints the version (1.8.4, or env STANDIN_VERSION)
 *   istioctl install --set profile=demo [--set k=v]… -y [--readiness-timeout 300s] [--kubeconfig f] [--context c]
 *       server-side-applies (field manager "istioctl") the real rendered 1.8.4 control plane from the release's
 *       manifests/charts (base CRDs, cluster RBAC, istiod) plus the demo gateways, waits for readiness, and
 *       saves the IstioOperator "installed-state" on success — printing what istioctl 1.8 prints.
 *   istioctl x uninstall --purge -y [--kubeconfig f] [--context c]
 *       deletes all of it again (the istio-system namespace stays, as with the real one).
 * Anything else: "Error: unknown command" on stderr, exit 64.
 *
 * Env:
 *   STANDIN_VERSION=<v>                 version reported and stamped (tag / labels); default 1.8.4
 *   STANDIN_RELEASE_DIR=<dir>           the release tree whose manifests/ are applied (set by bin/istioctl); default FIXTURES
 *   STANDIN_LOG=<file>                  append one line per invocation: JSON array of argv
 *   STANDIN_FAIL=1                      install / uninstall print a few lines and fail (exit 1) without touching the cluster
 *   STANDIN_HANG=1                      install / uninstall print one line, then sleep until killed
 *   STANDIN_WITH_INJECTOR_WEBHOOK=1     also apply the sidecar injector's MutatingWebhookConfiguration and any
 *                                       ValidatingWebhookConfiguration whose failurePolicy is Fail (left out by
 *                                       default: nothing answers them here, and Fail would refuse requests)
 */
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import * as https from 'node:https';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import yaml from 'js-yaml';
import { FIXTURES } from './release-archive.js';

export const ISTIO_NAMESPACE = 'istio-system';
const FIELD_MANAGER = 'istioctl';
const HUB = 'docker.io/istio';
const EXIT_USAGE = 64;

export const JWT_WARNING =
  'Detected that your cluster does not support third party JWT authentication. Falling back to less secure first party JWT. ' +
  'See https://istio.io/v1.8/docs/ops/best-practices/security/#configure-third-party-service-account-tokens for details.';

type Obj = { apiVersion: string; kind: string; metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> }; [k: string]: any };

class UsageError extends Error {}

const out = (line: string) => process.stdout.write(`${line}\n`);
const err = (line: string) => process.stderr.write(`${line}\n`);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function standinVersion(): string {
  return process.env.STANDIN_VERSION || '1.8.4';
}

// ------------------------------------------------------------------------------------------------ argv

interface Args {
  commands: string[];
  set: string[];
  flags: Map<string, string | true>;
}

const VALUE_FLAGS: Record<string, string> = {
  '--set': 'set', '-s': 'set',
  '--kubeconfig': 'kubeconfig', '-c': 'kubeconfig',
  '--context': 'context',
  '--readiness-timeout': 'readiness-timeout',
  '--revision': 'revision', '-r': 'revision',
  '--filename': 'filename', '-f': 'filename',
  '--istioNamespace': 'istioNamespace', '-i': 'istioNamespace',
  '--output': 'output', '-o': 'output',
};
const BOOL_FLAGS: Record<string, string> = {
  '-y': 'y', '--skip-confirmation': 'y',
  '--purge': 'purge',
  '--remote': 'remote',
  '--short': 'short',
  '--verify': 'verify',
  '--force': 'force',
  '--dry-run': 'dry-run',
};

export function parseArgs(argv: string[]): Args {
  const a: Args = { commands: [], set: [], flags: new Map() };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    if (!arg.startsWith('-') || arg === '-') {
      a.commands.push(arg);
      continue;
    }
    const eq = arg.indexOf('=');
    const flag = eq > 0 ? arg.slice(0, eq) : arg;
    const inline = eq > 0 ? arg.slice(eq + 1) : undefined;
    if (flag in VALUE_FLAGS) {
      const value = inline ?? argv[++i];
      if (value === undefined) throw new UsageError(`flag needs an argument: ${flag}`);
      const key = VALUE_FLAGS[flag];
      if (key === 'set') a.set.push(value);
      else a.flags.set(key, value);
    } else if (flag in BOOL_FLAGS) {
      a.flags.set(BOOL_FLAGS[flag], inline ?? true);
    } else {
      throw new UsageError(`unknown flag: ${flag}`);
    }
  }
  return a;
}

const flagStr = (a: Args, k: string): string | undefined => {
  const v = a.flags.get(k);
  return typeof v === 'string' ? v : undefined;
};
const flagBool = (a: Args, k: string): boolean => {
  const v = a.flags.get(k);
  return v === true || v === 'true';
};

/** Go durations: "300s", "5m", "1m30s", "500ms", "1h"; a bare number is read as seconds. */
export function parseDuration(s: string): number {
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const units: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1, us: 0.001, 'µs': 0.001, ns: 0.000001 };
  const re = /(\d+(?:\.\d+)?)(ms|us|µs|ns|h|m|s)/gy;
  let ms = 0;
  let end = 0;
  for (let m = re.exec(s); m; m = re.exec(s)) {
    ms += Number(m[1]) * units[m[2]];
    end = re.lastIndex;
  }
  if (!s || end !== s.length) throw new UsageError(`invalid argument "${s}" for "--readiness-timeout" flag: time: invalid duration "${s}"`);
  return ms;
}

/** Like Go's time.Duration.String(): 5m0s, 5s, 1m30s, 1h0m0s, 500ms. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  const totalS = ms / 1000;
  const h = Math.floor(totalS / 3600);
  const m = Math.floor((totalS - h * 3600) / 60);
  const s = +(totalS - h * 3600 - m * 60).toFixed(3);
  if (h) return `${h}h${m}m${s}s`;
  if (m) return `${m}m${s}s`;
  return `${s}s`;
}

// ------------------------------------------------------------------------------------------------ manifests

export type Component = 'Base' | 'Pilot' | 'IngressGateways' | 'EgressGateways';
export const COMPONENT_TITLES: Record<Component, string> = {
  Base: 'Istio core',
  Pilot: 'Istiod',
  IngressGateways: 'Ingress gateways',
  EgressGateways: 'Egress gateways',
};

export interface InstallPlan {
  version: string;
  /** Objects per component, in apply order. */
  components: Array<{ component: Component; objects: Obj[]; deployments: string[] }>;
  /** The IstioOperator saved as installed-state after a successful install. */
  installedState: Obj;
  /** Everything `x uninstall --purge` deletes (whatever the env toggles), installed-state first. */
  purge: Obj[];
}

function loadDocs(file: string): Obj[] {
  const docs = yaml.loadAll(readFileSync(file, 'utf8')) as unknown[];
  return docs.filter((d): d is Obj => !!d && typeof d === 'object' && 'kind' in (d as object) && 'apiVersion' in (d as object));
}

const objKey = (o: Obj) => `${o.apiVersion.split('/').length > 1 ? o.apiVersion.split('/')[0] : ''}/${o.kind}/${o.metadata.namespace ?? ''}/${o.metadata.name}`;

/** webhooks[].failurePolicy, with the API default (v1beta1: Ignore, v1: Fail) when unset. */
function failurePolicies(o: Obj): string[] {
  const dflt = o.apiVersion.endsWith('/v1beta1') ? 'Ignore' : 'Fail';
  return ((o.webhooks ?? []) as any[]).map((w) => w.failurePolicy ?? dflt);
}

function setPath(target: any, dotted: string, raw: string): void {
  const parts = dotted.split('.');
  let t = target;
  for (const p of parts.slice(0, -1)) {
    if (typeof t[p] !== 'object' || t[p] === null) t[p] = {};
    t = t[p];
  }
  let value: unknown = raw;
  if (raw === 'true' || raw === 'false') value = raw === 'true';
  else if (/^-?\d+(\.\d+)?$/.test(raw)) value = Number(raw);
  t[parts[parts.length - 1]] = value;
}

function gatewayObjects(kind: 'ingress' | 'egress', version: string, hub: string): { objects: Obj[]; deployment: string } {
  const name = `istio-${kind}gateway`;
  const istio = `${kind}gateway`;
  const labels = { app: name, istio, release: 'istio', 'istio.io/rev': 'default' };
  const sa = `${name}-service-account`;
  const ports =
    kind === 'ingress'
      ? [8080, 8443, 31400, 15443, 15090, 15021]
      : [8080, 8443, 15443, 15090];
  const objects: Obj[] = [
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: sa, namespace: ISTIO_NAMESPACE, labels: { ...labels } } },
    {
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name, namespace: ISTIO_NAMESPACE, labels: { ...labels } },
      spec: {
        replicas: 1,
        selector: { matchLabels: { app: name, istio } },
        strategy: { rollingUpdate: { maxSurge: '100%', maxUnavailable: '25%' } },
        template: {
          metadata: {
            labels: { ...labels, chart: 'gateways', heritage: 'Tiller', 'service.istio.io/canonical-name': name, 'service.istio.io/canonical-revision': 'latest' },
            annotations: { 'prometheus.io/path': '/stats/prometheus', 'prometheus.io/port': '15020', 'prometheus.io/scrape': 'true', 'sidecar.istio.io/inject': 'false' },
          },
          spec: {
            serviceAccountName: sa,
            securityContext: { runAsUser: 1337, runAsGroup: 1337, runAsNonRoot: true, fsGroup: 1337 },
            containers: [
              {
                name: 'istio-proxy',
                image: `${hub}/proxyv2:${version}`,
                args: ['proxy', 'router', '--domain', '$(POD_NAMESPACE).svc.cluster.local', '--proxyLogLevel=warning', '--proxyComponentLogLevel=misc:error', '--log_output_level=default:info', '--serviceCluster', name],
                ports: ports.map((p) => ({ containerPort: p, protocol: 'TCP' })),
                readinessProbe: { httpGet: { path: '/healthz/ready', port: 15021, scheme: 'HTTP' }, initialDelaySeconds: 1, periodSeconds: 2, failureThreshold: 30 },
                resources: { requests: { cpu: '10m', memory: '40Mi' }, limits: { cpu: '2000m', memory: '1024Mi' } },
                env: [
                  { name: 'POD_NAME', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.name' } } },
                  { name: 'POD_NAMESPACE', valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } } },
                  { name: 'ISTIO_META_ROUTER_MODE', value: 'sni-dnat' },
                ],
              },
            ],
          },
        },
      },
    },
  ];
  if (kind === 'ingress') {
    // Reconstructed from the chart + demo profile; not part of a real release, so read from FIXTURES directly.
    objects.push(...loadDocs(path.join(FIXTURES, 'rendered', 'demo-istio-ingressgateway-service.yaml')));
  } else {
    objects.push({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: ISTIO_NAMESPACE, labels: { ...labels } },
      spec: {
        type: 'ClusterIP',
        selector: { app: name, istio },
        ports: [
          { name: 'http2', port: 80, targetPort: 8080, protocol: 'TCP' },
          { name: 'https', port: 443, targetPort: 8443, protocol: 'TCP' },
          { name: 'tls', port: 15443, targetPort: 15443, protocol: 'TCP' },
        ],
      },
    });
  }
  return { objects, deployment: name };
}

/**
 * What install applies, read from <releaseDir>/manifests (the rendered 1.8.4 charts):
 *  - Base: CRDs of crd-all.gen.yaml and gen-istio-cluster.yaml (deduplicated), cluster RBAC and ServiceAccounts,
 *    and the ValidatingWebhookConfiguration — kept because its failurePolicy is Ignore in 1.8.4 (a
 *    configuration whose failurePolicy is Fail would be left out unless STANDIN_WITH_INJECTOR_WEBHOOK=1);
 *  - Pilot: gen-istio.yaml (istiod Deployment/Service, ConfigMaps, PDB, EnvoyFilters) without the sidecar
 *    injector's MutatingWebhookConfiguration (unless STANDIN_WITH_INJECTOR_WEBHOOK=1) and without the HPA when
 *    the profile sets values.pilot.autoscaleEnabled=false (demo does, so the real demo install has none);
 *    images gcr.io/istio-testing/*:latest are rendered as <hub>/*:<tag> as istioctl does;
 *  - Ingress/Egress gateways: simple Deployments + ServiceAccounts, the reconstructed ingress Service
 *    (FIXTURES/rendered), a ClusterIP egress Service.
 * Every object gets istioctl's owner labels; namespaced objects without a namespace go to istio-system.
 */
export function planInstall(o: { releaseDir?: string; set?: string[]; env?: NodeJS.ProcessEnv } = {}): InstallPlan {
  const env = o.env ?? process.env;
  const releaseDir = o.releaseDir ?? (env.STANDIN_RELEASE_DIR || FIXTURES);
  const charts = path.join(releaseDir, 'manifests', 'charts');
  const withWebhooks = env.STANDIN_WITH_INJECTOR_WEBHOOK === '1';
  const version = env.STANDIN_VERSION || '1.8.4';

  // installed-state spec: the profile's spec, then profile/hub/tag, then --set overrides
  const sets: Array<[string, string]> = (o.set ?? []).map((s) => {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new UsageError(`--set must be key=value, got "${s}"`);
    return [s.slice(0, eq), s.slice(eq + 1)];
  });
  const profile = sets.filter(([k]) => k === 'profile').pop()?.[1] ?? 'default';
  const profileFile = path.join(releaseDir, 'manifests', 'profiles', `${profile}.yaml`);
  const profileSpec = existsSync(profileFile) ? ((yaml.load(readFileSync(profileFile, 'utf8')) as any)?.spec ?? {}) : {};
  const spec: any = { profile, hub: HUB, tag: version, ...structuredClone(profileSpec) };
  for (const [k, v] of sets) setPath(spec, k.replace(/^spec\./, ''), v);
  const hub = String(spec.hub);
  const tag = String(spec.tag);

  const ownerLabels = (component: Component) => ({
    'install.operator.istio.io/owning-resource': 'installed-state',
    'install.operator.istio.io/owning-resource-namespace': ISTIO_NAMESPACE,
    'operator.istio.io/component': component,
    'operator.istio.io/managed': 'Reconcile',
    'operator.istio.io/version': version,
  });
  const seen = new Set<string>();
  const purge: Obj[] = [];
  const components: InstallPlan['components'] = [];
  const add = (component: Component, objs: Obj[], keep: (o: Obj) => boolean, deployments: string[]) => {
    const objects: Obj[] = [];
    for (const obj of objs) {
      const key = objKey(obj);
      if (seen.has(key)) continue;
      seen.add(key);
      obj.metadata.labels = { ...(obj.metadata.labels ?? {}), ...ownerLabels(component) };
      purge.push(obj);
      if (keep(obj)) objects.push(obj);
    }
    components.push({ component, objects, deployments });
  };

  const base = [...loadDocs(path.join(charts, 'base', 'crds', 'crd-all.gen.yaml')), ...loadDocs(path.join(charts, 'base', 'files', 'gen-istio-cluster.yaml'))];
  add('Base', base, (obj) => obj.kind !== 'ValidatingWebhookConfiguration' || withWebhooks || !failurePolicies(obj).includes('Fail'), []);

  const pilot = loadDocs(path.join(charts, 'istio-control', 'istio-discovery', 'files', 'gen-istio.yaml'));
  for (const obj of pilot) {
    if (obj.kind === 'Deployment') {
      for (const c of [...(obj.spec?.template?.spec?.containers ?? []), ...(obj.spec?.template?.spec?.initContainers ?? [])]) {
        c.image = String(c.image).replace(/^gcr\.io\/istio-testing\/([^:]+):latest$/, `${hub}/$1:${tag}`);
      }
    }
    if (obj.kind === 'ConfigMap' && typeof obj.data?.values === 'string') {
      obj.data.values = obj.data.values.replace('"hub": "gcr.io/istio-testing"', `"hub": "${hub}"`).replace('"tag": "latest"', `"tag": "${tag}"`);
    }
  }
  const autoscale = spec.values?.pilot?.autoscaleEnabled !== false;
  add(
    'Pilot',
    pilot,
    (obj) =>
      !(obj.kind === 'MutatingWebhookConfiguration' && !withWebhooks) &&
      !(obj.kind === 'ValidatingWebhookConfiguration' && !withWebhooks && failurePolicies(obj).includes('Fail')) &&
      !(obj.kind === 'HorizontalPodAutoscaler' && !autoscale),
    pilot.filter((d) => d.kind === 'Deployment').map((d) => d.metadata.name),
  );

  const ingress = gatewayObjects('ingress', tag, hub);
  add('IngressGateways', ingress.objects, () => true, [ingress.deployment]);
  const egress = gatewayObjects('egress', tag, hub);
  add('EgressGateways', egress.objects, () => true, [egress.deployment]);

  const installedState: Obj = {
    apiVersion: 'install.istio.io/v1alpha1',
    kind: 'IstioOperator',
    metadata: { name: 'installed-state', namespace: ISTIO_NAMESPACE, annotations: { 'install.istio.io/ignoreReconcile': 'true' } },
    spec,
  };
  // Custom resources (installed-state, EnvoyFilters) go before their CRDs, workloads before RBAC.
  const order = (o: Obj) => (o.kind === 'CustomResourceDefinition' ? 3 : o.kind.endsWith('WebhookConfiguration') ? 0 : /Role|ServiceAccount/.test(o.kind) ? 2 : o.apiVersion.includes('istio.io') ? 0 : 1);
  purge.sort((a, b) => order(a) - order(b));
  return { version, components, installedState, purge: [installedState, ...purge] };
}

// ------------------------------------------------------------------------------------------------ API client

interface Resp {
  status: number;
  body: string;
  json(): any;
}

interface ApiResource {
  path: string; // /api/v1 or /apis/<group>/<version>
  plural: string;
  namespaced: boolean;
}

class Api {
  private agent: https.Agent;
  private discovery = new Map<string, { at: number; resources: any[] }>();

  private constructor(
    private server: string,
    private reqOpts: https.RequestOptions,
  ) {
    // applyToHTTPSOptions builds an agent from the kubeconfig (CA, client cert, tls-server-name, proxy-url…)
    this.agent = (reqOpts.agent as https.Agent | undefined) ?? new https.Agent({ ca: reqOpts.ca, cert: reqOpts.cert, key: reqOpts.key });
  }

  static async connect(a: Args): Promise<Api> {
    // loaded lazily: importing client-node takes ~1 s, and `version` / usage errors do not need it
    const { KubeConfig } = await import('@kubernetes/client-node');
    const kc = new KubeConfig();
    const file = flagStr(a, 'kubeconfig');
    if (file) kc.loadFromFile(file);
    else kc.loadFromDefault();
    const context = flagStr(a, 'context');
    if (context) {
      if (!kc.getContextObject(context)) throw new Error(`context "${context}" does not exist`);
      kc.setCurrentContext(context);
    }
    const cluster = kc.getCurrentCluster();
    if (!cluster) throw new Error('invalid configuration: no configuration has been provided');
    const opts: https.RequestOptions = {};
    await kc.applyToHTTPSOptions(opts);
    return new Api(cluster.server, opts);
  }

  close(): void {
    this.agent.destroy?.();
  }

  request(method: string, p: string, body?: unknown, contentType = 'application/json'): Promise<Resp> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const headers: Record<string, string | number> = { ...((this.reqOpts.headers as Record<string, string>) ?? {}), Accept: 'application/json' };
      if (data !== undefined) {
        headers['Content-Type'] = contentType;
        headers['Content-Length'] = Buffer.byteLength(data);
      }
      const url = new URL(p, this.server);
      const req = https.request(url, { ...this.reqOpts, method, headers, agent: this.agent, timeout: 30_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body: text, json: () => JSON.parse(text) });
        });
      });
      req.on('timeout', () => req.destroy(new Error(`${method} ${url.href}: timeout`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  /** REST mapping of apiVersion/kind via discovery; retried for up to waitMs (CRDs just established). */
  async resource(apiVersion: string, kind: string, waitMs = 0): Promise<ApiResource | undefined> {
    const gvPath = apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
    const deadline = Date.now() + waitMs;
    for (;;) {
      let cached = this.discovery.get(gvPath);
      if (!cached || (!cached.resources.some((r) => r.kind === kind) && Date.now() - cached.at > 300)) {
        const r = await this.request('GET', gvPath);
        cached = { at: Date.now(), resources: r.status === 200 ? (r.json().resources ?? []) : [] };
        this.discovery.set(gvPath, cached);
      }
      const res = cached.resources.find((r) => r.kind === kind && !String(r.name).includes('/'));
      if (res) return { path: gvPath, plural: res.name, namespaced: Boolean(res.namespaced) };
      if (Date.now() >= deadline) return undefined;
      await sleep(300);
    }
  }

  async objectPath(o: Obj, waitMs = 0): Promise<string | undefined> {
    const r = await this.resource(o.apiVersion, o.kind, waitMs);
    if (!r) return undefined;
    const ns = r.namespaced ? `/namespaces/${encodeURIComponent(o.metadata.namespace ?? ISTIO_NAMESPACE)}` : '';
    return `${r.path}${ns}/${r.plural}/${encodeURIComponent(o.metadata.name)}`;
  }

  /** Server-side apply (field manager istioctl, force). */
  async apply(o: Obj, waitMs = 0): Promise<void> {
    const r = await this.resource(o.apiVersion, o.kind, waitMs);
    if (!r) throw new Error(`no matches for kind "${o.kind}" in version "${o.apiVersion}"`);
    const obj = structuredClone(o);
    if (r.namespaced) obj.metadata.namespace ??= ISTIO_NAMESPACE;
    else delete obj.metadata.namespace;
    const p = (await this.objectPath(obj))!;
    const res = await this.request('PATCH', `${p}?fieldManager=${FIELD_MANAGER}&force=true`, obj, 'application/apply-patch+yaml');
    if (res.status !== 200 && res.status !== 201) throw new Error(`failed to apply ${o.kind}/${obj.metadata.namespace ? `${obj.metadata.namespace}/` : ''}${o.metadata.name}: ${res.status} ${apiMessage(res)}`);
  }
}

function apiMessage(r: Resp): string {
  try {
    return r.json().message ?? r.body;
  } catch {
    return r.body.slice(0, 300);
  }
}

// ------------------------------------------------------------------------------------------------ install

function deploymentReady(d: any): boolean {
  const want = d.spec?.replicas ?? 1;
  const st = d.status ?? {};
  return (
    (st.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) &&
    (st.updatedReplicas ?? 0) >= want &&
    (st.readyReplicas ?? 0) >= want &&
    (st.availableReplicas ?? 0) >= want
  );
}

async function waitCrdsEstablished(api: Api, names: string[], deadline: number): Promise<string[]> {
  let pending = names;
  for (;;) {
    const next: string[] = [];
    for (const n of pending) {
      const r = await api.request('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${n}`);
      const established = r.status === 200 && (r.json().status?.conditions ?? []).some((c: any) => c.type === 'Established' && c.status === 'True');
      if (!established) next.push(n);
    }
    pending = next;
    if (!pending.length || Date.now() >= deadline) return pending;
    await sleep(200);
  }
}

/** Waits for the Deployments; returns those not ready by the deadline. */
async function waitDeployments(api: Api, names: string[], deadline: number, title: string): Promise<string[]> {
  let announced = false;
  for (;;) {
    const notReady: string[] = [];
    for (const n of names) {
      const r = await api.request('GET', `/apis/apps/v1/namespaces/${ISTIO_NAMESPACE}/deployments/${n}`);
      if (r.status !== 200 || !deploymentReady(r.json())) notReady.push(n);
    }
    if (!notReady.length || Date.now() >= deadline) return notReady;
    if (!announced) {
      announced = true;
      out(`- Processing resources for ${title}. Waiting for ${notReady.map((n) => `Deployment/${ISTIO_NAMESPACE}/${n}`).join(', ')}`);
    }
    await sleep(500);
  }
}

async function confirm(question: string): Promise<boolean> {
  process.stdout.write(question);
  if (process.stdin.isTTY !== true && process.stdin.readableEnded) return false;
  return new Promise((resolve) => {
    let buf = '';
    const done = (v: boolean) => {
      process.stdin.pause();
      process.stdin.removeAllListeners('data');
      resolve(v);
    };
    process.stdin.setEncoding('utf8');
    process.stdin.on('data', (c: string) => {
      buf += c;
      if (buf.includes('\n')) done(/^y(es)?$/i.test(buf.split('\n')[0].trim()));
    });
    process.stdin.once('end', () => done(/^y(es)?$/i.test(buf.trim())));
  });
}

async function faultToggles(first: string): Promise<number | undefined> {
  if (process.env.STANDIN_HANG === '1') {
    out(first);
    setInterval(() => {}, 1 << 30);
    await new Promise(() => {});
  }
  if (process.env.STANDIN_FAIL === '1') return -1;
  return undefined;
}

async function install(a: Args): Promise<number> {
  const timeoutMs = parseDuration(flagStr(a, 'readiness-timeout') ?? '300s');
  const plan = planInstall({ set: a.set });
  const profile = plan.installedState.spec.profile;
  if (!flagBool(a, 'y')) {
    const titles = plan.components.map((c) => `"${COMPONENT_TITLES[c.component]}"`).join(' ');
    if (!(await confirm(`This will install the Istio ${plan.version} ${profile} profile with [${titles}] components into the cluster. Proceed? (y/N) `))) {
      out('Cancelled.');
      return 1;
    }
  }
  if ((await faultToggles('- Processing resources for Istio core.')) === -1) {
    out(JWT_WARNING);
    out('- Processing resources for Istio core.');
    out('✘ Istio core encountered an error: boom');
    err('Error: failed to install manifests: boom');
    return 1;
  }

  const api = await Api.connect(a);
  try {
    out(JWT_WARNING);
    const ns = await api.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ISTIO_NAMESPACE } });
    if (ns.status !== 201 && ns.status !== 409) throw new Error(`failed to create namespace ${ISTIO_NAMESPACE}: ${ns.status} ${apiMessage(ns)}`);

    const deadline = Date.now() + timeoutMs;
    const failures: string[] = [];
    const runComponent = async (c: InstallPlan['components'][number]): Promise<void> => {
      const title = COMPONENT_TITLES[c.component];
      try {
        // CRDs first, then wait for them to be Established before anything that might be a custom resource.
        const crds = c.objects.filter((o) => o.kind === 'CustomResourceDefinition');
        for (const o of crds) await api.apply(o);
        if (crds.length) {
          const pending = await waitCrdsEstablished(api, crds.map((o) => o.metadata.name), Math.max(deadline, Date.now() + 30_000));
          if (pending.length) throw new Error(`failed to wait for resource: CRDs not established: ${pending.join(', ')}`);
        }
        for (const o of c.objects.filter((o) => o.kind !== 'CustomResourceDefinition')) await api.apply(o, 30_000);
        const notReady = await waitDeployments(api, c.deployments, deadline, title);
        if (notReady.length) {
          failures.push(title);
          out(
            `✘ ${title} encountered an error: failed to wait for resource: resources not ready after ${formatDuration(timeoutMs)}: timed out waiting for the condition\n` +
              notReady.map((n) => `Deployment/${ISTIO_NAMESPACE}/${n}`).join('\n'),
          );
          return;
        }
        out(`✔ ${title} installed`);
      } catch (e) {
        failures.push(title);
        out(`✘ ${title} encountered an error: ${(e as Error).message}`);
      }
    };
    const byName = (n: Component) => plan.components.find((c) => c.component === n)!;
    // istioctl's component dependencies: Base → Pilot → (IngressGateways ∥ EgressGateways).
    await runComponent(byName('Base'));
    await runComponent(byName('Pilot'));
    await Promise.all([runComponent(byName('IngressGateways')), runComponent(byName('EgressGateways'))]);
    if (failures.length) {
      out('- Pruning removed resources');
      err('Error: failed to install manifests: errors occurred during operation');
      return 1;
    }
    await api.apply(plan.installedState, 30_000);
    out('✔ Installation complete');
    return 0;
  } finally {
    api.close();
  }
}

// ------------------------------------------------------------------------------------------------ uninstall

async function uninstall(a: Args): Promise<number> {
  if (!flagBool(a, 'purge') && !flagStr(a, 'revision') && !flagStr(a, 'filename')) {
    throw new UsageError('at least one of the --revision (or --set revision=<revision>), --filename or --purge flags must be set');
  }
  if (!flagBool(a, 'y')) {
    out('All Istio resources will be pruned from the cluster');
    if (!(await confirm('Proceed? (y/N) '))) {
      out('Cancelled.');
      return 1;
    }
  }
  if ((await faultToggles('- Removing Istio control plane')) === -1) {
    out('All Istio resources will be pruned from the cluster');
    err('Error: failed to prune resources: boom');
    return 1;
  }
  const plan = planInstall({ set: a.set, env: { ...process.env, STANDIN_WITH_INJECTOR_WEBHOOK: '1' } });
  const api = await Api.connect(a);
  try {
    const deleted: string[] = [];
    for (const o of plan.purge) {
      const p = await api.objectPath(o);
      if (!p) continue; // kind not served (e.g. the IstioOperator CRD is gone): nothing to delete
      const r = await api.request('DELETE', p, { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background' });
      if (r.status === 404) continue;
      if (r.status !== 200 && r.status !== 202) throw new Error(`failed to delete ${o.kind}/${o.metadata.name}: ${r.status} ${apiMessage(r)}`);
      const ns = (await api.resource(o.apiVersion, o.kind))?.namespaced ? (o.metadata.namespace ?? ISTIO_NAMESPACE) : '';
      out(`  Removed ${o.kind}:${ns}:${o.metadata.name}.`);
      deleted.push(p);
    }
    // Wait (bounded) until the objects are really gone, so callers see a clean cluster when we return.
    const deadline = Date.now() + 60_000;
    for (const p of deleted) {
      while (Date.now() < deadline && (await api.request('GET', p)).status === 200) await sleep(200);
    }
    out('✔ Uninstall complete');
    return 0;
  } finally {
    api.close();
  }
}

// ------------------------------------------------------------------------------------------------ main

export async function main(argv: string[]): Promise<number> {
  if (process.env.STANDIN_LOG) appendFileSync(process.env.STANDIN_LOG, `${JSON.stringify(argv)}\n`);
  try {
    const a = parseArgs(argv);
    const [cmd, sub] = a.commands;
    if (cmd === 'version' && a.commands.length === 1) {
      const remote = a.flags.get('remote');
      if (remote === 'false' || flagBool(a, 'short')) out(standinVersion());
      else out(`client version: ${standinVersion()}`);
      return 0;
    }
    if ((cmd === 'install' || cmd === 'apply') && a.commands.length === 1) return await install(a);
    if ((cmd === 'x' || cmd === 'experimental') && sub === 'uninstall' && a.commands.length === 2) return await uninstall(a);
    err('Error: unknown command');
    return EXIT_USAGE;
  } catch (e) {
    if (e instanceof UsageError) {
      err(`Error: ${e.message}`);
      return EXIT_USAGE;
    }
    err(`Error: ${(e as Error).message}`);
    return 1;
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      err(`Error: ${(e as Error)?.stack ?? e}`);
      process.exit(1);
    },
  );
}
