import type { Command } from 'commander';
import { action } from '../core/command.js';
import { NotImplementedError } from '../core/errors.js';

export function register(program: Command): void {
  program
    .command('down')
    .description('remove what up created and revert what it changed, nothing else')
    .option('--keep-istio', 'leave Istio installed')
    .option('--force', 'with no record: remove the well-known demo objects by name and label')
    .option('--dry-run', 'print the plan, change nothing')
    .addHelpText('after', '\nExamples:\n  meshdemo down\n  meshdemo down --dry-run\n  meshdemo down --yes --keep-istio')
    .action(
      action(() => ({}), async () => {
        throw new NotImplementedError('meshdemo down');
      }),
    );
}
