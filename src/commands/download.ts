import { Command, Option } from 'commander';
import { action } from './action.js';
import type { GlobalOptions } from '../core/options.js';
import type { Step } from '../record/context.js';
import { DEFAULT_ISTIO_VERSION, parseDownloadSettings, type DownloadSettings } from '../settings.js';
import { runSteps } from '../core/runner.js';
import { istioDownload } from '../steps/istio-download.js';
import { istioctlPath } from '../core/cache-layout.js';
import { decideLocalCluster } from '../kind/decide.js';

export function register(program: Command): void {
  program
    .command('download')
    .addOption(new Option('--istio-version <v>', 'Istio release to fetch').default(DEFAULT_ISTIO_VERSION).env('MESHDEMO_ISTIO_VERSION'))
    .addOption(new Option('--istio-mirror <url>', 'where releases are downloaded from').env('MESHDEMO_ISTIO_MIRROR'))
    .addOption(new Option('--istio-sha256 <hex>', 'pinned sha256 of the release archive').env('MESHDEMO_ISTIO_SHA256'))
    .addOption(new Option('--istio-archive <path>', 'verify and unpack a local release archive instead of downloading').env('MESHDEMO_ISTIO_ARCHIVE'))
    .option('--kind', 'fetch kind too, even though a kubeconfig names a cluster (as up --local needs it)')
    .addOption(new Option('--kind-mirror <url>', 'where kind releases are downloaded from').env('MESHDEMO_KIND_MIRROR'))
    .addOption(new Option('--kind-sha256 <hex>', 'pinned sha256 of the kind binary').env('MESHDEMO_KIND_SHA256'))
    .addHelpText(
      'after',
      `
Examples:
  meshdemo download                                  (then: meshdemo up, offline)
  meshdemo download --kind                           (kind as well, for a later meshdemo up --local)
  meshdemo download --cache-dir ./ci-cache --json    (CI: fill a cache to save between jobs)
  meshdemo download --istio-archive ./istio-1.8.4-linux-amd64.tar.gz`,
    )
    .action(
      action<DownloadSettings>(buildDownloadSettings, async (ctx) => {
        const local = ctx.settings.local;
        // the local-cluster steps' module (kind, docker, the kube client: ~60 ms of CPU) only when kind is fetched
        const steps: Step<any>[] = local ? [istioDownload, (await import('../steps/local-cluster.js')).kindDownload] : [istioDownload];
        const outcomes = await runSteps(steps, ctx);
        const istioctl = istioctlPath(ctx.options.cacheDir, ctx.settings.istioVersion);
        ctx.ui.print(`istioctl ${ctx.settings.istioVersion}: ${istioctl}`);
        if (local?.kind) ctx.ui.print(`kind: ${local.kind}`);
        ctx.ui.result(true, {
          istioVersion: ctx.settings.istioVersion,
          istioctl,
          downloaded: outcomes[0].status === 'done',
          ...(local ? { kind: local.kind, kindDownloaded: outcomes[1].status === 'done' } : {}),
        });
      }, { context: (settings) => settings.local?.context }),
    );
}

async function buildDownloadSettings(opts: Record<string, any>, _args: string[], global: GlobalOptions): Promise<DownloadSettings> {
  const settings = parseDownloadSettings(opts);
  settings.local = decideLocalCluster(settings, global);
  return settings;
}
