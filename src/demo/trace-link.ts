import type { KubeReader } from '../kube/reads.js';
import { dashboardUrl, type NodePortReach } from './facts.js';

/** Where Jaeger's UI is reachable: the tracing dashboard's NodePort URL (meshdemo expose tracing), its origin only. */
export async function tracingBaseUrl(kube: KubeReader, address: string | undefined | NodePortReach): Promise<string | undefined> {
  const url = await dashboardUrl(kube, 'tracing', address);
  return url ? new URL(url).origin : undefined;
}

/** The 1.8.4 Jaeger addon serves its UI under QUERY_BASE_PATH=/jaeger (samples/addons/jaeger.yaml). */
export function traceLink(tracingUrl: string, traceId: string): string {
  return `${tracingUrl.replace(/\/+$/, '')}/jaeger/trace/${traceId}`;
}
