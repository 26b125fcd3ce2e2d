import { Command, Option } from 'commander';
import { secretSetValues } from '../core/secrets.js';
import { action } from '../core/command.js';
import { InterruptedError } from '../core/errors.js';
import type { Context } from '../core/step.js';
import { collect, DEFAULT_ISTIO_VERSION, parseUpSettings, type UpSettings } from '../steps/settings.js';

/** The options `up` and `plan` share: everything that decides what up does. */
export function addUpOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--istio-version <v>', 'Istio release to install').default(DEFAULT_ISTIO_VERSION).env('MESHDEMO_ISTIO_VERSION'))
    .addOption(new Option('--istio-mirror <url>', 'where releases are downloaded from').env('MESHDEMO_ISTIO_MIRROR'))
    .addOption(new Option('--istio-sha256 <hex>', 'pinned sha256 of the release archive').env('MESHDEMO_ISTIO_SHA256'))
    .addOption(new Option('--istio-archive <path>', 'use a local release archive instead of downloading').env('MESHDEMO_ISTIO_ARCHIVE'))
    .option('--istio-set <key=value>', 'extra istioctl --set value (repeatable)', collect, [])
    .option('--reinstall', 'run istioctl install even when the same version is installed')
    .option('--no-app', 'stop after Istio, the addons and the dashboards')
    .addOption(new Option('--addons <list>', 'addons to apply, comma-separated').env('MESHDEMO_ADDONS'))
    .option('--node-port <name=port>', 'dashboard node ports, e.g. kiali=31001,grafana=31002 (repeatable)', collect, [])
    .addOption(new Option('--node-address <addr>', 'address printed in URLs (default: first node ExternalIP, else InternalIP)').env('MESHDEMO_NODE_ADDRESS'))
    .addOption(new Option('--registry <host[:port]/path>', 'registry to push the demo images to').env('MESHDEMO_REGISTRY'))
    .addOption(new Option('--base-image <image>', 'base image for the demo services').env('MESHDEMO_BASE_IMAGE'))
    .option('--skip-build', 'use prebuilt images given with --image')
    .option('--image <service=ref>', 'prebuilt image for a service (repeatable)', collect, [])
    .option('--render [dir]', 'write the app manifests instead of applying them')
    .option('--verify', 'send sample orders through the gateway at the end');
}

export function register(program: Command): void {
  const cmd = program
    .command('up')
    .description('install Istio 1.8.4 (demo profile), the addons, the dashboards and the demo app; safe to re-run');
  addUpOptions(cmd)
    .option('--dry-run', 'show what would run, change nothing')
    .addHelpText(
      'after',
      `
Examples:
  meshdemo up --registry 127.0.0.1:5000/micro-service
  meshdemo up --context kind-mesh           (kind: images are loaded with kind load)
  meshdemo up --no-app --yes --json         (CI: no prompts, NDJSON progress)
  meshdemo up --istio-archive ./istio-1.8.4-linux-amd64.tar.gz`,
    )
    .action(
      action<UpSettings>((opts) => parseUpSettings(opts), async (ctx) => {
        for (const value of secretSetValues(ctx.settings.istioSet)) ctx.secrets.add(value);
        const { runSteps } = await import('../core/runner.js');
        const { upSteps } = await import('../steps/index.js');
        const outcomes = await runSteps(await upSteps(ctx.settings), ctx, {
          beforeFirstChange: async () => {
            await confirmChanges(ctx);
            if (!ctx.settings.render) {
              await ctx.lock.acquire(); // src/core/lock.ts: one up/down at a time per cluster
              await ctx.inventory(); // a corrupted record is refused before anything changes, not half-way
            }
          },
        });
        const { summarize } = await import('./summary.js');
        await summarize(ctx, outcomes);
      }, { dryRun: (o) => Boolean(o.dryRun) }),
    );
}

async function confirmChanges(ctx: Context<UpSettings>): Promise<void> {
  if (ctx.options.yes) return;
  const kube = await ctx.kube();
  const ok = await ctx.prompt.confirm(`meshdemo will change cluster ${kube.server} (context "${kube.contextName}"). Proceed?`, '--yes');
  if (!ok) throw new InterruptedError('cancelled at the confirmation prompt; nothing was changed');
}
