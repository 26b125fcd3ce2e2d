import type { KubeClient, KubeObject } from '../kube/client.js';

/**
 * `docker.io/library/x:latest` for `x`: the name a node's container runtime lists an image under (distribution's
 * normalisation, as containerd and the kubelet use it; kind's docker-image.go sanitizeImage does the same).
 */
export function normalizeReference(ref: string): string {
  const at = ref.indexOf('@');
  const name = at >= 0 ? ref.slice(0, at) : ref;
  const digest = at >= 0 ? ref.slice(at) : '';
  const first = name.split('/')[0];
  const hasHost = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  let full = hasHost ? name : `docker.io/${name.includes('/') ? name : `library/${name}`}`;
  if (!digest && !full.slice(full.lastIndexOf('/') + 1).includes(':')) full += ':latest';
  return full + digest;
}

/**
 * The images every node's container runtime holds, as its kubelet reports them (Node .status.images: the names of
 * each image the runtime lists, pkg/kubelet/nodestatus/setters.go Images — at most 50 per node, the largest first,
 * refreshed with the node status): what kind or minikube loaded into the nodes, not what the host's Docker has.
 */
export async function imagesOnEveryNode(kube: KubeClient): Promise<{ nodes: number; uids: string[]; has(ref: string): boolean }> {
  const nodes = await kube.list('v1', 'Node');
  const perNode = nodes.map((n) => new Set<string>((n.status?.images ?? []).flatMap((i: any) => (i.names ?? []) as string[]).map(normalizeReference)));
  return {
    nodes: nodes.length,
    uids: nodes.map((n) => n.metadata.uid).filter((uid): uid is string => typeof uid === 'string'),
    has: (ref) => perNode.length > 0 && perNode.every((held) => held.has(normalizeReference(ref))),
  };
}

/** An image some workload of the cluster runs, and whether its kubelet pulls it on every start anyway. */
export interface ClusterImage {
  ref: string;
  /** imagePullPolicy Always (or an untagged / :latest reference, whose default is Always): pre-loading does not spare the pull. */
  pullAlways: boolean;
  /** What runs it, for messages (e.g. "istiod", "addon kiali"). */
  usedBy: string;
}

/**
 * The images istioctl's demo profile deploys: istiod runs `<hub>/pilot:<tag>`, the ingress and egress gateways and
 * every injected sidecar (istio-proxy, istio-init) `<hub>/proxyv2:<tag>`. A release's hub and tag are docker.io/istio
 * and its version (istio/release-builder writes them into manifests/profiles/default.yaml); `--istio-set hub=… / tag=…`
 * (or values.global.hub / values.global.tag) override them, as they do for istioctl.
 */
export function istioImages(version: string, istioSet: string[]): ClusterImage[] {
  const set = new Map(istioSet.map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]));
  const hub = set.get('hub') ?? set.get('values.global.hub') ?? 'docker.io/istio';
  const tag = set.get('tag') ?? set.get('values.global.tag') ?? version;
  return [
    { ref: `${hub}/pilot:${tag}`, pullAlways: false, usedBy: 'istiod' },
    { ref: `${hub}/proxyv2:${tag}`, pullAlways: false, usedBy: 'the gateways and sidecars' },
  ];
}

/** The container and init-container images of every workload among `objects` (Deployments, StatefulSets, DaemonSets, Pods). */
export function workloadImages(objects: KubeObject[], usedBy: string): ClusterImage[] {
  const out: ClusterImage[] = [];
  for (const o of objects) {
    const spec = o.kind === 'Pod' ? o.spec : o.spec?.template?.spec;
    for (const c of [...(spec?.initContainers ?? []), ...(spec?.containers ?? [])]) {
      if (!c?.image) continue;
      const untaggedOrLatest = !/:[^/]+$/.test(c.image.split('@')[0]) || c.image.endsWith(':latest');
      out.push({ ref: c.image, pullAlways: c.imagePullPolicy === 'Always' || (!c.imagePullPolicy && untaggedOrLatest && !c.image.includes('@')), usedBy });
    }
  }
  return out;
}

/** One entry per reference (the first user named). */
export function uniqueImages(images: ClusterImage[]): ClusterImage[] {
  const seen = new Map<string, ClusterImage>();
  for (const i of images) if (!seen.has(i.ref)) seen.set(i.ref, i);
  return [...seen.values()];
}
