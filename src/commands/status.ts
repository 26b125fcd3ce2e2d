import { Option, type Command } from 'commander';
import { lazyAction } from './lazy-action.js';

export function register(program: Command): void {
  program
    .command('status')
    .option('--node-address <addr>', 'address used in URLs (default: first node ExternalIP, else InternalIP)')
    .addOption(new Option('--cluster-name <name>', 'the local kind cluster, when no context is in use').default('meshdemo').env('MESHDEMO_CLUSTER_NAME'))
    .addHelpText('after', '\nExamples:\n  meshdemo status\n  meshdemo status --context kind-mesh --json')
    .action(lazyAction(() => import('./status.run.js')));
}
