import type { Command } from 'commander';
import { lazyAction } from './lazy-action.js';

export function register(program: Command): void {
  program
    .command('traffic')
    .option('--url <url>', 'order endpoint (default: worked out from istio-ingressgateway)')
    .option('--node-address <addr>', 'node address for the gateway and tracing URLs')
    .option('--rate <n>', 'requests per second, all workers together (0: as fast as --concurrency allows)', '10')
    .option('--duration <d>', 'stop after this long, e.g. 30s, 5m (default: until --requests, or Ctrl-C)')
    .option('--requests <n>', 'stop after this many requests')
    .option('--concurrency <n>', 'requests in flight at once', '4')
    .option('--tracing-url <url>', "Jaeger's address for the trace link (default: the tracing dashboard's NodePort)")
    .addHelpText(
      'after',
      '\nExamples:\n  meshdemo traffic --duration 5m           then open Kiali\'s graph\n  meshdemo traffic --requests 60 --concurrency 4\n  meshdemo traffic --url http://127.0.0.1:9090/api/order/create --rate 0 --requests 1000   (npm run services)\n\nCtrl-C stops it and prints the summary (exit 130). Exit 6 when no request succeeded.',
    )
    .action(lazyAction(() => import('./traffic.run.js')));
}
