import { Argument, type Command } from 'commander';
import { action } from './action.js';
import { UsageError } from '../core/errors.js';
import { runMtls } from '../demo/mtls.js';

const MODES = ['strict', 'permissive', 'clear'];

export function register(program: Command): void {
  const mode = new Argument('<mode>', 'strict, permissive, or clear (remove meshdemo\'s policy)');
  mode.argChoices = MODES;
  program
    .command('mtls')
    .addArgument(mode)
    .option('--dry-run', 'print the object it would apply, change nothing')
    .addHelpText('after', '\nExamples:\n  meshdemo mtls strict\n  meshdemo mtls permissive\n  meshdemo mtls clear')
    .action(
      action<{ mode: 'STRICT' | 'PERMISSIVE' | undefined; dryRun: boolean }>(
        (opts, args) => {
          if (!MODES.includes(args[0])) throw new UsageError(`unknown mtls mode "${args[0]}"`, { hint: `choose one of ${MODES.join(', ')}` });
          return { mode: args[0] === 'clear' ? undefined : (args[0].toUpperCase() as 'STRICT' | 'PERMISSIVE'), dryRun: Boolean(opts.dryRun) };
        },
        async (ctx) => {
          await runMtls(ctx, { acquireLock: () => ctx.lock.acquire(), print: (l) => ctx.ui.print(l), info: (l) => ctx.log.info(l) });
          ctx.ui.result(true, { mtls: ctx.settings.mode ?? null });
        },
      ),
    );
}
