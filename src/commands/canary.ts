import { Argument, type Command } from 'commander';
import { lazyAction } from './lazy-action.js';

export const SERVICES = ['micro-api', 'micro-order'];

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
    .action(lazyAction(() => import('./canary.run.js')));
}
