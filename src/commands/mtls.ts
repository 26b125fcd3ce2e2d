import { Argument, type Command } from 'commander';
import { lazyAction } from './lazy-action.js';

export const MODES = ['strict', 'permissive', 'clear'];

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
    .action(lazyAction(() => import('./mtls.run.js')));
}
