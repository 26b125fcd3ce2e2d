import { secretSetValues } from '../core/secrets.js';
import { action } from './action.js';
import { InterruptedError } from '../core/errors.js';
import type { GlobalOptions } from '../core/options.js';
import type { Context } from '../record/context.js';
import { parseUpSettings, type UpSettings } from '../settings.js';
import { runSteps } from '../core/runner.js';
import { requireWritableCacheDir } from '../core/cache-dir.js';
import { upSteps, LOCAL_STEP_IDS } from '../steps/index.js';
import { renderedApp } from '../steps/render.js';
import { summarize } from './summary.js';
import { sendTraffic } from './traffic.run.js';
import { decideLocalCluster } from '../kind/decide.js';
import { NODE_KUBERNETES_VERSION } from '../kind/pins.js';

export const run = action<UpSettings>(
  buildUpSettings,
  async (ctx) => {
    for (const value of secretSetValues(ctx.settings.istioSet)) ctx.secrets.add(value);
    if (ctx.settings.render === true) {
      // the YAML alone on stdout, so that `up --render > app.yaml` is a manifest file
      ctx.ui.print(await renderedApp(ctx));
      ctx.ui.result(true, { rendered: 'stdout' });
      return;
    }
    if (!ctx.dryRun && !ctx.settings.render) requireWritableCacheDir(ctx.options.cacheDir);
    const steps = await upSteps(ctx.settings, ctx.settings.local?.context ?? (await contextOrNothing(ctx)));
    const local = ctx.settings.local;
    if (local) ctx.log.info(`working on the local kind cluster "${local.name}" (context ${local.context}): ${local.reason}`);
    let confirmed = false;
    const confirmOnce = async () => {
      if (!confirmed) await confirmChanges(ctx);
      confirmed = true;
    };
    // the local cluster first: the cluster lock lives in the cluster, so it is taken once the cluster exists
    const outcomes = await runSteps(steps.filter((s) => LOCAL_STEP_IDS.has(s.id)), ctx, { beforeFirstChange: confirmOnce });
    outcomes.push(
      ...(await runSteps(steps.filter((s) => !LOCAL_STEP_IDS.has(s.id)), ctx, {
        beforeFirstChange: async () => {
          await confirmOnce();
          if (!ctx.settings.render) {
            await ctx.lock.acquire(); // src/record/lock.ts: one up/down at a time per cluster
            await ctx.inventory(); // a corrupted record is refused before anything changes, not half-way
          }
        },
      })),
    );
    await summarize(ctx, outcomes);
    if (ctx.settings.trafficMs !== undefined && !ctx.dryRun) {
      await ctx.lock.release(); // the cluster is not changed any more: let other up/down runs in
      await sendTraffic({ ...ctx, settings: { nodeAddress: ctx.settings.nodeAddress, durationMs: ctx.settings.trafficMs, rate: 10, concurrency: 4 } }, { asResult: false });
    }
  },
  { dryRun: (o) => Boolean(o.dryRun), context: localContext },
);

/** On the local kind cluster (src/kind/decide.ts) up, plan and download work on its context, kind-<name>. */
export function localContext(settings: { local?: { context: string } }): string | undefined {
  return settings.local?.context;
}

/** up's and plan's settings, with the local kind cluster decided (src/kind/decide.ts). */
export async function buildUpSettings(opts: Record<string, any>, _args: string[], global: GlobalOptions): Promise<UpSettings> {
  const settings = parseUpSettings(opts);
  if (settings.render) return settings;
  settings.local = decideLocalCluster(settings, global);
  return settings;
}

/** The context up will work on, if the kubeconfig names one (errors are left for the preflight step to report). */
export async function contextOrNothing(ctx: Context<UpSettings>): Promise<string | undefined> {
  return ctx.kube().then((k) => k.contextName, () => undefined);
}

async function confirmChanges(ctx: Context<UpSettings>): Promise<void> {
  if (ctx.options.yes) return;
  const local = ctx.settings.local;
  if (local && !local.exists) {
    const ok = await ctx.prompt.confirm(
      `meshdemo will create a local kind cluster "${local.name}" (Kubernetes ${NODE_KUBERNETES_VERSION}, context ${local.context}; ${local.reason}) and install the demo on it. Proceed?`,
      '--yes',
    );
    if (!ok) throw new InterruptedError('cancelled at the confirmation prompt; nothing was changed');
    return;
  }
  const kube = await ctx.kube();
  const ok = await ctx.prompt.confirm(`meshdemo will change cluster ${kube.server} (context "${kube.contextName}"). Proceed?`, '--yes');
  if (!ok) throw new InterruptedError('cancelled at the confirmation prompt; nothing was changed');
}
