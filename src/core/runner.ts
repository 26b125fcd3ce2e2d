import { abortReason, oneLine } from './errors.js';
import { stepLog } from './events.js';
import type { BaseContext, CheckResult, Step } from './step.js';

export interface StepOutcome {
  id: string;
  title: string;
  status: 'done' | 'skipped' | 'failed' | 'planned';
  durationMs: number;
  message?: string;
}

export interface RunOptions {
  /** Called once, before the first step that is not read-only and has work to do. */
  beforeFirstChange?: () => Promise<void>;
}

/**
 * Runs steps in order: each is checked first and skipped when already satisfied. A step that names the
 * earlier steps it needs (`after`) starts once those have finished, alongside the steps between them and it;
 * every other step starts once all earlier steps have finished. When a step fails, the steps running beside
 * it are stopped and nothing more starts; the first failure is thrown.
 * With ctx.dryRun nothing runs; unsatisfied steps are reported as planned.
 */
export async function runSteps<C extends BaseContext<any>>(steps: Step<C>[], ctx: C, opts: RunOptions = {}): Promise<StepOutcome[]> {
  const stop = new AbortController();
  const signal = AbortSignal.any([ctx.signal, stop.signal]);
  let firstFailure: { step: Step<C>; error: unknown } | undefined;
  let confirmation: Promise<void> | undefined;
  const confirm = () => (confirmation ??= Promise.resolve(opts.beforeFirstChange?.()));

  const runOne = async (step: Step<C>): Promise<StepOutcome | undefined> => {
    if (ctx.signal.aborted) throw abortReason(ctx.signal);
    if (stop.signal.aborted) return undefined;
    const started = Date.now();
    const stepCtx: C = { ...ctx, signal, log: stepLog(ctx.events, step.id) };
    const report = (status: StepOutcome['status'], message?: string) => {
      const outcome = finish(step, status, started, message);
      ctx.events.emit({ type: 'step', id: step.id, title: step.title, status: status === 'planned' ? 'skipped' : status, durationMs: outcome.durationMs, message: outcome.message });
      return outcome;
    };
    ctx.events.emit({ type: 'step', id: step.id, title: step.title, status: 'start' });
    try {
      const check: CheckResult = await step.check(stepCtx);
      if (check.satisfied) return report('skipped', check.detail ?? 'already done');
      if (ctx.dryRun && !step.readOnly) return report('planned', `would run: ${check.detail ?? step.title}`);
      if (!step.readOnly) await confirm();
      // a step beside this one failed while the question was open: this one does not start
      if (stop.signal.aborted) throw stop.signal.reason;
      return report('done', (await step.run(stepCtx)) ?? undefined);
    } catch (err) {
      if (ctx.signal.aborted) {
        report('failed', oneLine(abortReason(ctx.signal)));
        throw abortReason(ctx.signal);
      }
      if (firstFailure && stop.signal.aborted) {
        report('failed', `stopped: ${firstFailure.step.title} failed`);
        return undefined;
      }
      firstFailure = { step, error: err };
      report('failed', oneLine(err));
      stop.abort();
      throw err;
    }
  };

  const runs: Promise<StepOutcome | undefined>[] = [];
  for (const [i, step] of steps.entries()) {
    const needs = step.after ? runs.filter((_, j) => step.after!.includes(steps[j].id)) : runs.slice(0, i);
    runs.push(Promise.all(needs).then(() => runOne(step)));
    // a failure is thrown once every step that started has settled
    runs[i].catch(() => {});
  }
  const settled = await Promise.allSettled(runs);
  if (ctx.signal.aborted) throw abortReason(ctx.signal);
  if (firstFailure) throw firstFailure.error;
  const rejected = settled.find((r) => r.status === 'rejected');
  if (rejected) throw (rejected as PromiseRejectedResult).reason;
  return settled.map((r) => (r as PromiseFulfilledResult<StepOutcome | undefined>).value).filter((o): o is StepOutcome => o !== undefined);
}

/** Checks every step without running any (for `plan` and `status`). */
export async function checkSteps<C extends BaseContext<any>>(steps: Step<C>[], ctx: C): Promise<Array<{ id: string; title: string } & CheckResult>> {
  const results = [];
  for (const step of steps) {
    const check = await step.check({ ...ctx, log: stepLog(ctx.events, step.id) });
    results.push({ id: step.id, title: step.title, ...check });
  }
  return results;
}

function finish(step: Step<any>, status: StepOutcome['status'], started: number, message?: string): StepOutcome {
  return { id: step.id, title: step.title, status, durationMs: Date.now() - started, message };
}
