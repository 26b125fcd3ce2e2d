import type { Context } from '../record/context.js';
import { dashboardUrl, gatewayUrl, nodePortReach } from './facts.js';
import { DASHBOARDS } from '../settings.js';

/** The URLs `up` ends with: the gateway's order endpoint, its https port, and every exposed dashboard. */
export async function collectUrls(ctx: Context<{ nodeAddress?: string; app?: boolean }>): Promise<Record<string, string>> {
  const kube = await ctx.reads();
  const address = await nodePortReach(kube, ctx.options.cacheDir, ctx.settings.nodeAddress);
  const urls: Record<string, string> = {};
  if (ctx.settings.app !== false) {
    const gateway = await gatewayUrl(kube, address);
    if (gateway) urls.gateway = `${gateway}/api/order/create`;
    // SECURE_INGRESS_PORT: the demo's Gateway serves only port 80, so this answers once a TLS server is added to it
    const secure = await gatewayUrl(kube, address, 'https');
    if (secure) urls.https = secure;
  }
  for (const name of Object.keys(DASHBOARDS)) {
    const url = await dashboardUrl(kube, name, address);
    if (url) urls[name] = url;
  }
  return urls;
}
