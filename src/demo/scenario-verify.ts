import { versionOf, type TrafficSummary } from './traffic.js';
import type { ServiceName } from '../settings.js';

/** How far a measured share may be from the asked one, in percentage points. */
export const TOLERANCE_POINTS = 5;

export interface ShareCheck {
  label: string;
  askedPercent: number;
  measuredPercent: number;
  count: number;
  total: number;
  ok: boolean;
}

/** A measured effect that is not a share: what was expected and what was measured, in words. */
export interface EffectCheck {
  label: string;
  expected: string;
  measured: string;
  ok: boolean;
}

export type Check = ShareCheck | EffectCheck;

/** Successful requests per version of the service, from `<pod>/<version>` in the served-by headers. */
export function versionCounts(summary: Pick<TrafficSummary, 'apiServedBy' | 'servedBy' | 'payServedBy'>, service: ServiceName): Record<string, number> {
  const byPod = service === 'micro-api' ? summary.apiServedBy : service === 'micro-order' ? summary.servedBy : summary.payServedBy;
  const out: Record<string, number> = {};
  for (const [pod, n] of Object.entries(byPod)) out[versionOf(pod)] = (out[versionOf(pod)] ?? 0) + n;
  return out;
}

export function shareCheck(label: string, asked: number, count: number, total: number): ShareCheck {
  const measured = total ? (count / total) * 100 : 0;
  return { label, askedPercent: asked, measuredPercent: Math.round(measured * 10) / 10, count, total, ok: total > 0 && Math.abs(measured - asked) <= TOLERANCE_POINTS };
}

/** The share per version against the weights asked (v1 = 100 − v2). */
export function canaryChecks(summary: TrafficSummary, service: ServiceName, weights: Record<string, number>): ShareCheck[] {
  const counts = versionCounts(summary, service);
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return Object.entries(weights).map(([v, w]) => shareCheck(`${service} ${v}`, w, counts[v] ?? 0, total));
}

export function formatCheck(c: Check): string {
  if (!('askedPercent' in c)) return `${c.label.padEnd(22)} expected ${c.expected}  measured ${c.measured}  ${c.ok ? 'ok' : 'NOT as expected'}`;
  return `${c.label.padEnd(22)} asked ${String(c.askedPercent).padStart(3)}%  measured ${c.measuredPercent.toFixed(1).padStart(5)}%  (${c.count}/${c.total})  ${c.ok ? 'ok' : `more than ${TOLERANCE_POINTS} points off`}`;
}
