import { action } from './action.js';
import { UsageError } from '../core/errors.js';
import { parseNodeAddress } from '../core/options.js';
import { DASHBOARDS, DEFAULT_DASHBOARDS, parseDashboardName, parseNodePort } from '../settings.js';
import { dashboardUrl, nodePortReach } from '../demo/facts.js';
import { forwardDashboard } from '../demo/open.js';
import { stateForContext, requireMapped } from '../kind/state.js';
import { exposeDashboard } from '../steps/dashboards.js';

interface ExposeSettings {
  dashboards: string[];
  nodePort?: number;
  nodeAddress?: string;
  portForward: boolean;
  localPort?: number;
}

function parseExpose(opts: Record<string, any>, args: string[]): ExposeSettings {
  const target = args[0];
  const dashboards = target === 'all' ? DEFAULT_DASHBOARDS : [parseDashboardName(target)];
  const nodePort = opts.nodePort !== undefined ? parseNodePort(opts.nodePort) : undefined;
  if (target === 'all' && nodePort !== undefined) {
    throw new UsageError('--node-port names one port, but "all" exposes several dashboards', { hint: 'expose them one by one, or use meshdemo up --node-port kiali=31001,…' });
  }
  if (opts.portForward && nodePort !== undefined) throw new UsageError('--port-forward and --node-port exclude each other', { hint: 'choose one way to reach the dashboard' });
  if (opts.portForward && dashboards.length > 1) throw new UsageError('--port-forward forwards one dashboard', { hint: 'name it, e.g. meshdemo expose kiali --port-forward' });
  if (!opts.portForward && opts.localPort !== undefined) throw new UsageError('--local-port goes with --port-forward', { hint: 'add --port-forward' });
  const localPort = opts.localPort !== undefined ? parseNodePort(opts.localPort, '--local-port') : undefined;
  return { dashboards, nodePort, nodeAddress: opts.nodeAddress !== undefined ? parseNodeAddress(opts.nodeAddress) : undefined, portForward: Boolean(opts.portForward), localPort };
}

export const run = action<ExposeSettings>((opts, args) => parseExpose(opts, args), async (ctx) => {
  const kube = await ctx.kube();
  if (ctx.settings.portForward) {
    const d = DASHBOARDS[ctx.settings.dashboards[0]];
    const fwd = await forwardDashboard(kube, d, { localPort: ctx.settings.localPort, signal: ctx.signal, onError: (m) => ctx.log.warn(m) });
    const url = `http://127.0.0.1:${fwd.port}${d.path}`;
    ctx.ui.print(`${d.name} ${url}  (port-forward: Ctrl-C to stop)`);
    ctx.ui.result(true, { dashboards: { [d.name]: url }, portForward: true });
    await fwd.closed;
    return;
  }
  // on meshdemo's local kind cluster only the ports kind mapped at creation reach 127.0.0.1
  const local = ctx.settings.nodeAddress ? undefined : stateForContext(ctx.options.cacheDir, kube.contextName);
  if (local) {
    const wanted = ctx.settings.dashboards.map((name) => ({ name, containerPort: ctx.settings.nodePort ?? DASHBOARDS[name].defaultNodePort }));
    requireMapped(
      local,
      wanted,
      (m) => `pass a mapped one with --node-port, or use meshdemo expose ${m.name} --port-forward; to map it, create the cluster again: meshdemo down, then meshdemo up --node-port ${m.name}=${m.containerPort}`,
    );
  }
  await ctx.lock.acquire(); // src/record/lock.ts: a NodePort change waits for a running up/down
  const inventory = await ctx.inventory();
  const address = await nodePortReach(kube, ctx.options.cacheDir, ctx.settings.nodeAddress);
  const urls: Record<string, string> = {};
  for (const name of ctx.settings.dashboards) {
    const port = ctx.settings.nodePort ?? DASHBOARDS[name].defaultNodePort;
    const change = await exposeDashboard(kube, inventory, name, port);
    const url = (await dashboardUrl(kube, name, address)) ?? `(node port ${port}; no node address known — pass --node-address)`;
    urls[name] = url;
    ctx.ui.print(`${name.padEnd(10)} ${url}${change === 'unchanged' ? '  (already exposed)' : ''}`);
  }
  ctx.ui.result(true, { dashboards: urls });
});
