import type http from 'node:http';
import type { KubeClient } from './client.js';

export interface PodLogOptions {
  namespace: string;
  pod: string;
  container: string;
  follow?: boolean;
  sinceSeconds?: number;
  signal?: AbortSignal;
}

/**
 * pods/<pod>/log of one container (the API server asks the node's kubelet for it): the response body, read as it
 * arrives. With follow it stays open until the container stops or the signal aborts.
 */
export function podLogStream(kube: KubeClient, o: PodLogOptions): Promise<http.IncomingMessage> {
  return kube.stream(`/api/v1/namespaces/${encodeURIComponent(o.namespace)}/pods/${encodeURIComponent(o.pod)}/log`, {
    query: { container: o.container, follow: o.follow ? true : undefined, sinceSeconds: o.sinceSeconds },
    signal: o.signal,
  });
}
