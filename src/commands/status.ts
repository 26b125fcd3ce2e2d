import type { Command } from 'commander';
import { action } from '../core/command.js';

export function register(program: Command): void {
  program
    .command('status')
    .description('show what meshdemo finds on the cluster: version, Istio, injection, addons, dashboards, app, URLs (read-only)')
    .option('--node-address <addr>', 'address used in URLs (default: first node ExternalIP, else InternalIP)')
    .addHelpText('after', '\nExamples:\n  meshdemo status\n  meshdemo status --context kind-mesh --json')
    .action(
      action((opts) => ({ nodeAddress: opts.nodeAddress as string | undefined }), async (ctx) => {
        const { gatherStatus, formatStatus } = await import('../demo/status.js');
        const status = await gatherStatus(ctx);
        if (ctx.options.json) ctx.ui.result(true, { status });
        else ctx.ui.print(formatStatus(status));
      }),
    );
}
