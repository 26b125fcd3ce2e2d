import os from 'node:os';
import path from 'node:path';
import { UsageError } from './errors.js';

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

/**
 * "90s", "10m", "1h30m", "500ms"; a bare number means seconds (like istioctl's durations). Zero ("0", "0s") is
 * refused unless allowZero (e.g. MESHDEMO_LOCK_WAIT=0: do not wait).
 */
export function parseDuration(text: string, flag = '--timeout', opts: { allowZero?: boolean } = {}): number {
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
  return Math.round(ms);
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
