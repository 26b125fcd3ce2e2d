import { spawn } from 'node:child_process';
import net from 'node:net';
import type { KubeClient } from '../kube/client.js';
import { forwardServicePort } from '../kube/port-forward.js';
import { DASHBOARDS, type Dashboard } from '../settings.js';
import { dashboardUrl, ISTIO_NAMESPACE, type NodePortReach } from './facts.js';

/** `meshdemo open`'s names are the dashboards', and jaeger for the tracing dashboard (Jaeger's UI). */
export function dashboardFor(target: string): Dashboard {
  return DASHBOARDS[target === 'jaeger' ? 'tracing' : target];
}

/** The page to open under a dashboard's origin: its path, or with a trace id Jaeger's page of that trace. */
export function pagePath(d: Dashboard, traceId?: string): string {
  return traceId ? `${d.path}/trace/${traceId}` : d.path;
}

/** The default local port of a port-forward, as `istioctl dashboard` uses it (istioctl/cmd/dashboard.go, 1.8). */
export const FORWARD_PORTS: Record<string, number> = { kiali: 20001, grafana: 3000, prometheus: 9090, tracing: 16686, zipkin: 9411 };

/** A port-forward to a dashboard (open and expose --port-forward): on localPort, else istioctl's port for it. */
export function forwardDashboard(kube: KubeClient, d: Dashboard, o: { localPort?: number; signal: AbortSignal; onError: (message: string) => void }): ReturnType<typeof forwardServicePort> {
  return forwardServicePort(kube, { namespace: ISTIO_NAMESPACE, service: d.service, portName: d.portName, localPort: o.localPort ?? FORWARD_PORTS[d.name] ?? 0, signal: o.signal, onError: o.onError });
}

/** Whether a TCP connection to the URL's host and port succeeds within `timeoutMs`. */
export function reachable(url: string, timeoutMs = 1500): Promise<boolean> {
  const u = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: u.hostname, port: Number(u.port || 80) });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

/** The dashboard's NodePort URL with the page's path when it answers, else undefined (not exposed, or not reachable from here). */
export async function nodePortPage(kube: KubeClient, d: Dashboard, address: NodePortReach, traceId?: string): Promise<{ url?: string; why?: string }> {
  const url = await dashboardUrl(kube, d.name, address);
  if (!url) return { why: `${d.name} has no node port reachable from here` };
  const origin = new URL(url).origin;
  if (!(await reachable(origin))) return { why: `${origin} does not answer from here` };
  return { url: origin + pagePath(d, traceId) };
}

/**
 * The platform's way to open a URL in the default browser: xdg-open (freedesktop xdg-utils) on Linux and the BSDs,
 * open(1) on macOS, `cmd /c start "" <url>` on Windows (start's first quoted argument is the window title).
 */
export function opener(platform: NodeJS.Platform = process.platform): { command: string; args: (url: string) => string[] } {
  if (platform === 'darwin') return { command: 'open', args: (url) => [url] };
  if (platform === 'win32') return { command: 'cmd', args: (url) => ['/c', 'start', '""', url.replace(/&/g, '^&')] };
  return { command: 'xdg-open', args: (url) => [url] };
}

/** Starts the browser; resolves with undefined when the opener ran, or why it could not. */
export function openInBrowser(url: string, platform: NodeJS.Platform = process.platform): Promise<string | undefined> {
  const o = opener(platform);
  return new Promise((resolve) => {
    const child = spawn(o.command, o.args(url), { stdio: 'ignore', detached: platform !== 'win32' });
    child.once('error', (err: NodeJS.ErrnoException) => resolve(err.code === 'ENOENT' ? `${o.command} is not installed` : `${o.command}: ${err.message}`));
    child.once('exit', (code) => resolve(code === 0 ? undefined : `${o.command} exited with code ${code}`));
  });
}
