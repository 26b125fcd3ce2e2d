import { Argument, type Command } from 'commander';
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

export function register(program: Command): void {
  program
    .command('logs')
    .addArgument(Object.assign(new Argument('<service>', 'whose pods to read'), { argChoices: [...TARGETS] })) // for completion; checked below
    .option('--proxy', 'the istio-proxy sidecar container (the tutorial reads its access log to see the load balancing)')
    .option('-f, --follow', 'keep streaming new lines until Ctrl-C')
    .option('--since <duration>', 'only lines newer than this, e.g. 10m, 1h')
    .addHelpText('after', '\nExamples:\n  meshdemo logs micro-order --proxy        which micro-order pod took each request (outbound|…|micro-order…)\n  meshdemo logs micro-api -f --since 10m\n  meshdemo logs gateway')
    .action(
      action<LogsSettings>(
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
      ),
    );
}
