import { action, type CommandContext } from './action.js';
import { InterruptedError, UsageError } from '../core/errors.js';
import { parseDuration, parseNodeAddress } from '../core/options.js';
import { gatewayUrl, nodePortReach } from '../demo/facts.js';
import { tracingBaseUrl } from '../demo/trace-link.js';
import { runTraffic, formatSnapshot, formatSummary, checkTraffic, traceLink } from '../demo/traffic.js';
import { createLiveLine } from '../ui/live-line.js';

export interface TrafficSettings {
  url?: string;
  tracingUrl?: string;
  nodeAddress?: string;
  rate?: number;
  durationMs?: number;
  requests?: number;
  concurrency: number;
}

function positiveInt(value: string, flag: string, max: number, example: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1 || n > max) throw new UsageError(`${flag} "${value}" is not a whole number from 1 to ${max}`, { hint: `e.g. ${flag} ${example}` });
  return n;
}

function httpUrl(value: string, flag: string, example: string): string {
  if (!/^https?:\/\/[^/]/.test(value)) throw new UsageError(`${flag} "${value}" is not an http(s) URL`, { hint: `e.g. ${flag} ${example}` });
  return value;
}

export function parseTraffic(opts: Record<string, any>): TrafficSettings {
  let rate: number | undefined;
  if (opts.rate !== undefined) {
    rate = Number(opts.rate);
    if (!Number.isFinite(rate) || rate < 0 || rate > 10_000) throw new UsageError(`--rate "${opts.rate}" is not a number of requests per second from 0 to 10000`, { hint: 'e.g. --rate 10 (0: as fast as --concurrency allows)' });
  }
  return {
    url: opts.url ? httpUrl(opts.url, '--url', 'http://127.0.0.1:9090/api/order/create') : undefined,
    tracingUrl: opts.tracingUrl ? httpUrl(opts.tracingUrl, '--tracing-url', 'http://127.0.0.1:16686') : undefined,
    nodeAddress: opts.nodeAddress !== undefined ? parseNodeAddress(opts.nodeAddress) : undefined,
    rate: rate || undefined,
    durationMs: opts.duration !== undefined ? parseDuration(opts.duration, '--duration') : undefined,
    requests: opts.requests !== undefined ? positiveInt(opts.requests, '--requests', 10_000_000, '600') : undefined,
    concurrency: positiveInt(opts.concurrency ?? '4', '--concurrency', 256, '4'),
  };
}

export const run = action<TrafficSettings>((opts) => parseTraffic(opts), (ctx) => sendTraffic(ctx));

/**
 * The traffic run shared by `traffic` and `up --traffic`. `asResult`: the summary is the command's result event
 * (traffic); otherwise a `traffic` summary event after up's own result.
 */
export async function sendTraffic(ctx: CommandContext<TrafficSettings>, opts: { asResult?: boolean } = { asResult: true }): Promise<void> {
  const s = ctx.settings;
  let url = s.url;
  let tracingUrl = s.tracingUrl;
  if (!url) {
    const kube = await ctx.kube();
    const address = await nodePortReach(kube, ctx.options.cacheDir, s.nodeAddress);
    const base = await gatewayUrl(kube, address);
    if (!base) throw new UsageError('cannot work out the gateway URL', { hint: 'pass --url or --node-address' });
    url = `${base}/api/order/create`;
    if (!tracingUrl) tracingUrl = await tracingBaseUrl(kube, address);
  }
  const bound = [s.requests !== undefined ? `${s.requests} requests` : '', s.durationMs !== undefined ? `${s.durationMs / 1000}s` : ''].filter(Boolean).join(' or ') || 'Ctrl-C';
  ctx.log.info(`sending orders to ${url} at ${s.rate ? `${s.rate}/s` : 'full speed'}, ${s.concurrency} at a time, until ${bound}`);
  const line = await createLiveLine(ctx.ui);
  const summary = await runTraffic({
    url,
    rate: s.rate,
    durationMs: s.durationMs,
    requests: s.requests,
    concurrency: s.concurrency,
    signal: ctx.signal,
    onProgress: (snap) => {
      line.update(formatSnapshot(snap));
      if (ctx.ui.mode === 'json') ctx.ui.emit({ type: 'traffic', phase: 'progress', ...snap });
    },
  });
  line.stop();
  for (const l of formatSummary(summary, tracingUrl)) ctx.ui.print(l);
  const data = { url, ...summary, traceUrl: summary.traceId && tracingUrl ? traceLink(tracingUrl, summary.traceId) : undefined };
  if (summary.interrupted) {
    ctx.ui.emit({ type: 'traffic', phase: 'summary', ...data });
    throw new InterruptedError('traffic stopped by Ctrl-C');
  }
  checkTraffic(summary, url);
  if (opts.asResult) ctx.ui.result(true, { traffic: data });
  else ctx.ui.emit({ type: 'traffic', phase: 'summary', ...data });
}
