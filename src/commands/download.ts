import { Command, Option } from 'commander';
import { action } from '../core/command.js';
import { DEFAULT_ISTIO_VERSION, parseReleaseSettings, type ReleaseSettings } from '../steps/settings.js';

export function register(program: Command): void {
  program
    .command('download')
    .description('fetch and verify into the cache what up needs (the Istio release); no cluster needed, a second run downloads nothing')
    .addOption(new Option('--istio-version <v>', 'Istio release to fetch').default(DEFAULT_ISTIO_VERSION).env('MESHDEMO_ISTIO_VERSION'))
    .addOption(new Option('--istio-mirror <url>', 'where releases are downloaded from').env('MESHDEMO_ISTIO_MIRROR'))
    .addOption(new Option('--istio-sha256 <hex>', 'pinned sha256 of the release archive').env('MESHDEMO_ISTIO_SHA256'))
    .addOption(new Option('--istio-archive <path>', 'verify and unpack a local release archive instead of downloading').env('MESHDEMO_ISTIO_ARCHIVE'))
    .addHelpText(
      'after',
      `
Examples:
  meshdemo download                                  (then: meshdemo up, offline)
  meshdemo download --cache-dir ./ci-cache --json    (CI: fill a cache to save between jobs)
  meshdemo download --istio-archive ./istio-1.8.4-linux-amd64.tar.gz`,
    )
    .action(
      action<ReleaseSettings>((opts) => parseReleaseSettings(opts), async (ctx) => {
        const { runSteps } = await import('../core/runner.js');
        const { istioDownload } = await import('../steps/istio-download.js');
        const { istioctlPath } = await import('../steps/istio-release.js');
        const [outcome] = await runSteps([istioDownload], ctx);
        const istioctl = istioctlPath(ctx.options.cacheDir, ctx.settings.istioVersion);
        ctx.ui.print(`istioctl ${ctx.settings.istioVersion}: ${istioctl}`);
        ctx.ui.result(true, { istioVersion: ctx.settings.istioVersion, istioctl, downloaded: outcome.status === 'done' });
      }),
    );
}
