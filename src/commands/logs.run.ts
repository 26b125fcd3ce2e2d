import { action } from './action.js';
import { UsageError } from '../core/errors.js';
import { parseDuration } from '../core/options.js';
import { LOG_TARGETS as TARGETS, type LogTarget, streamLogs } from '../demo/logs.js';

interface LogsSettings {
  target: LogTarget;
  proxy: boolean;
  follow: boolean;
  sinceSeconds?: number;
}

export const run = action<LogsSettings>(
  (opts, args) => {
    const target = args[0] as LogTarget;
    if (!TARGETS.includes(target)) throw new UsageError(`unknown service "${args[0]}"`, { hint: `choose one of ${TARGETS.join(', ')}` });
    const since = opts.since !== undefined ? Math.ceil(parseDuration(opts.since, '--since') / 1000) : undefined;
    return { target, proxy: Boolean(opts.proxy), follow: Boolean(opts.follow), sinceSeconds: since };
  },
  async (ctx) => {
    const kube = await ctx.kube();
    const json = ctx.ui.mode === 'json';
    const result = await streamLogs(kube, { ...ctx.settings, namespace: ctx.options.namespace, signal: ctx.signal }, ({ pod, container, line }) => {
      if (json) ctx.ui.emit({ type: 'podlog', pod, container, line });
      else ctx.ui.print(`[pod/${pod}/${container}] ${line}`);
    });
    ctx.ui.result(true, result);
  },
);
