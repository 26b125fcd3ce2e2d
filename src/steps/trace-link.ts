import type { KubeClient } from '../kube/client.js';
import { dashboardUrl } from './facts.js';

/** Where Jaeger's UI is reachable: the tracing dashboard's NodePort URL (meshdemo expose tracing), without the path. */
export async function tracingBaseUrl(kube: KubeClient, address: string | undefined): Promise<string | undefined> {
  const url = await dashboardUrl(kube, 'tracing', address);
  return url?.replace(/\/+$/, '');
}
