import { action } from './action.js';
import { UsageError, VerificationError } from '../core/errors.js';
import type { ServiceName } from '../settings.js';
import { runCanary, type CanarySettings } from '../demo/canary.js';
import { parseScenarioCommon } from '../demo/scenario-run.js';
import { SERVICES } from './canary.js';

async function parseCanary(opts: Record<string, any>, args: string[]): Promise<CanarySettings> {
  const service = args[0];
  if (!SERVICES.includes(service)) throw new UsageError(`canary releases ${SERVICES.join(' or ')}, not "${service}"`, { hint: 'e.g. meshdemo canary micro-order --weight v2=20' });
  const chosen = [opts.weight !== undefined, Boolean(opts.promote), Boolean(opts.reset)].filter(Boolean).length;
  if (chosen > 1) throw new UsageError('--weight, --promote and --reset exclude each other', { hint: 'give one of them' });
  if (opts.header !== undefined && opts.weight === undefined) throw new UsageError('--header goes with --weight', { hint: `e.g. meshdemo canary ${service} --weight v2=0 --header end-user=jason` });
  if (!chosen && !opts.verify) throw new UsageError('canary needs --weight v2=N, --promote, --reset or --verify', { hint: `e.g. meshdemo canary ${service} --weight v2=20 --verify` });
  let change: CanarySettings['change'];
  if (opts.promote) change = 'promote';
  else if (opts.reset) change = 'reset';
  else if (opts.weight !== undefined) {
    const m = /^v2=(\d{1,3})$/.exec(String(opts.weight));
    if (!m || Number(m[1]) > 100) throw new UsageError(`--weight "${opts.weight}" is not v2=<0-100>`, { hint: 'e.g. --weight v2=20 (v1 gets the rest)' });
    let header: { name: string; value: string } | undefined;
    if (opts.header !== undefined) {
      const h = /^([A-Za-z0-9-]+)=(.+)$/.exec(String(opts.header));
      if (!h) throw new UsageError(`--header "${opts.header}" is not NAME=VALUE`, { hint: 'e.g. --header end-user=jason' });
      header = { name: h[1].toLowerCase(), value: h[2] };
    }
    change = { weight: Number(m[1]), header };
  }
  if (opts.reset && opts.verify) throw new UsageError('--reset leaves no canary to --verify', { hint: 'verify before resetting, or run meshdemo traffic' });
  return { ...parseScenarioCommon(opts), service: service as ServiceName, change };
}

export const run = action<CanarySettings>((opts, args) => parseCanary(opts, args), async (ctx) => {
  const { lines, checks } = await runCanary(ctx, { acquireLock: () => ctx.lock.acquire(), print: (l) => ctx.ui.print(l), info: (l) => ctx.log.info(l) });
  const off = checks.filter((c) => !c.ok);
  if (off.length) {
    throw new VerificationError(`the measured share is more than 5 points off the weight for ${off.map((c) => c.label).join(', ')}`, {
      details: lines,
      hint: `check the VirtualService with meshdemo canary ${ctx.settings.service} --dry-run, and meshdemo status`,
    });
  }
  ctx.ui.result(true, { canary: ctx.settings.service, checks });
});
