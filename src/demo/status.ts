import fs from 'node:fs';
import type { Context } from '../record/context.js';
import { deploymentState } from '../kube/readiness.js';
import { clusterVersion, type VersionVerdict } from './cluster-checks.js';
import { dashboardUrl, gatewayUrl, injectionLabel, istioInstallation, ISTIO_NAMESPACE, nodePortReach } from './facts.js';
import { DASHBOARDS, DEFAULT_ISTIO_VERSION, SERVICES } from '../settings.js';
import { DEPLOYMENT_OF } from './app-manifests.js';
import { describeScenarios } from './scenarios.js';
import { scenarioState } from './scenario-apply.js';
import { istioctlPath } from '../core/cache-layout.js';
import { stateForContext, type LocalClusterState } from '../kind/state.js';
import { kindForState } from '../kind/binary.js';
import { kindClusters } from '../exec/kind.js';
import { normalizeReference, uniqueImages, workloadImages } from '../images/cluster-images.js';
import type { KubeReader } from '../kube/reads.js';

export interface Status {
  context: string;
  server: string;
  cluster: VersionVerdict;
  istio: { installed: boolean; version?: string; profile?: string; istioctl?: string };
  namespace: { name: string; injection: string | null };
  addons: Array<{ name: string; present: boolean; ready: boolean }>;
  dashboards: Array<{ name: string; url: string }>;
  app: { deployed: boolean; services: Array<{ name: string; deployment: string; present: boolean; ready: boolean }> };
  gatewayUrl: string | null;
  /** Active scenarios (canary, chaos, mtls), from meshdemo's record. */
  scenarios: string[];
  /** The gateway's https port (the tutorial's SECURE_INGRESS_PORT). */
  gatewayHttpsUrl: string | null;
  /** A kind cluster (context kind-<name>): whether meshdemo created it, and its ports mapped to 127.0.0.1. */
  localCluster: { name: string; exists: boolean; createdByMeshdemo: boolean; createdAt?: string; nodeImage?: string; ports: Array<{ name: string; nodePort: number; hostPort: number }> } | null;
  /**
   * The images the demo's Deployments (Istio's, the addons', the app's) run, and how many of the nodes hold each, as
   * their kubelets list them (Node .status.images): what kind or minikube loaded into the nodes, not the host's Docker.
   */
  nodeImages: { nodes: number; images: Array<{ ref: string; usedBy: string; onNodes: number }> };
}

/** Each image the Deployments in `namespaces` run, with the number of nodes whose runtime holds it. */
async function nodeImages(reads: KubeReader, namespaces: string[]): Promise<Status['nodeImages']> {
  const nodes = await reads.list('v1', 'Node');
  const held = nodes.map((n) => new Set<string>((n.status?.images ?? []).flatMap((i: any) => (i.names ?? []) as string[]).map(normalizeReference)));
  const deployments = (await Promise.all(namespaces.map((namespace) => reads.list('apps/v1', 'Deployment', { namespace })))).flat();
  const images = uniqueImages(deployments.flatMap((d) => workloadImages([d], d.metadata.name)));
  return { nodes: nodes.length, images: images.map((i) => ({ ref: i.ref, usedBy: i.usedBy, onNodes: held.filter((h) => h.has(normalizeReference(i.ref))).length })) };
}

function formatNodeImages(n: Status['nodeImages']): string {
  if (!n.images.length) return 'no demo Deployments';
  const missing = n.images.filter((i) => i.onNodes < n.nodes);
  const all = `${n.images.length - missing.length} of ${n.images.length} the demo runs are on ${n.nodes === 1 ? 'the node' : `all ${n.nodes} nodes`}`;
  return missing.length ? `${all}; not on ${n.nodes === 1 ? 'it' : 'every node'}: ${missing.map((i) => `${i.ref} (${i.usedBy}${n.nodes > 1 ? `, ${i.onNodes}/${n.nodes}` : ''})`).join(', ')}` : all;
}

function localClusterStatus(cacheDir: string, contextName: string): Status['localCluster'] {
  const name = /^kind-(.+)$/.exec(contextName)?.[1];
  if (!name) return null;
  const state = stateForContext(cacheDir, contextName);
  return {
    name,
    exists: true, // its API server answered
    createdByMeshdemo: Boolean(state),
    createdAt: state?.createdAt,
    nodeImage: state?.nodeImage,
    ports: (state?.mappings ?? []).map((m) => ({ name: m.name, nodePort: m.containerPort, hostPort: m.hostPort })),
  };
}

const ADDON_DEPLOYMENTS = ['prometheus', 'grafana', 'jaeger', 'kiali', 'zipkin'];

export async function gatherStatus(ctx: Context<{ nodeAddress?: string }>): Promise<Status> {
  const kube = await ctx.kube();
  // one list per kind and namespace (Deployments, Services in istio-system and the app namespace, nodes, namespaces)
  const reads = await ctx.reads();
  const cluster = await clusterVersion(kube);
  const installation = await istioInstallation(reads);
  const namespace = ctx.options.namespace;
  const address = await nodePortReach(reads, ctx.options.cacheDir, ctx.settings.nodeAddress);
  const addons = await Promise.all(ADDON_DEPLOYMENTS.map((n) => deploymentState(reads, ISTIO_NAMESPACE, n)));
  const dashboards = [];
  for (const name of Object.keys(DASHBOARDS)) {
    const url = await dashboardUrl(reads, name, address);
    if (url) dashboards.push({ name, url });
  }
  const app = await Promise.all(SERVICES.map(async (s) => ({ ...(await deploymentState(reads, namespace, DEPLOYMENT_OF[s])), name: s, deployment: DEPLOYMENT_OF[s] })));
  const gateway = await gatewayUrl(reads, address);
  const secure = await gatewayUrl(reads, address, 'https');
  const scenarios = describeScenarios(scenarioState(await ctx.inventory()));
  const binary = istioctlPath(ctx.options.cacheDir, installation?.version ?? DEFAULT_ISTIO_VERSION);
  return {
    context: kube.contextName,
    server: kube.server,
    cluster,
    istio: { installed: Boolean(installation), ...installation, istioctl: fs.existsSync(binary) ? binary : undefined },
    namespace: { name: namespace, injection: (await injectionLabel(reads, namespace)) ?? null },
    addons: addons.filter((a) => a.present || a.name !== 'zipkin').map(({ name, present, ready }) => ({ name, present, ready })),
    dashboards,
    app: { deployed: app.every((a) => a.present), services: app.map(({ name, deployment, present, ready }) => ({ name, deployment, present, ready })) },
    gatewayUrl: gateway ? `${gateway}/api/order/create` : null,
    gatewayHttpsUrl: secure ?? null,
    scenarios,
    localCluster: localClusterStatus(ctx.options.cacheDir, kube.contextName),
    nodeImages: await nodeImages(reads, [ISTIO_NAMESPACE, namespace]),
  };
}

export function formatStatus(s: Status): string {
  const lines = [
    `context     ${s.context} (${s.server})`,
    `cluster     ${s.cluster.version}: ${s.cluster.verdict} — ${s.cluster.message}`,
    `istio       ${s.istio.installed ? `installed ${s.istio.version ?? '?'} (profile ${s.istio.profile ?? '?'})` : 'not installed'}`,
    `istioctl    ${s.istio.istioctl ?? 'not downloaded'}`,
    `namespace   ${s.namespace.name}: istio-injection=${s.namespace.injection ?? '(unset)'}`,
    `addons      ${s.addons.map((a) => `${a.name} ${a.present ? (a.ready ? 'ready' : 'not ready') : 'absent'}`).join(', ')}`,
    `dashboards  ${s.dashboards.length ? s.dashboards.map((d) => `${d.name} ${d.url}`).join(', ') : 'none exposed'}`,
    `app         ${s.app.deployed ? 'deployed' : 'not deployed'} (deployments ${s.app.services.map((a) => `${a.deployment} ${a.present ? (a.ready ? 'ready' : 'not ready') : 'absent'}`).join(', ')})`,
    `scenarios   ${s.scenarios.length ? s.scenarios.join('; ') : 'none'}`,
    `gateway     ${s.gatewayUrl ?? 'unknown (istio-ingressgateway not found)'}${s.gatewayHttpsUrl ? `; https ${s.gatewayHttpsUrl}` : ''}`,
    `images      ${formatNodeImages(s.nodeImages)}`,
  ];
  if (s.localCluster) {
    const c = s.localCluster;
    lines.splice(
      1,
      0,
      c.createdByMeshdemo
        ? `local       kind cluster "${c.name}", created by meshdemo ${c.createdAt} (${c.nodeImage}); ports ${c.ports.map((p) => `${p.name} 127.0.0.1:${p.hostPort}→${p.nodePort}`).join(', ')}; meshdemo down deletes it`
        : `local       kind cluster "${c.name}", not created by meshdemo (down never deletes it; port mappings unknown)`,
    );
  }
  return lines.join('\n');
}

/** status of a local cluster meshdemo created but kind no longer lists (deleted by hand, or Docker lost it). */
export interface AbsentLocalClusterStatus {
  context: string;
  localCluster: NonNullable<Status['localCluster']>;
}

/** The recorded local cluster, when kind says it is gone; undefined when it exists or no kind can tell. */
export async function absentLocalCluster(ctx: Context<unknown>, state: LocalClusterState): Promise<AbsentLocalClusterStatus | undefined> {
  const kind = kindForState(ctx.options.cacheDir, state);
  if (!kind) return undefined;
  // kind cannot list (Docker down, say): the API server check that follows names the problem
  const clusters = await kindClusters(kind, { signal: ctx.signal }).catch(() => undefined);
  if (!clusters || clusters.includes(state.name)) return undefined;
  return {
    context: state.context,
    localCluster: {
      name: state.name,
      exists: false,
      createdByMeshdemo: true,
      createdAt: state.createdAt,
      nodeImage: state.nodeImage,
      ports: state.mappings.map((m) => ({ name: m.name, nodePort: m.containerPort, hostPort: m.hostPort })),
    },
  };
}

export function formatAbsentLocalCluster(s: AbsentLocalClusterStatus): string {
  const c = s.localCluster;
  return [
    `context     ${s.context}`,
    `local       kind cluster "${c.name}" is absent: meshdemo created it ${c.createdAt}, but kind get clusters does not list it — meshdemo up creates it again; meshdemo down forgets it`,
  ].join('\n');
}
