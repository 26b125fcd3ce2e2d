import type { Command } from 'commander';
import { action } from '../core/command.js';
import { NotImplementedError } from '../core/errors.js';

export function register(program: Command): void {
  program
    .command('istioctl')
    .description('run the cached istioctl with the same --kubeconfig/--context')
    .allowUnknownOption()
    .argument('[args...]')
    .action(action(() => ({}), async () => { throw new NotImplementedError('meshdemo istioctl'); }));
}
