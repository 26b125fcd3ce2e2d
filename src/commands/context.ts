import { stepLog, type EventSink } from '../core/events.js';
import { Inventory } from '../record/inventory.js';
import type { GlobalOptions } from '../core/options.js';
import type { Prompter } from '../core/prompt.js';
import type { Context } from '../record/context.js';
import type { KubeClient } from '../kube/client.js';

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
  const ctx = {
    ...input,
    dryRun: input.dryRun ?? false,
    log: stepLog(input.events),
    kube() {
      kube ??= (async () => {
        const { loadKubeconfig } = await import('../kube/config.js');
        const { connect } = await import('../kube/client.js');
        const resolved = await loadKubeconfig({ ...input.options, onSecret: (s) => input.secrets.add(s) });
        return connect(resolved, { signal: input.signal });
      })();
      return kube;
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
