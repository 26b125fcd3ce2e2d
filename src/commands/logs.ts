import { Argument, type Command } from 'commander';
import { LOG_TARGETS as TARGETS } from '../core/names.js';
import { lazyAction } from './lazy-action.js';

export function register(program: Command): void {
  program
    .command('logs')
    .addArgument(Object.assign(new Argument('<service>', 'whose pods to read'), { argChoices: [...TARGETS] })) // for completion; checked in logs.run.ts
    .option('--proxy', 'the istio-proxy sidecar container (the tutorial reads its access log to see the load balancing)')
    .option('-f, --follow', 'keep streaming new lines until Ctrl-C')
    .option('--since <duration>', 'only lines newer than this, e.g. 10m, 1h')
    .addHelpText('after', '\nExamples:\n  meshdemo logs micro-order --proxy        which micro-order pod took each request (outbound|…|micro-order…)\n  meshdemo logs micro-api -f --since 10m\n  meshdemo logs gateway')
    .action(lazyAction(() => import('./logs.run.js')));
}
