import { action } from './action.js';
import type { GlobalOptions } from '../core/options.js';
import type { Step } from '../record/context.js';
import { parseDownloadSettings, type DownloadSettings } from '../settings.js';
import { runSteps } from '../core/runner.js';
import { istioDownload } from '../steps/istio-download.js';
import { istioctlPath } from '../core/cache-layout.js';
import { decideLocalCluster } from '../kind/decide.js';

export const run = action<DownloadSettings>(
  buildDownloadSettings,
  async (ctx) => {
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
  },
  { context: (settings) => settings.local?.context },
);

async function buildDownloadSettings(opts: Record<string, any>, _args: string[], global: GlobalOptions): Promise<DownloadSettings> {
  const settings = parseDownloadSettings(opts);
  settings.local = decideLocalCluster(settings, global);
  return settings;
}
