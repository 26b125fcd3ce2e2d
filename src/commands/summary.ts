import type { CommandContext } from './action.js';
import type { StepOutcome } from '../core/runner.js';
import type { UpSettings } from '../settings.js';
import { collectUrls } from '../demo/urls.js';

/** The end of `up`: what ran, and the URLs the user came for. */
export async function summarize(ctx: CommandContext<UpSettings>, outcomes: StepOutcome[]): Promise<void> {
  const count = (s: StepOutcome['status']) => outcomes.filter((o) => o.status === s).length;
  const urls: Record<string, string> = {};
  // --render changes no cluster (it may have none): there is nothing to reach
  if (!ctx.dryRun && !ctx.settings.render) {
    Object.assign(urls, await collectUrls(ctx));
  }
  const head = ctx.dryRun
    ? `dry run: ${count('planned')} step(s) would run, ${count('skipped')} already done`
    : `done: ${count('done')} step(s) ran, ${count('skipped')} already done`;
  ctx.ui.print(head);
  for (const [name, url] of Object.entries(urls)) ctx.ui.print(`  ${name.padEnd(10)} ${url}`);
  ctx.ui.result(true, { steps: outcomes, urls });
}
