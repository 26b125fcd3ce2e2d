import { action } from './action.js';
import { UsageError } from '../core/errors.js';
import { gatewayUrl, nodePortReach } from '../demo/facts.js';
import { verifyOrders } from '../demo/verify.js';
import { traceLink, tracingBaseUrl } from '../demo/trace-link.js';

export const run = action(
  (opts) => {
    const count = Number(opts.count);
    if (!Number.isInteger(count) || count < 1 || count > 1000) throw new UsageError(`--count "${opts.count}" is not a number from 1 to 1000`, { hint: 'e.g. --count 6' });
    if (opts.url && !/^https?:\/\//.test(opts.url)) throw new UsageError(`--url "${opts.url}" is not an http(s) URL`, { hint: 'e.g. --url http://127.0.0.1:31380/api/order/create' });
    if (opts.tracingUrl && !/^https?:\/\//.test(opts.tracingUrl)) throw new UsageError(`--tracing-url "${opts.tracingUrl}" is not an http(s) URL`, { hint: 'e.g. --tracing-url http://127.0.0.1:16686' });
    return { url: opts.url as string | undefined, nodeAddress: opts.nodeAddress as string | undefined, count, tracingUrl: opts.tracingUrl as string | undefined };
  },
  async (ctx) => {
    let url = ctx.settings.url;
    let tracingUrl = ctx.settings.tracingUrl;
    if (!url) {
      const kube = await ctx.kube();
      const address = await nodePortReach(kube, ctx.options.cacheDir, ctx.settings.nodeAddress);
      const base = await gatewayUrl(kube, address);
      if (!base) throw new UsageError('cannot work out the gateway URL', { hint: 'pass --url or --node-address' });
      url = `${base}/api/order/create`;
      tracingUrl ??= await tracingBaseUrl(kube, address);
    }
    const report = await verifyOrders(url, { count: ctx.settings.count, signal: ctx.signal, tracingUrl });
    for (const line of report.lines) ctx.ui.print(line);
    ctx.ui.print(report.summary);
    const traceUrl = report.traceId && tracingUrl ? traceLink(tracingUrl, report.traceId) : undefined;
    ctx.ui.result(true, { url, ok: report.ok, failed: report.failed, servedBy: report.servedBy, traceId: report.traceId, traceUrl });
  },
);
