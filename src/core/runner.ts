import { abortReason, oneLine } from './errors.js';
import { stepLog } from './events.js';
import type { CheckResult, Context, Step } from './step.js';

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
 * Runs steps in order: each is checked first and skipped when already satisfied.
 * With ctx.dryRun nothing runs; unsatisfied steps are reported as planned.
 */
export async function runSteps<S>(steps: Step<S>[], ctx: Context<S>, opts: RunOptions = {}): Promise<StepOutcome[]> {
  const outcomes: StepOutcome[] = [];
  let confirmed = false;
  for (const step of steps) {
    if (ctx.signal.aborted) throw abortReason(ctx.signal);
    const started = Date.now();
    const stepCtx: Context<S> = { ...ctx, log: stepLog(ctx.events, step.id) };
    ctx.events.emit({ type: 'step', id: step.id, title: step.title, status: 'start' });
    try {
      const check: CheckResult = await step.check(stepCtx);
      if (check.satisfied) {
        const outcome = finish(step, 'skipped', started, check.detail ?? 'already done');
        outcomes.push(outcome);
        ctx.events.emit({ type: 'step', id: step.id, title: step.title, status: 'skipped', durationMs: outcome.durationMs, message: outcome.message });
        continue;
      }
      if (ctx.dryRun && !step.readOnly) {
        const outcome = finish(step, 'planned', started, `would run: ${check.detail ?? step.title}`);
        outcomes.push(outcome);
        ctx.events.emit({ type: 'step', id: step.id, title: step.title, status: 'skipped', durationMs: outcome.durationMs, message: outcome.message });
        continue;
      }
      if (!step.readOnly && !confirmed) {
        confirmed = true;
        await opts.beforeFirstChange?.();
      }
      const message = (await step.run(stepCtx)) ?? undefined;
      const outcome = finish(step, 'done', started, message);
      outcomes.push(outcome);
      ctx.events.emit({ type: 'step', id: step.id, title: step.title, status: 'done', durationMs: outcome.durationMs, message });
    } catch (err) {
      const failure = ctx.signal.aborted ? abortReason(ctx.signal) : err;
      const outcome = finish(step, 'failed', started, oneLine(failure));
      ctx.events.emit({ type: 'step', id: step.id, title: step.title, status: 'failed', durationMs: outcome.durationMs, message: outcome.message });
      throw failure;
    }
  }
  return outcomes;
}

/** Checks every step without running any (for `plan` and `status`). */
export async function checkSteps<S>(steps: Step<S>[], ctx: Context<S>): Promise<Array<{ id: string; title: string } & CheckResult>> {
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
