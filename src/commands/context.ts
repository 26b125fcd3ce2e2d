import { stepLog, type EventSink } from '../core/events.js';
import { Inventory } from '../record/inventory.js';
import type { GlobalOptions } from '../core/options.js';
import type { Prompter } from '../core/prompt.js';
import type { Context } from '../record/context.js';
import { type KubeClient, connect, formatTrace } from '../kube/client.js';
import { loadKubeconfig } from '../kube/kubeconfig.js';
import { ClusterReads } from '../kube/reads.js';

export interface ContextInput<S> {
  options: GlobalOptions;
  settings: S;
  events: EventSink;
  signal: AbortSignal;
  prompt: Prompter;
  secrets: Set<string>;
  dryRun?: boolean;
}

export function createContext<S>(input: ContextInput<S>): Context<S> & { dispose(): void } {
  let kube: Promise<KubeClient> | undefined;
  let inventory: Promise<Inventory> | undefined;
  let reads: Promise<ClusterReads> | undefined;
  const log = stepLog(input.events);
  const ctx = {
    ...input,
    dryRun: input.dryRun ?? false,
    log,
    kube() {
      kube ??= (async () => {
        const resolved = await loadKubeconfig({ ...input.options, onSecret: (s) => input.secrets.add(s) });
        // --verbose: every API request as a debug line ("GET /api/v1/namespaces 200 12ms")
        const trace = input.options.verbose ? (t: Parameters<typeof formatTrace>[0]) => log.debug(formatTrace(t)) : undefined;
        return connect(resolved, { signal: input.signal, trace });
      })();
      return kube;
    },
    reads() {
      reads ??= ctx.kube().then((k) => new ClusterReads(k));
      return reads;
    },
    inventory() {
      inventory ??= ctx.kube().then((k) => Inventory.load(k, input.options.namespace));
      return inventory;
    },
    dispose() {
      kube?.then((k) => k.close()).catch(() => {});
    },
  };
  return ctx;
}
