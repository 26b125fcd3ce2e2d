import { createInterface } from 'node:readline';
import { InterruptedError, PreflightError } from '../core/errors.js';
import type { KubeClient, KubeObject } from '../kube/client.js';
import { podLogStream } from '../kube/logs.js';
import { ISTIO_NAMESPACE } from './facts.js';

import { LOG_TARGETS, type LogTarget } from '../core/names.js';

export { LOG_TARGETS, type LogTarget };
export const PROXY_CONTAINER = 'istio-proxy';

export interface LogsRequest {
  target: LogTarget;
  /** The app's namespace (the gateway's is istio-system). */
  namespace: string;
  /** The sidecar's log (istio-proxy) instead of the app's; the gateway has only that one. */
  proxy: boolean;
  follow: boolean;
  sinceSeconds?: number;
  signal: AbortSignal;
}

export interface LogLine {
  pod: string;
  container: string;
  line: string;
}

/** Where a target's pods are, and which container holds the log asked for. */
export function logSource(r: Pick<LogsRequest, 'target' | 'namespace' | 'proxy'>): { namespace: string; selector: string; container: string } {
  if (r.target === 'gateway') return { namespace: ISTIO_NAMESPACE, selector: 'istio=ingressgateway', container: PROXY_CONTAINER };
  return { namespace: r.namespace, selector: `app=${r.target}`, container: r.proxy ? PROXY_CONTAINER : r.target };
}

async function targetPods(kube: KubeClient, r: LogsRequest): Promise<{ pods: KubeObject[]; namespace: string; container: string }> {
  const { namespace, selector, container } = logSource(r);
  const pods = (await kube.list('v1', 'Pod', { namespace, labelSelector: selector }))
    .filter((p) => !p.metadata.deletionTimestamp && p.spec?.nodeName)
    .sort((a, b) => (a.metadata.name < b.metadata.name ? -1 : 1));
  if (!pods.length) {
    throw new PreflightError(`no ${r.target} pods are running in namespace ${namespace} (label ${selector})`, {
      hint: r.target === 'gateway' ? 'is Istio installed? run meshdemo up' : 'is the demo app deployed there? run meshdemo up, or pass --namespace',
    });
  }
  const without = pods.filter((p) => !(p.spec?.containers ?? []).some((c: any) => c.name === container));
  if (without.length) {
    throw new PreflightError(`pod ${without.map((p) => p.metadata.name).join(', ')} has no ${container} container`, {
      hint: container === PROXY_CONTAINER ? `the sidecar was not injected: is ${namespace} labelled istio-injection=enabled? re-run meshdemo up` : 'these pods were not made by meshdemo up',
    });
  }
  return { pods, namespace, container };
}

/**
 * The logs of every pod of a service, line by line as they arrive (interleaved across pods, whole lines only).
 * Ends when every stream has ended — with follow, when the containers stop or the signal aborts.
 */
export async function streamLogs(kube: KubeClient, r: LogsRequest, onLine: (l: LogLine) => void): Promise<{ pods: string[]; container: string }> {
  const { pods, namespace, container } = await targetPods(kube, r);
  const controller = new AbortController();
  const stop = () => controller.abort();
  r.signal.addEventListener('abort', stop, { once: true });
  try {
    const streams = await Promise.all(
      pods.map((p) => podLogStream(kube, { namespace, pod: p.metadata.name, container, follow: r.follow, sinceSeconds: r.sinceSeconds, signal: controller.signal })),
    );
    await Promise.all(
      streams.map(
        (res, i) =>
          new Promise<void>((resolve) => {
            const lines = createInterface({ input: res, crlfDelay: Infinity });
            lines.on('line', (line) => onLine({ pod: pods[i].metadata.name, container, line }));
            lines.on('close', () => resolve());
            // aborted (Ctrl-C) or the connection dropped: that pod's stream is over (readline re-emits the error)
            lines.on('error', () => resolve());
          }),
      ),
    );
  } catch (err) {
    controller.abort();
    if (r.signal.aborted) throw new InterruptedError();
    throw err;
  } finally {
    r.signal.removeEventListener('abort', stop);
  }
  if (r.signal.aborted) throw new InterruptedError();
  return { pods: pods.map((p) => p.metadata.name), container };
}
