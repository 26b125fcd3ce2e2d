import yaml from 'js-yaml';

/**
 * The kind cluster config meshdemo creates its local cluster with (kind.x-k8s.io/v1alpha4, as documented in
 * kind's site/content/docs/user/configuration.md). One control-plane node, the pinned image, and an
 * extraPortMapping for every node port meshdemo prints, published on 127.0.0.1 only: on Docker Desktop (macOS,
 * Windows) the host cannot reach the node container's own IP, and port mappings can only be set at creation.
 */

/** The ingress gateway's node ports on a kind cluster, by Service port name (istio-ingressgateway in the demo profile). */
export const GATEWAY_NODE_PORTS: Readonly<Record<string, number>> = {
  'status-port': 31021,
  http2: 31080,
  https: 31443,
  tcp: 31400,
  tls: 31543,
};
export const DEFAULT_GATEWAY_HTTP2_NODE_PORT = GATEWAY_NODE_PORTS.http2;
export const LISTEN_ADDRESS = '127.0.0.1';

export interface PortMapping {
  /** What it is for: a dashboard name or "gateway". */
  name: string;
  /** The node port inside the node container. */
  containerPort: number;
  /** The port on the host's 127.0.0.1. */
  hostPort: number;
}

export interface KindConfigInput {
  name: string;
  image: string;
  mappings: PortMapping[];
}

/** The node ports meshdemo pins on a kind cluster: the gateway's, with http2 possibly overridden. */
export function gatewayNodePorts(http2: number): Record<string, number> {
  return { ...GATEWAY_NODE_PORTS, http2 };
}

/**
 * The ports a local cluster maps: every dashboard meshdemo can expose (all five, since `meshdemo expose` may
 * add one later and mappings cannot be added to a running kind cluster) and the gateway's http2 port.
 * The host port is the node port itself, so a URL's port is the port the user reads in the Service.
 */
export function localPortMappings(o: { dashboardNodePorts: Record<string, number>; gatewayHttp2NodePort: number }): PortMapping[] {
  const out: PortMapping[] = Object.entries(o.dashboardNodePorts).map(([name, port]) => ({ name, containerPort: port, hostPort: port }));
  out.push({ name: 'gateway', containerPort: o.gatewayHttp2NodePort, hostPort: o.gatewayHttp2NodePort });
  return out;
}

export function kindConfigObject(input: KindConfigInput): Record<string, unknown> {
  return {
    kind: 'Cluster',
    apiVersion: 'kind.x-k8s.io/v1alpha4',
    name: input.name,
    nodes: [
      {
        role: 'control-plane',
        image: input.image,
        extraPortMappings: input.mappings.map((m) => ({ containerPort: m.containerPort, hostPort: m.hostPort, listenAddress: LISTEN_ADDRESS, protocol: 'TCP' })),
      },
    ],
  };
}

export function kindConfigYaml(input: KindConfigInput): string {
  const head = '# written by meshdemo: the local cluster of `meshdemo up` (kind create cluster --config <this file>)\n';
  return head + yaml.dump(kindConfigObject(input), { lineWidth: -1, noRefs: true });
}
