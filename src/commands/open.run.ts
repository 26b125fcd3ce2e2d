import { action } from './action.js';
import { UsageError } from '../core/errors.js';
import { dashboardFor, forwardDashboard, nodePortPage, openInBrowser, pagePath } from '../demo/open.js';
import { nodePortReach } from '../demo/facts.js';
import { TARGETS } from './open.js';

interface OpenSettings {
  target: string;
  traceId?: string;
  browser: boolean;
  nodeAddress?: string;
  localPort?: number;
}

function parseOpen(opts: Record<string, any>, args: string[]): OpenSettings {
  const traceId = opts.trace as string | undefined;
  if (traceId !== undefined && !/^[0-9a-f]{16}([0-9a-f]{16})?$/i.test(traceId)) {
    throw new UsageError(`--trace "${traceId}" is not a trace id`, { hint: 'pass the 32 (or 16) hex digits meshdemo traffic printed as "trace"' });
  }
  const target = args[0] ?? (traceId ? 'jaeger' : undefined);
  if (!target) throw new UsageError('open needs a dashboard', { hint: `e.g. meshdemo open kiali (one of ${TARGETS.join(', ')}), or meshdemo open --trace <id>` });
  if (!TARGETS.includes(target)) throw new UsageError(`unknown dashboard "${target}"`, { hint: `choose one of ${TARGETS.join(', ')}` });
  if (traceId && target !== 'jaeger' && target !== 'tracing') throw new UsageError(`--trace opens a trace in Jaeger, not in ${target}`, { hint: `meshdemo open jaeger --trace ${traceId}` });
  let localPort: number | undefined;
  if (opts.localPort !== undefined) {
    localPort = Number(opts.localPort);
    if (!Number.isInteger(localPort) || localPort < 1 || localPort > 65535) throw new UsageError(`--local-port "${opts.localPort}" is not a port number`, { hint: 'e.g. --local-port 20001' });
  }
  return { target, traceId: traceId?.toLowerCase(), browser: opts.browser !== false, nodeAddress: opts.nodeAddress, localPort };
}

export const run = action<OpenSettings>((opts, args) => parseOpen(opts, args), async (ctx) => {
  const kube = await ctx.kube();
  const d = dashboardFor(ctx.settings.target);
  const page = await nodePortPage(kube, d, await nodePortReach(kube, ctx.options.cacheDir, ctx.settings.nodeAddress), ctx.settings.traceId);
  let url = page.url;
  let forward: Promise<void> | undefined;
  if (!url) {
    ctx.log.info(`${page.why}: forwarding a local port through the API server`);
    const fwd = await forwardDashboard(kube, d, { localPort: ctx.settings.localPort, signal: ctx.signal, onError: (m) => ctx.log.warn(m) });
    url = `http://127.0.0.1:${fwd.port}${pagePath(d, ctx.settings.traceId)}`;
    forward = fwd.closed;
  }
  ctx.ui.print(forward ? `${url}  (port-forward: Ctrl-C to stop)` : url);
  if (ctx.settings.browser) {
    const failed = await openInBrowser(url);
    if (failed) ctx.log.warn(`could not open a browser (${failed}): open ${url} yourself`);
  }
  ctx.ui.result(true, { dashboard: d.name, url, portForward: Boolean(forward), browser: ctx.settings.browser });
  await forward;
});
