import { Argument, type Command } from 'commander';
import { action } from './action.js';
import { UsageError, VerificationError } from '../core/errors.js';
import { runMtls, type MtlsSettings } from '../demo/mtls.js';
import { parseScenarioCommon } from '../demo/scenario-run.js';

const MODES = ['strict', 'permissive', 'clear'];

export function register(program: Command): void {
  const mode = new Argument('<mode>', 'strict, permissive, or clear (remove meshdemo\'s policy)');
  mode.argChoices = MODES;
  program
    .command('mtls')
    .addArgument(mode)
    .option('--verify', 'call micro-api in plaintext from a pod without a sidecar, and send --requests orders through the gateway (exit 1 when the plaintext call is not refused under strict or not answered under permissive, or an order fails)')
    .option('--requests <n>', 'orders --verify sends', '50')
    .option('--url <url>', 'order endpoint for --verify (default: the gateway URL)')
    .option('--node-address <addr>', 'node address for the gateway URL')
    .option('--dry-run', 'print the object it would apply, change nothing')
    .option('--render', 'the same as --dry-run: print the YAML, change nothing')
    .addHelpText('after', '\nExamples:\n  meshdemo mtls strict --verify\n  meshdemo mtls permissive --verify\n  meshdemo mtls clear')
    .action(
      action<MtlsSettings>(
        (opts, args) => {
          if (!MODES.includes(args[0])) throw new UsageError(`unknown mtls mode "${args[0]}"`, { hint: `choose one of ${MODES.join(', ')}` });
          if (args[0] === 'clear' && opts.verify) throw new UsageError('mtls clear leaves no policy to --verify', { hint: 'verify a mode: meshdemo mtls strict --verify' });
          return { ...parseScenarioCommon(opts), mode: args[0] === 'clear' ? undefined : (args[0].toUpperCase() as 'STRICT' | 'PERMISSIVE') };
        },
        async (ctx) => {
          const { lines, checks } = await runMtls(ctx, { acquireLock: () => ctx.lock.acquire(), print: (l) => ctx.ui.print(l), info: (l) => ctx.log.info(l) });
          const off = checks.filter((c) => !c.ok);
          if (off.length) {
            throw new VerificationError(`what --verify measured is not what mtls ${ctx.settings.mode?.toLowerCase()} does: ${off.map((c) => c.label).join(', ')}`, {
              details: lines,
              hint: `look for another PeerAuthentication that applies to micro-api: kubectl get peerauthentication -A`,
            });
          }
          ctx.ui.result(true, { mtls: ctx.settings.mode ?? null, checks });
        },
      ),
    );
}
