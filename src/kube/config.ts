import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import { UsageError } from '../core/errors.js';

export interface ResolvedKubeconfig {
  kc: KubeConfig;
  paths: string[];
  contextName: string;
  server: string;
  /** Credentials found in the kubeconfig, to be masked in all output. */
  secrets: string[];
}

/** kubectl's precedence: --kubeconfig, then KUBECONFIG (a path list), then ~/.kube/config. Never a silent localhost fallback. */
export function kubeconfigPaths(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): { paths: string[]; source: string } {
  if (flag) return { paths: [flag], source: '--kubeconfig' };
  if (env.KUBECONFIG) {
    const paths = env.KUBECONFIG.split(path.delimiter).filter(Boolean);
    if (paths.length) return { paths, source: 'KUBECONFIG' };
  }
  return { paths: [path.join(env.HOME || os.homedir(), '.kube', 'config')], source: 'the default ~/.kube/config' };
}

export async function loadKubeconfig(opts: { kubeconfig?: string; context?: string }): Promise<ResolvedKubeconfig> {
  const { paths, source } = kubeconfigPaths(opts.kubeconfig);
  const readable = paths.filter((p) => {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch {
      return false;
    }
    // as kubectl: a directory where the kubeconfig should be is an error, not a missing file
    if (stat.isDirectory()) throw new UsageError(`kubeconfig ${p} (from ${source}) is a directory, not a file`, { hint: 'pass the path of the kubeconfig file itself' });
    return stat.isFile();
  });
  if (readable.length === 0) {
    throw new UsageError(`no kubeconfig found at ${paths.join(', ')} (from ${source})`, {
      hint: 'pass --kubeconfig <path>, set KUBECONFIG, or create a cluster (e.g. kind create cluster --image kindest/node:v1.19.16)',
    });
  }
  const { KubeConfig } = await import('@kubernetes/client-node');
  const kc = new KubeConfig();
  const secrets: string[] = [];
  const merged = { clusters: [] as any[], users: [] as any[], contexts: [] as any[], currentContext: '' };
  for (const file of readable) {
    let text: string;
    try {
      text = fs.readFileSync(file, 'utf8');
    } catch (err) {
      throw new UsageError(`cannot read kubeconfig ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
        hint: 'check the file permissions or pass another --kubeconfig',
      });
    }
    if (!text.trim()) {
      throw new UsageError(`kubeconfig ${file} is empty`, { hint: 'pass --kubeconfig with a valid file or recreate it' });
    }
    const one = new KubeConfig();
    try {
      one.loadFromString(text);
    } catch (err) {
      throw new UsageError(`kubeconfig ${file} is not valid: ${firstLine(err)}`, {
        hint: 'fix the file or pass another --kubeconfig',
      });
    }
    for (const c of one.clusters) if (!merged.clusters.some((x) => x.name === c.name)) merged.clusters.push(c);
    for (const u of one.users) {
      if (!merged.users.some((x) => x.name === u.name)) merged.users.push(u);
      for (const key of ['token', 'password', 'keyData', 'certData'] as const) {
        const v = (u as any)[key];
        if (typeof v === 'string' && v) secrets.push(v);
      }
    }
    for (const c of one.contexts) if (!merged.contexts.some((x) => x.name === c.name)) merged.contexts.push(c);
    if (!merged.currentContext && one.currentContext) merged.currentContext = one.currentContext;
  }
  kc.loadFromOptions(merged);
  const contextName = opts.context ?? merged.currentContext;
  if (!contextName) {
    throw new UsageError('the kubeconfig has no current context', { hint: 'pass --context <name> or run kubectl config use-context' });
  }
  const context = kc.getContextObject(contextName);
  if (!context) {
    const known = kc.getContexts().map((c) => c.name);
    throw new UsageError(`context "${contextName}" is not in the kubeconfig`, {
      hint: known.length ? `choose one of: ${known.join(', ')}` : 'the kubeconfig defines no contexts',
    });
  }
  kc.setCurrentContext(contextName);
  const cluster = kc.getCluster(context.cluster);
  if (!cluster?.server) {
    throw new UsageError(`context "${contextName}" names cluster "${context.cluster}", which has no server`, {
      hint: 'fix the kubeconfig or choose another --context',
    });
  }
  return { kc, paths: readable, contextName, server: cluster.server, secrets };
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}
