import fs from 'node:fs';
import path from 'node:path';
import { UsageError } from './core/errors.js';
import { DEFAULT_GATEWAY_HTTP2_NODE_PORT, GATEWAY_NODE_PORTS, gatewayNodePorts } from './kind/config.js';
import { DEFAULT_CLUSTER_NAME, DEFAULT_KIND_MIRROR, parseClusterName } from './kind/pins.js';
import { decimalPort, parseDuration, parseNodeAddress } from './core/options.js';
import { displayUrlArgument, rememberUrlCredentials } from './core/secrets.js';
import { defaultSourceDirs, type SourceDirs } from './images/context.js';
import { SERVICES, type ServiceName } from './images/services.js';

import { DASHBOARDS, DEFAULT_ISTIO_VERSION } from './core/names.js';

export { DASHBOARDS, DEFAULT_ISTIO_VERSION, type Dashboard } from './core/names.js';
export const DEFAULT_ISTIO_MIRROR = 'https://github.com/istio/istio/releases/download';
export const DEFAULT_ADDONS = ['prometheus', 'grafana', 'jaeger', 'kiali'] as const;
export const KNOWN_ADDONS = ['prometheus', 'grafana', 'jaeger', 'kiali', 'zipkin', 'prometheus-operator'] as const;

export const DEFAULT_DASHBOARDS = ['kiali', 'grafana', 'prometheus', 'tracing'];

export { SERVICES, type ServiceName } from './images/services.js';

export interface UpSettings {
  istioVersion: string;
  istioMirror: string;
  istioSha256?: string;
  istioArchive?: string;
  istioSet: string[];
  reinstall: boolean;
  app: boolean;
  addons: string[];
  nodePorts: Record<string, number>;
  nodeAddress?: string;
  registry?: string;
  baseImage: string;
  skipBuild: boolean;
  images: Partial<Record<ServiceName, string>>;
  render?: string | true;
  verify: boolean;
  /** The kind cluster's name, used when up creates or reuses a local cluster (--cluster-name, default meshdemo). */
  clusterName: string;
  /** --local: create (or reuse) the local kind cluster even when a kubeconfig exists. */
  forceLocal: boolean;
  kindMirror: string;
  kindSha256?: string;
  /** The ingress gateway's http2 node port on a kind cluster (--gateway-node-port). */
  gatewayNodePort: number;
  /** Set when up works on a local kind cluster it creates or reuses (src/kind/decide.ts). */
  local?: LocalCluster;
  /** up --traffic <duration>: send orders through the gateway this long at the end. */
  trafficMs?: number;
  /** Where the demo services' sources come from: --services-dir, else this installation's templates/services. */
  sources: SourceDirs;
}

/** The local kind cluster of this run; `kind` and `exists` are filled in by the local-cluster steps as they learn them. */
export interface LocalCluster {
  name: string;
  context: string;
  /** Why up works on the local cluster (shown by plan and the prompt). */
  reason: string;
  /** The kind binary to run (PATH or meshdemo's cache). */
  kind?: string;
  exists?: boolean;
}

export function parseIstioVersion(v: string): string {
  // 1.8.<patch> as Istio tags its releases: no leading zero (1.8.04 names no release)
  if (!/^1\.8\.(0|[1-9]\d*)$/.test(v)) {
    throw new UsageError(`--istio-version ${v} is not supported`, { hint: 'meshdemo installs Istio 1.8.x: write it as 1.8.<patch> without leading zeros (default 1.8.4)' });
  }
  return v;
}

export function parseSha256(v: string, flag = '--istio-sha256'): string {
  if (!/^[0-9a-fA-F]{64}$/.test(v)) throw new UsageError(`${flag} "${v}" is not 64 hex digits`, { hint: 'pass the sha256 from the release page' });
  return v.toLowerCase();
}

export function parseMirror(v: string, flag = '--istio-mirror', example = DEFAULT_ISTIO_MIRROR): string {
  let url: URL;
  try {
    url = new URL(v);
  } catch {
    throw new UsageError(`${flag} "${displayUrlArgument(v)}" is not a URL`, { hint: `use e.g. ${example}` });
  }
  // its credentials are masked wherever they show up, also decoded (an error may quote them so)
  rememberUrlCredentials(v);
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(`${flag} must be an http(s) URL, not ${url.protocol}`, { hint: `use e.g. ${example}` });
  }
  return v.replace(/\/+$/, '');
}

export function parseAddons(v: string): string[] {
  const list = v.split(',').map((s) => s.trim()).filter(Boolean);
  for (const a of list) {
    if (!(KNOWN_ADDONS as readonly string[]).includes(a)) {
      throw new UsageError(`--addons: unknown addon "${a}"`, { hint: `choose from ${KNOWN_ADDONS.join(', ')}` });
    }
  }
  if (list.includes('zipkin') && list.includes('jaeger')) {
    throw new UsageError('--addons: jaeger and zipkin both define the Services tracing and zipkin', { hint: 'choose one of them' });
  }
  if (!list.length) throw new UsageError('--addons is empty', { hint: `e.g. --addons ${DEFAULT_ADDONS.join(',')}` });
  return list;
}

export function parseNodePort(v: string | number, what = '--node-port'): number {
  const n = decimalPort(v);
  if (n === undefined) {
    throw new UsageError(`${what} "${v}" is not a port number`, { hint: 'write it in decimal digits, a port in the cluster NodePort range, by default 30000-32767' });
  }
  return n;
}

/** The NodePort range of a kind cluster: kube-apiserver's default --service-node-port-range, which kind keeps. */
const KIND_NODE_PORT_RANGE = { min: 30000, max: 32767 };

/**
 * --gateway-node-port: a node port kind's API server accepts, and none of the gateway's other pinned ports (two
 * Service ports cannot share a node port).
 */
export function parseGatewayNodePort(v: string | number): number {
  const port = parseNodePort(v, '--gateway-node-port');
  if (port < KIND_NODE_PORT_RANGE.min || port > KIND_NODE_PORT_RANGE.max) {
    throw new UsageError(`--gateway-node-port ${port} is outside the NodePort range ${KIND_NODE_PORT_RANGE.min}-${KIND_NODE_PORT_RANGE.max}`, {
      hint: `choose a port in that range, e.g. ${DEFAULT_GATEWAY_HTTP2_NODE_PORT}`,
    });
  }
  const own = Object.entries(GATEWAY_NODE_PORTS).find(([name, p]) => name !== 'http2' && p === port);
  if (own) {
    throw new UsageError(`--gateway-node-port ${port} is already the ingress gateway's ${own[0]} node port`, {
      hint: `choose another port, not one of ${Object.values(GATEWAY_NODE_PORTS).filter((p) => p !== DEFAULT_GATEWAY_HTTP2_NODE_PORT).join(', ')}`,
    });
  }
  return port;
}

/** "kiali=31001,grafana=31002" (also repeatable). */
export function parseNodePorts(values: string[]): Record<string, number> {
  const out: Record<string, number> = {};
  for (const item of values.flatMap((v) => v.split(',')).map((s) => s.trim()).filter(Boolean)) {
    const m = /^([a-z]+)=(.+)$/.exec(item);
    if (!m) throw new UsageError(`--node-port "${item}" is not NAME=PORT`, { hint: 'e.g. --node-port kiali=31001,grafana=31002' });
    parseDashboardName(m[1]);
    out[m[1]] = parseNodePort(m[2], `--node-port ${m[1]}`);
  }
  const taken = new Map<number, string>();
  for (const [name, port] of Object.entries(out)) {
    if (taken.has(port)) throw new UsageError(`--node-port gives ${port} to both ${taken.get(port)} and ${name}`, { hint: 'give each dashboard its own port' });
    taken.set(port, name);
  }
  return out;
}

export function parseDashboardName(v: string): string {
  if (!DASHBOARDS[v]) throw new UsageError(`unknown dashboard "${v}"`, { hint: `choose one of ${Object.keys(DASHBOARDS).join(', ')}, or all` });
  return v;
}

const REGISTRY = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?(:\d{1,5})?(\/[a-z0-9]+([._-][a-z0-9]+)*)*$/;

export function parseRegistry(v: string): string {
  const trimmed = v.replace(/\/+$/, '');
  if (/^[a-z]+:\/\//i.test(trimmed) || !REGISTRY.test(trimmed)) {
    throw new UsageError(`--registry "${v}" is not a registry reference`, { hint: 'use host[:port][/path] without a scheme, e.g. 127.0.0.1:5000/micro-service' });
  }
  const port = /^[^/:]+:(\d+)/.exec(trimmed)?.[1];
  if (port !== undefined && decimalPort(port) === undefined) {
    throw new UsageError(`--registry "${v}" names port ${port}, which is not a port number`, { hint: 'use a port from 1 to 65535, e.g. 127.0.0.1:5000/micro-service' });
  }
  return trimmed;
}

const IMAGE_REF = /^[a-z0-9]+([._\-/:@][a-zA-Z0-9_.-]+)*$/;

export function parseImages(values: string[]): Partial<Record<ServiceName, string>> {
  const out: Partial<Record<ServiceName, string>> = {};
  for (const item of values) {
    const m = /^([a-z-]+)=(.+)$/.exec(item);
    if (!m || !(SERVICES as readonly string[]).includes(m[1]) || !IMAGE_REF.test(m[2])) {
      throw new UsageError(`--image "${item}" is not SERVICE=IMAGE`, { hint: `SERVICE is one of ${SERVICES.join(', ')}, e.g. --image micro-api=registry.example/micro-api:1` });
    }
    out[m[1] as ServiceName] = m[2];
  }
  return out;
}

/** --services-dir: an edited copy of templates/services to build the demo from; dependencies still come from this installation. */
export function parseServicesDir(dir: string | undefined): SourceDirs {
  const installed = defaultSourceDirs();
  if (dir === undefined) return installed;
  const servicesDir = path.resolve(dir);
  if (!fs.statSync(servicesDir, { throwIfNoEntry: false })?.isDirectory()) {
    throw new UsageError(`--services-dir ${dir} is not a directory`, { hint: `pass a copy of templates/services, e.g. cp -r ${installed.servicesDir} ./services` });
  }
  return { ...installed, servicesDir };
}

export function parseUpSettings(o: Record<string, any>): UpSettings {
  const { images, skipBuild } = checkUpCombinations(o);
  return {
    ...parseIstioOptions(o),
    app: o.app !== false,
    addons: o.addons ? parseAddons(o.addons) : [...DEFAULT_ADDONS],
    nodePorts: parseNodePorts(o.nodePort ?? []),
    nodeAddress: o.nodeAddress !== undefined ? parseNodeAddress(o.nodeAddress) : undefined,
    registry: o.registry ? parseRegistry(o.registry) : undefined,
    baseImage: o.baseImage ?? 'node:22-alpine',
    skipBuild,
    images,
    render: o.render,
    sources: parseServicesDir(o.servicesDir),
    verify: Boolean(o.verify),
    trafficMs: o.traffic !== undefined ? parseDuration(o.traffic, '--traffic') : undefined,
    ...parseLocalClusterOptions(o),
  };
}

/** The options of up that exclude or need each other, checked before any is parsed further; --image parsed. */
function checkUpCombinations(o: Record<string, any>): Pick<UpSettings, 'images' | 'skipBuild'> {
  if (o.istioArchive && !fs.existsSync(o.istioArchive)) {
    throw new UsageError(`--istio-archive ${o.istioArchive} does not exist`, { hint: 'pass the path of a downloaded istio-<version>-<platform>.tar.gz' });
  }
  const images = parseImages(o.image ?? []);
  const skipBuild = Boolean(o.skipBuild);
  if (skipBuild) {
    const missing = SERVICES.filter((s) => !images[s]);
    if (missing.length) throw new UsageError(`--skip-build needs an --image for ${missing.join(', ')}`, { hint: 'pass --image SERVICE=IMAGE for each service' });
  }
  if (o.traffic !== undefined && (o.app === false || o.render)) {
    throw new UsageError(`--traffic sends orders to the demo app, which ${o.render ? '--render does not deploy' : '--no-app leaves out'}`, { hint: 'drop --traffic, or run meshdemo traffic later' });
  }
  if (o.app === false && (Object.keys(images).length || o.registry || skipBuild)) {
    throw new UsageError('--no-app conflicts with --registry, --image and --skip-build', { hint: 'drop --no-app to deploy the demo app' });
  }
  for (const s of o.istioSet ?? []) {
    if (!/^[^=\s]+=.*$/.test(s)) throw new UsageError(`--istio-set "${s}" is not key=value`, { hint: 'e.g. --istio-set values.global.proxy.privileged=true' });
  }
  return { images, skipBuild };
}

/** --istio-version, --istio-mirror, --istio-sha256, --istio-archive, --istio-set, --reinstall. */
function parseIstioOptions(o: Record<string, any>): Pick<UpSettings, 'istioVersion' | 'istioMirror' | 'istioSha256' | 'istioArchive' | 'istioSet' | 'reinstall'> {
  return {
    istioVersion: parseIstioVersion(o.istioVersion ?? DEFAULT_ISTIO_VERSION),
    istioMirror: parseMirror(o.istioMirror ?? DEFAULT_ISTIO_MIRROR),
    istioSha256: o.istioSha256 ? parseSha256(o.istioSha256) : undefined,
    istioArchive: o.istioArchive,
    istioSet: o.istioSet ?? [],
    reinstall: Boolean(o.reinstall),
  };
}

/** The node port of every dashboard (all five, whether or not its addon is applied), --node-port first. */
export function allDashboardNodePorts(nodePorts: Record<string, number>): Record<string, number> {
  return Object.fromEntries(Object.keys(DASHBOARDS).map((n) => [n, nodePorts[n] ?? DASHBOARDS[n].defaultNodePort]));
}

/** --cluster-name, --local, --kind-mirror, --kind-sha256, --gateway-node-port; the pinned gateway ports must not meet a dashboard's. */
function parseLocalClusterOptions(o: Record<string, any>): Pick<UpSettings, 'clusterName' | 'forceLocal' | 'kindMirror' | 'kindSha256' | 'gatewayNodePort'> {
  const gatewayNodePort = o.gatewayNodePort === undefined ? DEFAULT_GATEWAY_HTTP2_NODE_PORT : parseGatewayNodePort(o.gatewayNodePort);
  const dashboardPorts = new Map(Object.entries(allDashboardNodePorts(parseNodePorts(o.nodePort ?? []))).map(([n, p]) => [p, n]));
  for (const [portName, port] of Object.entries(gatewayNodePorts(gatewayNodePort))) {
    const taken = dashboardPorts.get(port);
    if (taken) {
      throw new UsageError(`node port ${port} is both the ${taken} dashboard's and the ingress gateway's ${portName} port`, {
        hint: portName === 'http2' ? 'choose another --gateway-node-port' : `choose another --node-port ${taken}=<port>`,
      });
    }
  }
  return {
    clusterName: parseClusterName(o.clusterName ?? DEFAULT_CLUSTER_NAME),
    forceLocal: Boolean(o.local),
    kindMirror: parseMirror(o.kindMirror ?? DEFAULT_KIND_MIRROR, '--kind-mirror', DEFAULT_KIND_MIRROR),
    kindSha256: o.kindSha256 ? parseSha256(o.kindSha256, '--kind-sha256') : undefined,
    gatewayNodePort,
  };
}


/** What `meshdemo download` needs: the Istio release options of up, nothing about a cluster. */
export type ReleaseSettings = Pick<UpSettings, 'istioVersion' | 'istioMirror' | 'istioSha256' | 'istioArchive'>;

/** `meshdemo download`: the Istio release, and kind when up would work on the local cluster (or with --kind). */
export type DownloadSettings = ReleaseSettings & Pick<UpSettings, 'clusterName' | 'forceLocal' | 'kindMirror' | 'kindSha256' | 'local'>;

export function parseDownloadSettings(o: Record<string, any>): DownloadSettings {
  return {
    ...parseReleaseSettings(o),
    clusterName: DEFAULT_CLUSTER_NAME,
    forceLocal: Boolean(o.kind),
    kindMirror: parseMirror(o.kindMirror ?? DEFAULT_KIND_MIRROR, '--kind-mirror', DEFAULT_KIND_MIRROR),
    kindSha256: o.kindSha256 ? parseSha256(o.kindSha256, '--kind-sha256') : undefined,
  };
}

export function parseReleaseSettings(o: Record<string, any>): ReleaseSettings {
  if (o.istioArchive && !fs.existsSync(o.istioArchive)) {
    throw new UsageError(`--istio-archive ${o.istioArchive} does not exist`, { hint: 'pass the path of a downloaded istio-<version>-<platform>.tar.gz' });
  }
  return {
    istioVersion: parseIstioVersion(o.istioVersion ?? DEFAULT_ISTIO_VERSION),
    istioMirror: parseMirror(o.istioMirror ?? DEFAULT_ISTIO_MIRROR),
    istioSha256: o.istioSha256 ? parseSha256(o.istioSha256) : undefined,
    istioArchive: o.istioArchive,
  };
}
