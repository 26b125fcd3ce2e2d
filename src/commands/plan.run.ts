import { action } from './action.js';
import { secretSetValues } from '../core/secrets.js';
import type { UpSettings } from '../settings.js';
import { buildUpSettings, contextOrNothing, localContext } from './up.run.js';
import { checkSteps } from '../core/runner.js';
import { upSteps } from '../steps/index.js';

export const run = action<UpSettings>(
  buildUpSettings,
  async (ctx) => {
    for (const value of secretSetValues(ctx.settings.istioSet)) ctx.secrets.add(value);
    const results = await checkSteps(await upSteps(ctx.settings, ctx.settings.local?.context ?? (await contextOrNothing(ctx))), ctx);
    for (const [i, r] of results.entries()) {
      ctx.ui.print(`${String(i + 1).padStart(2)}. ${r.satisfied ? 'satisfied' : 'needed   '}  ${r.id.padEnd(16)} ${r.title}${r.detail ? ` — ${r.detail}` : ''}`);
    }
    ctx.ui.result(true, { steps: results.map(({ id, title, satisfied, detail }) => ({ id, title, satisfied, detail })) });
  },
  { context: localContext },
);
