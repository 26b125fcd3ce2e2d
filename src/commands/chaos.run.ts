import { action } from './action.js';
import { VerificationError } from '../core/errors.js';
import { parseChaosArgs, runChaos, type ChaosSettings } from '../demo/chaos.js';
import { parseScenarioCommon } from '../demo/scenario-run.js';

export const run = action<ChaosSettings>(
  async (opts, args) => {
    return { ...parseScenarioCommon(opts), ...parseChaosArgs(args[0], args[1], args[2], opts) };
  },
  async (ctx) => {
    const { lines, checks } = await runChaos(ctx, { acquireLock: () => ctx.lock.acquire(), print: (l) => ctx.ui.print(l), info: (l) => ctx.log.info(l) });
    const off = checks.filter((c) => !c.ok);
    if (off.length) {
      throw new VerificationError(`what --verify measured is not what chaos ${ctx.settings.kind} applied: ${off.map((c) => c.label).join(', ')}`, {
        details: lines,
        hint: `compare the objects with meshdemo chaos ${ctx.settings.kind} ${ctx.settings.services.join(' ')} --dry-run, and meshdemo status`,
      });
    }
    ctx.ui.result(true, { chaos: ctx.settings.kind, services: ctx.settings.services, checks });
  },
);
