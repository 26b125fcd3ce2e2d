import { UsageError } from '../core/errors.js';
import type { Context } from '../record/context.js';
import { gatewayUrl, nodePortReach } from './facts.js';
import { runTraffic, type TrafficSummary } from './traffic.js';
import { ORDER_PATH } from './scenarios.js';

/** Settings every scenario command shares (--verify, --requests, --url, --node-address, --dry-run or --render). */
export interface ScenarioCommonSettings {
  verify: boolean;
  requests: number;
  url?: string;
  nodeAddress?: string;
  dryRun: boolean;
}

export function parseScenarioCommon(opts: Record<string, any>): ScenarioCommonSettings {
  const requests = Number(opts.requests ?? 400);
  if (!Number.isInteger(requests) || requests < 20 || requests > 100_000) {
    throw new UsageError(`--requests "${opts.requests}" is not a whole number from 20 to 100000`, { hint: 'e.g. --requests 400 (more requests measure a share more precisely)' });
  }
  if (opts.url !== undefined && !/^https?:\/\/[^/]/.test(opts.url)) throw new UsageError(`--url "${opts.url}" is not an http(s) URL`, { hint: 'e.g. --url http://127.0.0.1:31080/api/order/create' });
  return { verify: Boolean(opts.verify), requests, url: opts.url, nodeAddress: opts.nodeAddress, dryRun: Boolean(opts.dryRun || opts.render) };
}

/** Orders through the gateway (or --url), as fast as 8 at a time allow, to measure what a scenario does. */
export async function measure(ctx: Context<ScenarioCommonSettings>, opts: { slowerThanMs?: number; timeoutMs?: number } = {}): Promise<{ url: string; summary: TrafficSummary }> {
  let url = ctx.settings.url;
  if (!url) {
    const kube = await ctx.kube();
    const base = await gatewayUrl(kube, await nodePortReach(kube, ctx.options.cacheDir, ctx.settings.nodeAddress));
    if (!base) throw new UsageError('cannot work out the gateway URL to verify through', { hint: 'pass --url or --node-address' });
    url = `${base}${ORDER_PATH}`;
  }
  const summary = await runTraffic({ url, requests: ctx.settings.requests, concurrency: 8, signal: ctx.signal, slowerThanMs: opts.slowerThanMs, timeoutMs: opts.timeoutMs });
  return { url, summary };
}
