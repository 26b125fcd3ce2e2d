import fs from 'node:fs';
import path from 'node:path';
import { action } from './action.js';
import { PreflightError, UsageError } from '../core/errors.js';
import { parseIstioVersion } from '../settings.js';
import { cachedReleaseDistrust, istioctlKubeArgs } from '../demo/istio-release.js';
import { istioctlPath } from '../core/cache-layout.js';
import { runInteractive } from '../exec/run.js';

export const run = action(
  (opts, args) => ({ args: (args ?? []) as string[], printPath: Boolean(opts.printPath), version: parseIstioVersion(opts.istioVersion) }),
  async (ctx) => {
    const binary = istioctlPath(ctx.options.cacheDir, ctx.settings.version);
    if (!fs.existsSync(binary)) {
      throw new UsageError(`istioctl ${ctx.settings.version} is not in the cache (${binary})`, { hint: 'run meshdemo up (or meshdemo up --no-app) first' });
    }
    // what runs is what was verified: the manifest recorded when the release's archive was checked
    const distrust = cachedReleaseDistrust(ctx.options.cacheDir, ctx.settings.version);
    if (distrust) {
      throw new PreflightError(`the cached istioctl ${ctx.settings.version} is not the one meshdemo verified (${distrust}); not running it`, {
        hint: `run meshdemo download --istio-version ${ctx.settings.version} to verify and unpack the release again`,
      });
    }
    if (ctx.settings.printPath) {
      ctx.ui.print(path.dirname(binary));
      return;
    }
    const kubeArgs = ctx.settings.args.some((a) => a === '--context' || a.startsWith('--context=')) ? [] : await istioctlKubeArgs(ctx);
    // istioctl has printed its own messages; its exit code is passed through unchanged
    process.exitCode = await runInteractive(binary, [...ctx.settings.args, ...kubeArgs], { signal: ctx.signal });
  },
);
