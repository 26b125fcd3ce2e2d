import net from 'node:net';
import { Writable } from 'node:stream';
import { UsageError } from '../core/errors.js';
import type { KubeClient } from './client.js';

/**
 * Forwards 127.0.0.1:localPort to a ready pod behind the Service, through the API server (like
 * `istioctl dashboard` / `kubectl port-forward`). Resolves with the bound port; closes when `signal` aborts.
 */
export async function forwardServicePort(
  kube: KubeClient,
  opts: { namespace: string; service: string; portName?: string; localPort: number; signal: AbortSignal; onError?: (msg: string) => void },
): Promise<{ port: number; closed: Promise<void> }> {
  const svc = await kube.get({ apiVersion: 'v1', kind: 'Service', namespace: opts.namespace, name: opts.service });
  if (!svc) throw new UsageError(`Service ${opts.namespace}/${opts.service} does not exist`, { hint: 'run meshdemo up first' });
  const ports: any[] = svc.spec?.ports ?? [];
  const port = (opts.portName && ports.find((p) => p.name === opts.portName)) || ports[0];
  const selector = Object.entries(svc.spec?.selector ?? {}).map(([k, v]) => `${k}=${v}`).join(',');
  const pods = selector ? await kube.list('v1', 'Pod', { namespace: opts.namespace, labelSelector: selector }) : [];
  const pod = pods.find((p) => p.status?.phase === 'Running' && !p.metadata.deletionTimestamp);
  if (!pod) throw new UsageError(`no running pod behind Service ${opts.namespace}/${opts.service}`, { hint: 'check meshdemo status and wait for the addon to be ready' });
  let target = port?.targetPort ?? port?.port;
  if (typeof target === 'string') {
    const named = (pod.spec?.containers ?? []).flatMap((c: any) => c.ports ?? []).find((p: any) => p.name === target);
    target = named?.containerPort;
  }
  if (typeof target !== 'number') throw new UsageError(`cannot tell the target port of Service ${opts.service}`);
  const { PortForward } = await import('@kubernetes/client-node');
  const forward = new PortForward(await kube.kubeConfig());
  const server = net.createServer((socket) => {
    // the kubelet writes why it could not reach the pod's port on the error stream, then closes the WebSocket;
    // client-node leaves the local connection open either way: end it, or the browser waits forever
    const kubeletError = new Writable({
      write(chunk: Buffer, _encoding, done) {
        opts.onError?.(`port-forward to ${pod.metadata.name}: ${chunk.toString('utf8').trim()}`);
        done();
      },
    });
    forward.portForward(opts.namespace, pod.metadata.name, [target], socket, kubeletError, socket).then(
      (ws) => {
        const end = () => socket.end();
        if (typeof ws === 'function') return; // only with retries, which meshdemo does not ask for
        if (ws.readyState === ws.CLOSED) end();
        else ws.addEventListener('close', end);
      },
      (err: Error) => {
        opts.onError?.(`port-forward to ${pod.metadata.name}: ${err.message}`);
        socket.destroy();
      },
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', (err: NodeJS.ErrnoException) =>
      reject(err.code === 'EADDRINUSE' ? new UsageError(`local port ${opts.localPort} is in use`, { hint: 'choose another with --local-port' }) : err),
    );
    server.listen(opts.localPort, '127.0.0.1', () => resolve());
  });
  const closed = new Promise<void>((resolve) => {
    const close = () => server.close(() => resolve());
    if (opts.signal.aborted) close();
    else opts.signal.addEventListener('abort', close, { once: true });
  });
  return { port: (server.address() as net.AddressInfo).port, closed };
}
