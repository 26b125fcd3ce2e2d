import { Argument, type Command } from 'commander';
import { action } from './action.js';
import { UsageError, VerificationError } from '../core/errors.js';
import type { ServiceName } from '../settings.js';
import { runCanary, type CanarySettings } from '../demo/canary.js';
import { parseScenarioCommon } from '../demo/scenario-run.js';

const SERVICES = ['micro-api', 'micro-order'];

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

export function register(program: Command): void {
  const arg = new Argument('<service>', 'the service to release a v2 of');
  arg.argChoices = SERVICES;
  program
    .command('canary')
    .addArgument(arg)
    .option('--weight <v2=N>', 'percent of requests to v2 (0-100); v1 gets the rest')
    .option('--header <name=value>', 'requests with this header go to v2 whatever the weight (e.g. end-user=jason)')
    .option('--promote', 'send everything to v2 and retire v1\'s subset')
    .option('--reset', 'back to the plain demo: v2, its subsets and routes removed')
    .option('--verify', 'send --requests orders and compare the share per version with the weights (exit 1 when more than 5 points off)')
    .option('--requests <n>', 'orders --verify sends', '400')
    .option('--url <url>', 'order endpoint for --verify (default: the gateway URL)')
    .option('--node-address <addr>', 'node address for the gateway URL')
    .option('--dry-run', 'print the objects it would apply, change nothing')
    .option('--render', 'the same as --dry-run: print the YAML, change nothing')
    .addHelpText('after', '\nExamples:\n  meshdemo canary micro-order --weight v2=20 --verify\n  meshdemo canary micro-api --weight v2=0 --header end-user=jason\n  meshdemo canary micro-order --promote\n  meshdemo canary micro-order --reset')
    .action(
      action<CanarySettings>((opts, args) => parseCanary(opts, args), async (ctx) => {
        const { lines, checks } = await runCanary(ctx, { acquireLock: () => ctx.lock.acquire(), print: (l) => ctx.ui.print(l), info: (l) => ctx.log.info(l) });
        const off = checks.filter((c) => !c.ok);
        if (off.length) {
          throw new VerificationError(`the measured share is more than 5 points off the weight for ${off.map((c) => c.label).join(', ')}`, {
            details: lines,
            hint: `check the VirtualService with meshdemo canary ${ctx.settings.service} --dry-run, and meshdemo status`,
          });
        }
        ctx.ui.result(true, { canary: ctx.settings.service, checks });
      }),
    );
}
