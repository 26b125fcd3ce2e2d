/**
 * A STAND-IN for istioctl 1.8.4 — not the real binary, which cannot run in meshdemo's tests. The release
 * archive built by release-archive.ts ships a bin/istioctl sh script that execs this file with Node.
 * Every behaviour meshdemo can observe follows istio/istio at tag 1.8.4; the file is cited beside each one.
 *
 *   istioctl version --remote=false                      prints the version (1.8.4, or env STANDIN_VERSION)
 *   istioctl install --set profile=demo [--set k=v]… -y [--readiness-timeout 300s] [--kubeconfig f] [--context c]
 *       creates istio-system (labelled istio-injection=disabled) when missing, applies the real rendered 1.8.4
 *       control plane from the release's manifests/charts (base CRDs, cluster RBAC, istiod) plus the demo
 *       gateways, component by component (Base → Istiod → gateways), each with its own readiness wait bounded by
 *       WAIT_FOR_RESOURCES_TIMEOUT or 300 s — NOT by --readiness-timeout, which 1.8.4 ignores — and saves the
 *       IstioOperator "installed-state" only after a healthy install. Progress goes to stderr the way pb v3
 *       writes it without a TTY; the JWT note goes to stdout. A component not ready in time prints the real
 *       "✘ … resources not ready after …" lines and the command exits 1.
 *   istioctl x uninstall --purge -y [--kubeconfig f] [--context c]
 *       deletes every IstioOperator and every object labelled operator.istio.io/component, cluster-wide
 *       (the istio-system namespace stays, as with the real one).
 * Anything else: "Error: unknown command" on stderr, exit 64.
 *
 * Env:
 *   WAIT_FOR_RESOURCES_TIMEOUT=<Go duration>  the per-component readiness wait, as in real 1.8.4 (default 300s)
 *   STANDIN_VERSION=<v>                 version reported and stamped (tag / labels); default 1.8.4
 *   STANDIN_RELEASE_DIR=<dir>           the release tree whose manifests/ are applied (set by bin/istioctl); default FIXTURES
 *   STANDIN_LOG=<file>                  append one line per invocation: JSON array of argv
 *   STANDIN_ENV_LOG=<file>              append one line per invocation: {"argv": [...], "env": {<RECORDED_ENV that are set>}}
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
    // reconciler.go getCoreOwnerLabels: istioctl's own version (not the image tag), and the revision
    'operator.istio.io/version': version,
    'istio.io/rev': spec.revision ? String(spec.revision) : 'default',
  });
  const seen = new Set<string>();
  const components: InstallPlan['components'] = [];
  const add = (component: Component, objs: Obj[], keep: (o: Obj) => boolean, deployments: string[]) => {
    const objects: Obj[] = [];
    for (const obj of objs) {
      const key = objKey(obj);
      if (seen.has(key)) continue;
      seen.add(key);
      obj.metadata.labels = { ...(obj.metadata.labels ?? {}), ...ownerLabels(component) };
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
    // operator/cmd/mesh/install.go savedIOPName: "installed-state", plus "-<revision>" when spec.revision is set
    metadata: { name: spec.revision ? `installed-state-${spec.revision}` : 'installed-state', namespace: ISTIO_NAMESPACE, annotations: { 'install.istio.io/ignoreReconcile': 'true' } },
    spec,
  };
  return { version, components, installedState };
}

// ------------------------------------------------------------------------------------------------ API client

/**
 * client-go tools/clientcmd loader.go ResolveLocalPaths, as istioctl (client-go) loads a kubeconfig: relative
 * certificate-authority, client-certificate, client-key and tokenFile are relative to the kubeconfig file's
 * directory. (client-node reads them from the working directory, knows only "token-file" and does not trim it.)
 */
function resolveKubeconfigPaths(cfg: any, dir: string): any {
  const abs = (p: unknown) => (typeof p === 'string' && p !== '' && !path.isAbsolute(p) ? path.join(dir, p) : p);
  for (const c of cfg?.clusters ?? []) if (c?.cluster?.['certificate-authority']) c.cluster['certificate-authority'] = abs(c.cluster['certificate-authority']);
  for (const u of cfg?.users ?? []) {
    const user = u?.user;
    if (!user) continue;
    for (const k of ['client-certificate', 'client-key']) if (user[k]) user[k] = abs(user[k]);
    // client-go transport/token_source.go: the file's content, whitespace trimmed
    if (user.tokenFile && !user.token) user.token = readFileSync(String(abs(user.tokenFile)), 'utf8').trim();
    delete user.tokenFile;
  }
  return cfg;
}

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
    const file = flagStr(a, 'kubeconfig') ?? (process.env.KUBECONFIG && !process.env.KUBECONFIG.includes(path.delimiter) ? process.env.KUBECONFIG : undefined);
    if (file) kc.loadFromString(yaml.dump(resolveKubeconfigPaths(yaml.load(readFileSync(file, 'utf8')), path.dirname(path.resolve(file)))));
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

/**
 * istioctl's progress display: operator/pkg/util/progress/progress.go drawing with github.com/cheggaaa/pb/v3
 * v3.0.5 (v3/pb.go). pb writes to os.Stderr; without a TTY progress.go sets its ReturnSymbol to "\n" and pb
 * writes that symbol BEFORE each message, so every message starts a new line, no line is terminated, there is
 * no colour, and whatever is printed next (cobra's "Error: …") lands on the same line as the last message.
 * Identical consecutive messages are not repeated (progress.go SetMessage).
 */
class ProgressLog {
  private components = new Map<string, string[]>(); // user-facing name → resources it waits for
  private template = '';

  private write(message: string): void {
    if (message === this.template) return;
    this.template = message;
    process.stderr.write(`\n${message}`);
  }

  private status(): string {
    const comps = [...this.components.keys()].sort();
    const waiting = [...this.components.values()].flat().sort();
    return `- Processing resources for ${comps.join(', ')}.${waiting.length ? ` Waiting for ${waiting.join(', ')}` : ''}`;
  }

  /** ManifestLog.ReportProgress: after each applied object. */
  progress(component: string): void {
    if (!this.components.has(component)) this.components.set(component, []);
    this.write(this.status());
  }

  /** ManifestLog.ReportWaiting: at each readiness poll that found resources not ready. */
  waiting(component: string, resources: string[]): void {
    this.components.set(component, resources);
    this.write(this.status());
  }

  finished(component: string): void {
    this.components.delete(component);
    this.write(`✔ ${component} installed`);
  }

  error(component: string, message: string): void {
    this.components.delete(component);
    this.write(`✘ ${component} encountered an error: ${message}`);
  }

  /** progress.go SetState: StatePruning / StateComplete / StateUninstallComplete. */
  state(message: '- Pruning removed resources' | '✔ Installation complete' | '✔ Uninstall complete'): void {
    this.template = message;
    process.stderr.write(`\n${message}`);
  }
}

/** operator/pkg/helmreconciler/wait.go deploymentsReady: the Deployment's ready replicas against spec.replicas. */
function deploymentReady(d: any): boolean {
  const want = d.spec?.replicas ?? 1;
  const st = d.status ?? {};
  return (st.observedGeneration ?? 0) >= (d.metadata?.generation ?? 0) && (st.updatedReplicas ?? 0) >= want && (st.readyReplicas ?? 0) >= want;
}

/** wait.go: cRDPollTimeout — every component's CRDs get a fixed 60 s to be Established, polled every 500 ms. */
export const CRD_POLL_TIMEOUT_MS = 60_000;
/** wait.go: defaultWaitResourceTimeout. */
export const DEFAULT_WAIT_RESOURCE_TIMEOUT_MS = 300_000;

async function waitCrdsEstablished(api: Api, names: string[]): Promise<void> {
  const deadline = Date.now() + CRD_POLL_TIMEOUT_MS;
  for (;;) {
    let pending = false;
    for (const n of names) {
      const r = await api.request('GET', `/apis/apiextensions.k8s.io/v1/customresourcedefinitions/${n}`);
      if (!(r.status === 200 && (r.json().status?.conditions ?? []).some((c: any) => c.type === 'Established' && c.status === 'True'))) {
        pending = true;
        break;
      }
    }
    if (!pending) return;
    if (Date.now() >= deadline) throw new Error('failed to verify CRD creation: timed out waiting for the condition');
    await sleep(500);
  }
}

/**
 * wait.go WaitForResources: checks once, then polls every 2 s for up to waitTimeout; on timeout the error is
 * "resources not ready after <d>: timed out waiting for the condition\n<Kind/ns/name lines>".
 */
async function waitDeployments(api: Api, names: string[], waitMs: number, component: string, log: ProgressLog): Promise<void> {
  const notReady = async () => {
    const out: string[] = [];
    for (const n of names) {
      const r = await api.request('GET', `/apis/apps/v1/namespaces/${ISTIO_NAMESPACE}/deployments/${n}`);
      if (r.status !== 200 || !deploymentReady(r.json())) out.push(`Deployment/${ISTIO_NAMESPACE}/${n}`);
    }
    if (out.length) log.waiting(component, out);
    return out;
  };
  if (!(await notReady()).length) return;
  const deadline = Date.now() + waitMs;
  let pending: string[] = [];
  for (;;) {
    await sleep(Math.min(2000, Math.max(0, deadline - Date.now())));
    pending = await notReady();
    if (!pending.length) return;
    if (Date.now() >= deadline) break;
  }
  throw new Error(`resources not ready after ${formatDuration(waitMs)}: timed out waiting for the condition\n${pending.join('\n')}`);
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
    process.stderr.write(`\n${first}`);
    setInterval(() => {}, 1 << 30);
    await new Promise(() => {});
  }
  if (process.env.STANDIN_FAIL === '1') return -1;
  return undefined;
}

/**
 * The wait per component. operator/pkg/helmreconciler/reconciler.go NewHelmReconciler (1.8.4) overwrites
 * Options.WaitTimeout with WAIT_FOR_RESOURCES_TIMEOUT when set (time.ParseDuration; an invalid value logs a
 * warning and falls back) or with wait.go's defaultWaitResourceTimeout (300 s) otherwise: the
 * --readiness-timeout flag (operator/cmd/mesh/install.go) is parsed and then ignored (istio/istio#30221,
 * honoured from 1.9).
 */
export function waitTimeoutMs(env: NodeJS.ProcessEnv = process.env): number {
  const raw = env.WAIT_FOR_RESOURCES_TIMEOUT;
  if (raw === undefined) return DEFAULT_WAIT_RESOURCE_TIMEOUT_MS;
  try {
    if (/^\d+(\.\d+)?$/.test(raw) && raw !== '0') throw new UsageError('missing unit'); // Go: "time: missing unit in duration"
    return parseDuration(raw);
  } catch {
    err(`warn\tinvalid env variable value: ${raw} for 'WAIT_FOR_RESOURCES_TIMEOUT'! falling back to default value...`);
    return DEFAULT_WAIT_RESOURCE_TIMEOUT_MS;
  }
}

async function install(a: Args): Promise<number> {
  parseDuration(flagStr(a, 'readiness-timeout') ?? '300s'); // validated like cobra's DurationVar, then unused (see waitTimeoutMs)
  const waitMs = waitTimeoutMs();
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
    process.stderr.write('\n- Processing resources for Istio core.\n✘ Istio core encountered an error: boom\n- Pruning removed resources');
    err('Error: failed to install manifests: boom');
    return 1;
  }

  const api = await Api.connect(a);
  try {
    // operator/pkg/manifest/shared.go: the first-party JWT note, on stdout (clog LogAndPrint) — only when the cluster
    // does not serve serviceaccounts/token (operator/pkg/util/k8s.go DetectSupportedJWTPolicy)
    const core = await api.request('GET', '/api/v1');
    if (!(core.status === 200 && (core.json().resources ?? []).some((r: any) => r.name === 'serviceaccounts/token'))) out(JWT_WARNING);
    // operator/cmd/mesh/shared.go createNamespace: only when missing, labelled istio-injection=disabled
    const existing = await api.request('GET', `/api/v1/namespaces/${ISTIO_NAMESPACE}`);
    if (existing.status === 404) {
      const ns = await api.request('POST', '/api/v1/namespaces', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ISTIO_NAMESPACE, labels: { 'istio-injection': 'disabled' } } });
      if (ns.status !== 201 && ns.status !== 409) throw new Error(`failed to create namespace ${ISTIO_NAMESPACE}: ${ns.status} ${apiMessage(ns)}`);
    } else if (existing.status !== 200) {
      throw new Error(`failed to check if namespace ${ISTIO_NAMESPACE} exists: ${existing.status} ${apiMessage(existing)}`);
    }

    const log = new ProgressLog();
    let failed = false;
    // operator/pkg/helmreconciler/apply.go ApplyManifest: CRDs, then everything else, then WaitForResources
    // (CRDs: fixed 60 s; workloads: the wait timeout) — a separate wait per component.
    const runComponent = async (c: InstallPlan['components'][number]): Promise<void> => {
      const title = COMPONENT_TITLES[c.component];
      try {
        const crds = c.objects.filter((o) => o.kind === 'CustomResourceDefinition');
        for (const o of crds) {
          await api.apply(o);
          log.progress(title);
        }
        for (const o of c.objects.filter((o) => o.kind !== 'CustomResourceDefinition')) {
          await api.apply(o, 30_000);
          log.progress(title);
        }
        if (crds.length) await waitCrdsEstablished(api, crds.map((o) => o.metadata.name));
        await waitDeployments(api, c.deployments, waitMs, title, log);
        log.finished(title);
      } catch (e) {
        failed = true;
        log.error(title, `failed to wait for resource: ${(e as Error).message}`);
      }
    };
    const byName = (n: Component) => plan.components.find((c) => c.component === n)!;
    // common.go ComponentDependencies: Base → Pilot → (IngressGateways ∥ EgressGateways); reconciler.go
    // processRecursive unblocks the children even when the parent failed.
    await runComponent(byName('Base'));
    await runComponent(byName('Pilot'));
    await Promise.all([runComponent(byName('IngressGateways')), runComponent(byName('EgressGateways'))]);
    // reconciler.go Reconcile: the pruning state is shown after every reconcile, healthy or not
    log.state('- Pruning removed resources');
    if (failed) {
      // install.go InstallManifests: status != HEALTHY → "errors occurred during operation"; no installed-state
      err('Error: failed to install manifests: errors occurred during operation');
      return 1;
    }
    log.state('✔ Installation complete');
    // install.go: installed-state is saved only after a healthy install (savedIOPName, ignoreReconcile)
    await api.apply(plan.installedState, 30_000);
    return 0;
  } finally {
    api.close();
  }
}

// ------------------------------------------------------------------------------------------------ uninstall

/**
 * What `x uninstall --purge` selects (operator/pkg/helmreconciler/prune.go GetPrunedResources with
 * includeClusterResources): every IstioOperator in every namespace, then every object of
 * NamespacedResources and AllClusterResources, in every namespace, that carries the label
 * operator.istio.io/component — whoever installed it.
 */
const PURGE_KINDS: Array<[apiVersion: string, kind: string]> = [
  ['autoscaling/v2beta1', 'HorizontalPodAutoscaler'],
  ['policy/v1beta1', 'PodDisruptionBudget'],
  ['apps/v1', 'Deployment'],
  ['apps/v1', 'DaemonSet'],
  ['v1', 'Service'],
  ['v1', 'ConfigMap'],
  ['v1', 'PersistentVolumeClaim'],
  ['v1', 'Pod'],
  ['v1', 'Secret'],
  ['v1', 'ServiceAccount'],
  ['rbac.authorization.k8s.io/v1', 'RoleBinding'],
  ['rbac.authorization.k8s.io/v1', 'Role'],
  ['networking.istio.io/v1alpha3', 'DestinationRule'],
  ['networking.istio.io/v1alpha3', 'EnvoyFilter'],
  ['networking.istio.io/v1alpha3', 'Gateway'],
  ['networking.istio.io/v1alpha3', 'VirtualService'],
  ['security.istio.io/v1beta1', 'PeerAuthentication'],
  ['admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration'],
  ['admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration'],
  ['rbac.authorization.k8s.io/v1', 'ClusterRole'],
  ['rbac.authorization.k8s.io/v1', 'ClusterRoleBinding'],
  ['apiextensions.k8s.io/v1', 'CustomResourceDefinition'],
];

async function uninstall(a: Args): Promise<number> {
  // uninstall.go: Args check
  if (!flagBool(a, 'purge') && !flagStr(a, 'revision') && !flagStr(a, 'filename')) {
    throw new UsageError('at least one of the --revision, --filename or --purge flags must be set');
  }
  if (!flagBool(a, 'purge')) throw new UsageError('this stand-in implements only x uninstall --purge');
  // uninstall.go preCheckWarnings: AllResourcesRemovedWarning via LogAndPrint (stdout, one more "\n") with -y
  if (!flagBool(a, 'y')) {
    if (!(await confirm('All Istio resources will be pruned from the cluster\nProceed? (y/N)'))) {
      out('Cancelled.');
      return 1;
    }
  }
  if ((await faultToggles('- Removing Istio control plane')) === -1) {
    out('All Istio resources will be pruned from the cluster\n');
    err('Error: failed to delete control plane resources by revision: boom');
    return 1;
  }
  const api = await Api.connect(a);
  try {
    if (flagBool(a, 'y')) out('All Istio resources will be pruned from the cluster\n');
    const victims: Array<{ path: string; hash: string }> = [];
    const collect = async (apiVersion: string, kind: string, labelSelector?: string) => {
      const r = await api.resource(apiVersion, kind);
      if (!r) return; // not served (the IstioOperator CRD is gone): prune.go skips kinds it cannot list
      const res = await api.request('GET', `${r.path}/${r.plural}${labelSelector ? `?labelSelector=${encodeURIComponent(labelSelector)}` : ''}`);
      if (res.status !== 200) return;
      for (const o of res.json().items ?? []) {
        const ns = o.metadata.namespace ?? '';
        const p = `${r.path}${ns ? `/namespaces/${encodeURIComponent(ns)}` : ''}/${r.plural}/${encodeURIComponent(o.metadata.name)}`;
        // object.go Hash: Kind:namespace:name
        if (!victims.some((v) => v.path === p)) victims.push({ path: p, hash: `${kind}:${ns}:${o.metadata.name}` });
      }
    };
    await collect('install.istio.io/v1alpha1', 'IstioOperator');
    for (const [apiVersion, kind] of PURGE_KINDS) await collect(apiVersion, kind, 'operator.istio.io/component');

    // prune.go DeleteObjectsList: background deletion, "  Removed <hash>." on stdout (LogAndPrintf)
    const deleted: string[] = [];
    const errors: string[] = [];
    for (const v of victims) {
      const r = await api.request('DELETE', v.path, { apiVersion: 'v1', kind: 'DeleteOptions', propagationPolicy: 'Background' });
      if (r.status === 404) out(`object: ${v.hash} is not being deleted because it no longer exists`);
      else if (r.status !== 200 && r.status !== 202) errors.push(`${r.status} ${apiMessage(r)}`);
      else deleted.push(v.path);
      out(`  Removed ${v.hash}.`);
    }
    if (errors.length) {
      err(`Error: failed to delete control plane resources by revision: ${errors.join('\n')}`);
      return 1;
    }
    // Not istioctl: wait (bounded) until the objects are gone, so tests see the end state when it returns.
    const deadline = Date.now() + 60_000;
    for (const p of deleted) {
      while (Date.now() < deadline && (await api.request('GET', p)).status === 200) await sleep(200);
    }
    new ProgressLog().state('✔ Uninstall complete');
    return 0;
  } finally {
    api.close();
  }
}

// ------------------------------------------------------------------------------------------------ main

/** The environment variables istioctl 1.8.4 reads that STANDIN_ENV_LOG records. */
const RECORDED_ENV = ['WAIT_FOR_RESOURCES_TIMEOUT', 'KUBECONFIG'];

export async function main(argv: string[]): Promise<number> {
  if (process.env.STANDIN_LOG) appendFileSync(process.env.STANDIN_LOG, `${JSON.stringify(argv)}\n`);
  if (process.env.STANDIN_ENV_LOG) {
    const env = Object.fromEntries(RECORDED_ENV.filter((k) => process.env[k] !== undefined).map((k) => [k, process.env[k]]));
    appendFileSync(process.env.STANDIN_ENV_LOG, `${JSON.stringify({ argv, env })}\n`);
  }
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
