import { KubeApiError, type KubeObject } from '../kube/client.js';
import type { KubeReader } from '../kube/reads.js';
import { hostEndpoint, stateForContext } from '../kind/state.js';
import { DASHBOARDS } from '../settings.js';

/** Read-only facts about the cluster, shared by steps' checks and `status`. */

export const ISTIO_NAMESPACE = 'istio-system';
/** The namespace label Istio's sidecar injector reads. */
export const INJECTION_LABEL = 'istio-injection';
export const INSTALLED_STATE = { apiVersion: 'install.istio.io/v1alpha1', kind: 'IstioOperator', namespace: ISTIO_NAMESPACE, name: 'installed-state' };

export interface IstioInstallation {
  /** istioctl's version, from the istiod Deployment's operator.istio.io/version label (else a version-like tag). */
  version?: string;
  profile?: string;
  /** The images' tag (spec.tag): the version unless --set tag=… changed it. */
  tag?: string;
  revision?: string;
  /** The IstioOperator istioctl saved: installed-state, or installed-state-<revision>. */
  stateName: string;
  /** "meshdemo" when meshdemo's up installed it (it labels installed-state app.kubernetes.io/managed-by). */
  managedBy?: string;
}

/** The revision a list of `--set` values selects (`revision=x`), as istioctl reads it. */
export function revisionOf(istioSet: string[]): string | undefined {
  const last = istioSet.map((s) => /^(?:spec\.)?revision=(.*)$/.exec(s)?.[1]).filter((v) => v !== undefined).pop();
  return last || undefined;
}

/**
 * What istioctl installed, if anything. istioctl 1.8 saves its spec as the IstioOperator installed-state (or
 * installed-state-<revision>: operator/cmd/mesh/install.go savedIOPName), which holds spec.tag and spec.profile
 * but no version; the version is the operator.istio.io/version label istioctl stamps on every object it applies
 * (helmreconciler/reconciler.go getCoreOwnerLabels), read from the istiod Deployment.
 */
export async function istioInstallation(kube: KubeReader, opts: { revision?: string } = {}): Promise<IstioInstallation | undefined> {
  const wanted = opts.revision ? `installed-state-${opts.revision}` : INSTALLED_STATE.name;
  // not found, also when the IstioOperator CRD is not there (then nothing is installed)
  let iop = await kube.get({ ...INSTALLED_STATE, name: wanted });
  if (!iop) {
    // another revision's (or the default's) saved state still says Istio is installed
    const all = await kube.list(INSTALLED_STATE.apiVersion, INSTALLED_STATE.kind, { namespace: ISTIO_NAMESPACE }).catch((err) => {
      if (err instanceof KubeApiError && err.status === 404) return [];
      throw err;
    });
    iop = all.find((o) => o.metadata.name === INSTALLED_STATE.name) ?? all.find((o) => o.metadata.name.startsWith(`${INSTALLED_STATE.name}-`));
  }
  if (!iop) return undefined;
  const revision: string | undefined = iop.spec?.revision || undefined;
  const istiod = await kube.get({ apiVersion: 'apps/v1', kind: 'Deployment', namespace: ISTIO_NAMESPACE, name: revision ? `istiod-${revision}` : 'istiod' });
  const tag: string | undefined = iop.spec?.tag === undefined ? undefined : String(iop.spec.tag);
  const labelled = istiod?.metadata.labels?.['operator.istio.io/version'] ?? iop.metadata.labels?.['operator.istio.io/version'];
  const version = labelled ?? (tag && /^\d+\.\d+\.\d+$/.test(tag) ? tag : undefined);
  return { version, profile: iop.spec?.profile, tag, revision, stateName: iop.metadata.name, managedBy: iop.metadata.labels?.['app.kubernetes.io/managed-by'] };
}

export async function injectionLabel(kube: KubeReader, namespace: string): Promise<string | undefined> {
  const ns = await kube.get({ apiVersion: 'v1', kind: 'Namespace', name: namespace });
  return ns?.metadata.labels?.['istio-injection'];
}

/** The address users reach NodePorts on: --node-address, else the first node's ExternalIP, else InternalIP. */
export async function nodeAddress(kube: KubeReader, override?: string): Promise<string | undefined> {
  if (override) return override;
  const nodes = await kube.list('v1', 'Node');
  const addresses: Array<{ type: string; address: string }> = nodes[0]?.status?.addresses ?? [];
  return addresses.find((a) => a.type === 'ExternalIP')?.address ?? addresses.find((a) => a.type === 'InternalIP')?.address;
}

export function servicePort(svc: KubeObject, portName?: string): any | undefined {
  const ports: any[] = svc.spec?.ports ?? [];
  return (portName && ports.find((p) => p.name === portName)) || ports[0];
}

/** How this machine reaches a node port ("host:port"), or undefined when it cannot. */
export type NodePortReach = (nodePort: number) => string | undefined;

function reachOf(address: string | undefined | NodePortReach): NodePortReach {
  return typeof address === 'function' ? address : (port) => (address ? `${address}:${port}` : undefined);
}

/**
 * Where URLs point: --node-address; on meshdemo's local kind cluster, 127.0.0.1 and the port mapped to the host
 * (never the node container's IP, which Docker Desktop cannot reach; unmapped ports have no URL); else the node address.
 */
export async function nodePortReach(kube: KubeReader & { contextName: string }, cacheDir: string, override?: string): Promise<NodePortReach> {
  if (override) return reachOf(override);
  const state = stateForContext(cacheDir, kube.contextName);
  if (state) {
    return (port) => {
      const e = hostEndpoint(state, port);
      return e ? `${e.address}:${e.port}` : undefined;
    };
  }
  return reachOf(await nodeAddress(kube));
}

export async function dashboardUrl(kube: KubeReader, name: string, address: string | undefined | NodePortReach): Promise<string | undefined> {
  const d = DASHBOARDS[name];
  const svc = await kube.get({ apiVersion: 'v1', kind: 'Service', namespace: ISTIO_NAMESPACE, name: d.service });
  if (!svc || (svc.spec?.type !== 'NodePort' && svc.spec?.type !== 'LoadBalancer') || !address) return undefined;
  const port = servicePort(svc, d.portName)?.nodePort;
  const where = port ? reachOf(address)(port) : undefined;
  return where ? `http://${where}${d.path}` : undefined;
}

/**
 * The tutorial's INGRESS_HOST:INGRESS_PORT (scheme http, port http2) or INGRESS_HOST:SECURE_INGRESS_PORT (scheme
 * https, port https): a LoadBalancer ingress and the Service port, else that port's nodePort on the node address.
 */
export async function gatewayUrl(kube: KubeReader, address: string | undefined | NodePortReach, scheme: 'http' | 'https' = 'http'): Promise<string | undefined> {
  const svc = await kube.get({ apiVersion: 'v1', kind: 'Service', namespace: ISTIO_NAMESPACE, name: 'istio-ingressgateway' });
  if (!svc) return undefined;
  const port = (svc.spec?.ports ?? []).find((p: any) => p.name === (scheme === 'http' ? 'http2' : 'https'));
  const ingress = svc.status?.loadBalancer?.ingress?.[0];
  if (ingress?.ip || ingress?.hostname) return port ? `${scheme}://${ingress.ip ?? ingress.hostname}:${port.port}` : undefined;
  const where = port?.nodePort && address ? reachOf(address)(port.nodePort) : undefined;
  return where ? `${scheme}://${where}` : undefined;
}
