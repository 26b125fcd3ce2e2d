import { UsageError } from '../core/errors.js';
import type { Step } from '../record/context.js';
import { gatewayUrl, nodePortReach } from '../demo/facts.js';
import type { UpSettings } from '../settings.js';
import { verifyOrders } from '../demo/verify.js';
import { tracingBaseUrl } from '../demo/trace-link.js';

export const ORDER_PATH = '/api/order/create';

export const gatewayUrlStep: Step<Pick<UpSettings, 'nodeAddress' | 'verify'>> = {
  id: 'gateway-url',
  title: 'Work out the gateway URL',
  readOnly: true,
  async check() {
    return { satisfied: false, detail: 'always runs (read-only)' };
  },
  async run(ctx) {
    const kube = await ctx.kube();
    const address = await nodePortReach(kube, ctx.options.cacheDir, ctx.settings.nodeAddress);
    const base = await gatewayUrl(kube, address);
    if (!base) {
      throw new UsageError('cannot work out the gateway URL: istio-ingressgateway has no LoadBalancer address and no http2 nodePort, or no node address is known', {
        hint: 'pass --node-address <address of a node>',
      });
    }
    const url = `${base}${ORDER_PATH}`;
    if (ctx.settings.verify) {
      const report = await verifyOrders(url, { signal: ctx.signal, tracingUrl: await tracingBaseUrl(kube, address) });
      for (const line of report.lines) ctx.log.info(line);
      return `${url} — ${report.summary}`;
    }
    return url;
  },
};
