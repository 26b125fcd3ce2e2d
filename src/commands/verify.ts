import type { Command } from 'commander';
import { lazyAction } from './lazy-action.js';

export function register(program: Command): void {
  program
    .command('verify')
    .option('--url <url>', 'order endpoint (default: worked out from istio-ingressgateway)')
    .option('--node-address <addr>', 'node address for the gateway URL')
    .option('--count <n>', 'how many orders', '6')
    .option('--tracing-url <url>', "Jaeger's address for the trace link (default: the tracing dashboard's NodePort)")
    .addHelpText('after', '\nExamples:\n  meshdemo verify\n  meshdemo verify --url http://192.168.49.2:31380/api/order/create --count 20')
    .action(lazyAction(() => import('./verify.run.js')));
}
