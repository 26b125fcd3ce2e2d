import { Argument, type Command } from 'commander';
import { lazyAction } from './lazy-action.js';

export const TARGETS = ['kiali', 'grafana', 'jaeger', 'tracing', 'prometheus', 'zipkin'];

export function register(program: Command): void {
  const arg = new Argument('[dashboard]', 'kiali, grafana, jaeger (tracing), prometheus or zipkin');
  arg.argChoices = TARGETS;
  program
    .command('open')
    .addArgument(arg)
    .option('--trace <id>', "open this trace in Jaeger's UI")
    .option('--no-browser', 'only print the URL')
    .option('--node-address <addr>', 'node address for the NodePort URL')
    .option('--local-port <port>', 'local port of the port-forward (default: istioctl dashboard\'s, e.g. kiali 20001)')
    .addHelpText('after', '\nExamples:\n  meshdemo open kiali                   http://<node>:31001/kiali\n  meshdemo open jaeger --trace 4bf92f3577b34da6a3ce929d0e0e4736\n  meshdemo open grafana --no-browser\n\nWith a port-forward, open keeps running until Ctrl-C.')
    .action(lazyAction(() => import('./open.run.js')));
}
