import { action, type CommandContext } from './action.js';
import { InterruptedError } from '../core/errors.js';
import type { PlanItem } from '../down/phase.js';
import { type DownSettings, loadRecords } from '../down/records.js';
import { type LocalClusterState, sameClusterAsRecorded } from '../kind/state.js';
import { parseClusterName } from '../kind/pins.js';
import { recordedLocalCluster } from '../kind/decide.js';
import { kubeconfigPaths } from '../kube/kubeconfig.js';
import { DOWN_STEPS, planDown } from '../steps/down.js';
import { runSteps } from '../core/runner.js';
import { localClusterDelete } from '../steps/local-cluster-down.js';

export const run = action<LocalDownOptions>(
  async (opts, _args, global) => {
    const recorded = recordedLocalCluster(global, parseClusterName(opts.clusterName ?? 'meshdemo'));
    let local = recorded.cluster;
    let replaced: LocalClusterState | undefined;
    if (local && !sameClusterAsRecorded(local, kubeconfigPaths(global.kubeconfig).paths)) [replaced, local] = [local, undefined];
    const settings = { keepIstio: Boolean(opts.keepIstio), force: Boolean(opts.force), keepCluster: Boolean(opts.keepCluster), local, replaced };
    return { ...settings, recordedContext: recorded.context, state: { deadline: Number.POSITIVE_INFINITY } };
  },
  down,
  { dryRun: (o) => Boolean(o.dryRun), context: (settings) => settings.recordedContext },
);

/** `recordedContext`: with no context in use, the recorded local cluster's (src/kind/decide.ts recordedLocalCluster). */
type LocalDownOptions = DownSettings & { keepCluster: boolean; local?: LocalClusterState; replaced?: LocalClusterState; recordedContext?: string };

/** No inventory and no --force: say so, and remove a lock a dead run left behind. */
async function reportNothingRecorded(ctx: CommandContext<LocalDownOptions>, where: string): Promise<void> {
  const ns = ctx.options.namespace;
  const message = `nothing recorded: there is no meshdemo inventory (ConfigMap ${ns}/meshdemo-inventory) on ${where}; nothing to remove`;
  const hint = 'down removes only what up recorded; to remove the well-known demo objects by name and label anyway, run meshdemo down --force';
  ctx.ui.print(message);
  ctx.ui.print(`  ${hint}`);
  const abandoned = ctx.dryRun ? undefined : await ctx.lock.clearStale();
  if (abandoned) ctx.ui.print(`  removed the lock a meshdemo run that no longer runs left behind (holder ${abandoned})`);
  ctx.ui.result(true, { recorded: false, message, hint, plan: [], steps: [] });
}

/** The plan before the confirmation: log events with --json, a table otherwise. */
function printPlan(ctx: CommandContext<LocalDownOptions>, plan: { items: PlanItem[]; notes: string[] }, onWhere: string, source: string): void {
  if (ctx.ui.mode === 'json') {
    for (const i of plan.items) ctx.ui.emit({ type: 'log', step: i.phase, level: 'info', message: `plan: ${i.action} ${i.target}${i.detail ? ` — ${i.detail}` : ''}` });
    for (const n of plan.notes) ctx.ui.emit({ type: 'log', level: 'note', message: n });
    return;
  }
  ctx.ui.print(plan.items.length ? `meshdemo down ${onWhere}, from ${source}, will:` : `nothing left to remove ${onWhere} (from ${source})`);
  for (const i of plan.items) ctx.ui.print(`  ${i.action.padEnd(9)} ${i.target}${i.detail ? ` — ${i.detail}` : ''}`);
  for (const n of plan.notes) ctx.ui.print(`  note: ${n}`);
}

async function down(ctx: CommandContext<LocalDownOptions>): Promise<void> {
  const { replaced } = ctx.settings;
  if (replaced) {
    ctx.log.note(
      `kind cluster "${replaced.name}" is not the one meshdemo created at ${replaced.createdAt} (its certificate authority differs: it was created again outside meshdemo): down never deletes it, and works on it as on any cluster`,
    );
  }
  if (ctx.settings.local && !ctx.settings.keepCluster) {
    if (!ctx.settings.keepIstio) return deleteLocalCluster(ctx, ctx.settings.local);
    ctx.log.note(`--keep-istio keeps the local kind cluster "${ctx.settings.local.name}" too: deleting it would remove Istio with it`);
  }
  const kube = await ctx.kube();
  const state = ctx.settings.state;
  const ns = ctx.options.namespace;
  const where = `cluster ${kube.server} (context "${kube.contextName}")`;
  state.deadline = Date.now() + ctx.options.timeoutMs;
  state.records = await loadRecords(ctx);

  if (state.records.source === 'none') return reportNothingRecorded(ctx, where);
  if (ctx.settings.force && state.records.source === 'inventory') ctx.log.note(`--force is not needed: using the inventory in ${ns}`);

  const plan = await planDown(ctx);
  const source = state.records.source === 'inventory' ? `the inventory ${ns}/meshdemo-inventory` : '--force (well-known names and labels)';
  printPlan(ctx, plan, `on ${where}`, source);

  const outcomes = await runSteps(DOWN_STEPS, ctx, {
    beforeFirstChange: async () => {
      if (!ctx.options.yes) {
        const ok = await ctx.prompt.confirm(`Delete and revert the above on ${where}?`, '--yes');
        if (!ok) throw new InterruptedError('cancelled at the confirmation prompt; nothing was changed');
      }
      await ctx.lock.acquire();
      // another up/down may have run while we waited for the lock: work from the record as it is now
      state.records = await loadRecords(ctx);
      state.deadline = Date.now() + ctx.options.timeoutMs;
    },
  });

  const ran = outcomes.filter((o) => o.status === 'done').length;
  const planned = outcomes.filter((o) => o.status === 'planned').length;
  ctx.ui.print(
    ctx.dryRun
      ? `dry run: nothing changed; ${planned} phase(s) would run, ${outcomes.length - planned} have nothing to do`
      : ran
        ? `done: ${ran} phase(s) ran, ${outcomes.length - ran} had nothing to do`
        : `nothing to do: meshdemo's objects are already gone from ${where}`,
  );
  ctx.ui.result(true, { recorded: true, source: state.records.source, dryRun: ctx.dryRun, plan: plan.items, notes: plan.notes, steps: outcomes });
}

/** down on the local kind cluster meshdemo created: the plan, the confirmation, kind delete cluster. */
async function deleteLocalCluster(ctx: CommandContext<unknown>, cluster: LocalClusterState): Promise<void> {
  const stepCtx = { ...ctx, settings: { cluster } };
  const what = `the local kind cluster "${cluster.name}" (context ${cluster.context}), created by meshdemo at ${cluster.createdAt}`;
  const plan = { action: 'delete', target: `kind cluster "${cluster.name}"`, detail: `with everything in it (kind delete cluster --name ${cluster.name}); --keep-cluster removes only the demo` };
  if (ctx.ui.mode === 'json') ctx.ui.emit({ type: 'log', step: localClusterDelete.id, level: 'info', message: `plan: ${plan.action} ${plan.target} — ${plan.detail}` });
  else {
    ctx.ui.print(`meshdemo down on ${what} will:`);
    ctx.ui.print(`  ${plan.action.padEnd(9)} ${plan.target} — ${plan.detail}`);
  }
  const outcomes = await runSteps([localClusterDelete], stepCtx, {
    beforeFirstChange: async () => {
      if (ctx.options.yes) return;
      const ok = await ctx.prompt.confirm(`Delete ${what}, and everything in it?`, '--yes');
      if (!ok) throw new InterruptedError('cancelled at the confirmation prompt; nothing was changed');
    },
  });
  ctx.ui.print(ctx.dryRun ? 'dry run: nothing changed; the cluster would be deleted' : `done: ${outcomes[0]?.message ?? 'deleted'}`);
  ctx.ui.result(true, { recorded: true, source: 'local-cluster', dryRun: ctx.dryRun, plan: [plan], notes: [], steps: outcomes, cluster: { name: cluster.name, context: cluster.context, deleted: !ctx.dryRun } });
}
