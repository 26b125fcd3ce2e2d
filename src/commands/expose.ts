import type { Command } from 'commander';
import { action } from '../core/command.js';
import { NotImplementedError } from '../core/errors.js';

export function register(program: Command): void {
  program
    .command('expose <dashboard>')
    .description('make a dashboard (kiali, grafana, prometheus, tracing, zipkin, all) reachable from outside the cluster')
    .action(action(() => ({}), async () => { throw new NotImplementedError('meshdemo expose'); }));
}
