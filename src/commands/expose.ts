import { Argument, type Command } from 'commander';
import { DASHBOARDS } from '../core/names.js';
import { lazyAction } from './lazy-action.js';

/** The names are offered by shell completion and help (argChoices); parseExpose (expose.run.ts) checks them with a one-line error. */
function dashboardArgument(): Argument {
  const arg = new Argument('<dashboard>', 'the dashboard to expose, or all');
  arg.argChoices = [...Object.keys(DASHBOARDS), 'all'];
  return arg;
}

export function register(program: Command): void {
  program
    .command('expose')
    .addArgument(dashboardArgument())
    .option('--node-port <port>', 'node port to use (default: kiali 31001, grafana 31002, prometheus 31003, tracing 31004, zipkin 31005)')
    .option('--node-address <addr>', 'address printed in the URL (default: first node ExternalIP, else InternalIP)')
    .option('--port-forward', 'forward a local port through the API server instead; runs until Ctrl-C')
    .option('--local-port <port>', 'local port for --port-forward (default: the dashboard port)')
    .addHelpText('after', '\nExamples:\n  meshdemo expose kiali                 http://<node>:31001/kiali\n  meshdemo expose grafana --node-port 32000\n  meshdemo expose all\n  meshdemo expose tracing --port-forward --local-port 16686')
    .action(lazyAction(() => import('./expose.run.js')));
}
