import type { EventSink, StepLog } from './events.js';
import type { GlobalOptions } from './options.js';
import type { Prompter } from './prompt.js';

/**
 * What the runner needs of a step's context. The cluster and meshdemo's record are added one floor up
 * (src/record/context.ts), so this floor imports nothing of the project.
 */
export interface BaseContext<S = unknown> {
  options: GlobalOptions;
  /** The command's own resolved settings (e.g. UpSettings). */
  settings: S;
  events: EventSink;
  /** The current step's log; the runner rebinds it for each step. */
  log: StepLog;
  signal: AbortSignal;
  dryRun: boolean;
  prompt: Prompter;
  /** Values that must never be printed (tokens, passwords); the renderer masks them. */
  secrets: Set<string>;
}

export interface CheckResult {
  satisfied: boolean;
  /** Why it is (not) satisfied; shown by `plan` and as the skip message. */
  detail?: string;
}

export interface Step<C extends BaseContext<any> = BaseContext> {
  id: string;
  title: string;
  /**
   * Read-only steps (preflight) run even in a dry run, and need no confirmation; before the first other
   * step that has work to do, the runner asks once.
   */
  readOnly?: boolean;
  /**
   * The earlier steps this one needs finished. Given, it starts as soon as they have, while the steps between
   * them and it still run (the addons are applied while istioctl waits for Istio to be ready); it must then wait
   * itself for anything those steps create. Ids of steps not in the run are ignored. Without it, a step starts once
   * every earlier step has finished.
   */
  after?: string[];
  /** Read-only: is the work already done? */
  check(ctx: C): Promise<CheckResult>;
  /** Do the work; the returned text is the step's done message. */
  run(ctx: C): Promise<string | void>;
}
