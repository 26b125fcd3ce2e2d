import type { Command } from 'commander';
import { addUpOptions } from './up.js';
import { lazyAction } from './lazy-action.js';

export function register(program: Command): void {
  const cmd = program.command('plan');
  addUpOptions(cmd)
    .addHelpText('after', '\nExamples:\n  meshdemo plan\n  meshdemo plan --no-app --json')
    .action(lazyAction(() => import('./plan.run.js')));
}
