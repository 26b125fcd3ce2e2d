import { randomBytes } from 'node:crypto';
import { ExternalCommandError } from '../core/errors.js';
import { traceLink } from './trace-link.js';

export interface VerifyReport {
  ok: number;
  failed: number;
  lines: string[];
  summary: string;
  servedBy: Record<string, number>;
  /** The last successful order's trace, as micro-api returned it (x-b3-traceid). */
  traceId?: string;
}

/** POSTs sample orders to the gateway: success, latency, and which micro-order pods answered. */
export async function verifyOrders(url: string, opts: { count?: number; signal?: AbortSignal; timeoutMs?: number; tracingUrl?: string } = {}): Promise<VerifyReport> {
  const count = opts.count ?? 6;
  const { request } = await import('undici');
  const lines: string[] = [];
  const servedBy: Record<string, number> = {};
  const latencies: number[] = [];
  let ok = 0;
  let traceId: string | undefined;
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    try {
      const res = await request(url, {
        method: 'POST',
        // a new sampled B3 trace per order: the gateway's Envoy continues it, micro-api hands its id back
        headers: { 'content-type': 'application/json', 'x-b3-traceid': randomBytes(16).toString('hex'), 'x-b3-spanid': randomBytes(8).toString('hex'), 'x-b3-sampled': '1' },
        body: JSON.stringify({ businessId: `meshdemo-verify-${i}`, amount: 100, channel: 1 }),
        signal: opts.signal,
        headersTimeout: opts.timeoutMs ?? 5000,
        bodyTimeout: opts.timeoutMs ?? 5000,
      });
      const ms = performance.now() - started;
      const body: any = await res.body.json().catch(() => undefined);
      const order = String(res.headers['x-order-served-by'] ?? '?');
      if (res.statusCode === 200 && body?.code === 0) {
        ok++;
        latencies.push(ms);
        servedBy[order] = (servedBy[order] ?? 0) + 1;
        const trace = typeof res.headers['x-b3-traceid'] === 'string' ? res.headers['x-b3-traceid'] : undefined;
        if (trace) traceId = trace;
        lines.push(`order ${i + 1}: ${res.statusCode} in ${ms.toFixed(0)}ms, orderId ${body.data?.orderId}, micro-order ${order}${trace ? `, trace ${trace}` : ''}`);
      } else {
        lines.push(`order ${i + 1}: HTTP ${res.statusCode} ${JSON.stringify(body ?? '').slice(0, 120)}`);
      }
    } catch (err) {
      lines.push(`order ${i + 1}: ${(err as Error).message}`);
    }
  }
  const summary = summaryLine({ ok, count, latencies, servedBy, traceId, tracingUrl: opts.tracingUrl });
  if (ok === 0) throw new ExternalCommandError(`no order succeeded through ${url}`, { details: lines, hint: 'check meshdemo status and the ingress gateway' });
  return { ok, failed: count - ok, lines, summary, servedBy, traceId };
}

/** "5/6 orders succeeded, median 12ms, answered by 2 micro-order pod(s): a×3, b×2; trace <link>" */
function summaryLine(r: { ok: number; count: number; latencies: number[]; servedBy: Record<string, number>; traceId?: string; tracingUrl?: string }): string {
  const median = r.latencies.sort((a, b) => a - b)[Math.floor(r.latencies.length / 2)];
  const link = r.traceId && r.tracingUrl ? `; trace ${traceLink(r.tracingUrl, r.traceId)}` : r.traceId ? `; trace ${r.traceId}` : '';
  return `${r.ok}/${r.count} orders succeeded${r.ok ? `, median ${median.toFixed(0)}ms, answered by ${Object.keys(r.servedBy).length} micro-order pod(s): ${Object.entries(r.servedBy).map(([k, v]) => `${k}×${v}`).join(', ')}${link}` : ''}`;
}
