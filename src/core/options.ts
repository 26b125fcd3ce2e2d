import { isIP } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { UsageError } from './errors.js';

/** commander's value parser for an option given more than once: every value, in order. */
export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

/** Options every command shares (see src/cli.ts for the flags and MESHDEMO_* variables). */
export interface GlobalOptions {
  kubeconfig?: string;
  context?: string;
  namespace: string;
  yes: boolean;
  json: boolean;
  verbose: boolean;
  cacheDir: string;
  /** --trust-cache-dir: use a cache dir others can write to (src/download/cache-files.ts, checkCacheDir). */
  trustCacheDir?: boolean;
  timeoutMs: number;
}

export function defaultCacheDir(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache');
  return path.join(base, 'meshdemo');
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** The longest --timeout: a day is past any wait meshdemo does, and far below what a Node timer can hold. */
export const MAX_TIMEOUT_MS = 24 * 3_600_000;
/** Node fires a timer of more than 2^31-1 ms after 1 ms: no duration may exceed it. */
const TIMER_LIMIT_MS = 2 ** 31 - 1;

const formatMs = (ms: number) => (ms % 3_600_000 === 0 ? `${ms / 3_600_000}h` : ms % 60_000 === 0 ? `${ms / 60_000}m` : `${ms / 1000}s`);

/**
 * "90s", "10m", "1h30m", "500ms"; a bare number means seconds (like istioctl's durations). Zero ("0", "0s") is
 * refused unless allowZero (e.g. MESHDEMO_LOCK_WAIT=0: do not wait); so is anything above maxMs (default: what a
 * Node timer can hold, about 24 days).
 */
export function parseDuration(text: string, flag = '--timeout', opts: { allowZero?: boolean; maxMs?: number } = {}): number {
  const trimmed = String(text).trim();
  let ms: number;
  if (/^\d+(\.\d+)?$/.test(trimmed)) {
    ms = Number(trimmed) * 1000;
  } else {
    const parts = [...trimmed.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
    const rebuilt = parts.map((p) => p[0]).join('');
    if (parts.length === 0 || rebuilt !== trimmed) {
      throw new UsageError(`${flag} "${text}" is not a duration`, { hint: 'use a value such as 90s, 10m or 1h30m' });
    }
    ms = parts.reduce((sum, p) => sum + Number(p[1]) * UNIT_MS[p[2]], 0);
  }
  if (Math.round(ms) <= 0 && !(opts.allowZero && ms === 0)) throw new UsageError(`${flag} must be greater than zero`, { hint: 'use a value such as 10m' });
  const max = Math.min(opts.maxMs ?? TIMER_LIMIT_MS, TIMER_LIMIT_MS);
  if (!(ms <= max)) throw new UsageError(`${flag} "${text}" is too long: at most ${formatMs(max)}`, { hint: `use a value such as 10m, at most ${formatMs(max)}` });
  return Math.round(ms);
}

/** --timeout: at most MAX_TIMEOUT_MS (it becomes istioctl's kill timer and kind's --wait). */
export function parseTimeout(text: string): number {
  return parseDuration(text, '--timeout', { maxMs: MAX_TIMEOUT_MS });
}

/**
 * A port written as a plain decimal number from 1 to 65535 — not "0x7a69", "1e4", " 31009" or "31009.0", which
 * Number() would accept; undefined for anything else.
 */
export function decimalPort(v: string | number): number | undefined {
  const text = String(v);
  if (!/^[1-9][0-9]{0,4}$/.test(text)) return undefined;
  const n = Number(text);
  return n <= 65535 ? n : undefined;
}

/** A DNS name as RFC 1123 allows it: labels of letters, digits and "-" (not at either end), at most 253 characters. */
const HOSTNAME = /^(?=.{1,253}$)[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/i;

/**
 * --node-address: an IP address or a hostname, as it goes into the printed URLs (an IPv6 address in brackets,
 * given with or without them).
 */
export function parseNodeAddress(v: string, flag = '--node-address'): string {
  const bare = v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1) : v;
  if (isIP(bare) === 6) return `[${bare}]`;
  // a name of digits and dots only would be a malformed IPv4 address ("10.0.0.256"), not a hostname
  if (bare === v && (isIP(v) === 4 || (HOSTNAME.test(v) && !/^[0-9.]+$/.test(v)))) return v;
  throw new UsageError(`${flag} "${v}" is neither an IP address nor a hostname`, { hint: 'pass the address the nodes are reached at, e.g. 192.0.2.10 or node1.example.com' });
}

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

export function validateNamespace(ns: string): string {
  if (!DNS_LABEL.test(ns) || ns.length > 63) {
    throw new UsageError(`--namespace "${ns}" is not a valid namespace name`, {
      hint: 'use lower-case letters, digits and "-", at most 63 characters',
    });
  }
  if (ns === 'istio-system' || ns === 'kube-system') {
    throw new UsageError(`--namespace ${ns} is reserved for the control plane`, { hint: 'choose the namespace for the demo app, e.g. default' });
  }
  return ns;
}
