import { Argument, type Command } from 'commander';
import { lazyAction } from './lazy-action.js';

const KINDS = ['delay', 'abort', 'timeout', 'retries', 'breaker', 'clear'];

export function register(program: Command): void {
  const kind = new Argument('<kind>', 'delay, abort, timeout, retries, breaker or clear');
  kind.argChoices = KINDS;
  const service = new Argument('[service]', 'micro-api, micro-order or micro-pay');
  service.argChoices = ['micro-api', 'micro-order', 'micro-pay'];
  program
    .command('chaos')
    .addArgument(kind)
    .addArgument(service)
    .argument('[value]', 'the delay (3s), HTTP status (500), timeout (1s) or number of retries (3)')
    .option('--percent <p>', 'share of requests a delay or abort hits (default 100)')
    .option('--per-try-timeout <d>', 'retries: timeout of each attempt')
    .option('--retry-on <list>', 'retries: the conditions, e.g. 5xx,connect-failure')
    .option('--verify', 'send --requests orders and measure the effect (exit 1 when it is not what was applied: a share more than 5 points off, a late answer, a failing pod not ejected)')
    .option('--requests <n>', 'orders --verify sends', '400')
    .option('--url <url>', 'order endpoint for --verify (default: the gateway URL)')
    .option('--node-address <addr>', 'node address for the gateway URL')
    .option('--dry-run', 'print the objects it would apply, change nothing')
    .option('--render', 'the same as --dry-run: print the YAML, change nothing')
    .addHelpText(
      'after',
      '\nExamples:\n  meshdemo chaos delay micro-order 3s --percent 50 --verify\n  meshdemo chaos abort micro-order 500 --percent 50 --verify\n  meshdemo chaos timeout micro-api 1s\n  meshdemo chaos retries micro-order 3 --per-try-timeout 1s\n  meshdemo chaos breaker micro-pay\n  meshdemo chaos clear',
    )
    .action(lazyAction(() => import('./chaos.run.js')));
}
