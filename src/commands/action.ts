import type { Command } from 'commander';
import { ExitCode, InterruptedError, MeshdemoError, abortReason, exitCodeOf, oneLine } from '../core/errors.js';
import { createContext } from './context.js';
import { defaultCacheDir, parseTimeout, validateNamespace, type GlobalOptions } from '../core/options.js';
import { createPrompter } from '../core/prompt.js';
import { stepLog } from '../core/events.js';
import { ClusterLock } from '../record/lock.js';
import { makeRedactor, processSecrets } from '../core/secrets.js';
import type { Context } from '../record/context.js';
import { createRenderer, outputMode, type Renderer } from '../ui/renderer.js';
import { checkCacheDir } from '../download/cache-files.js';

/** `lock`: the cluster lock (src/record/lock.ts); a command that changes the cluster acquires it, action() releases it. */
export type CommandContext<S> = Context<S> & { ui: Renderer; lock: ClusterLock };

/**
 * Wraps every command's action the same way: global options → Context → handler, with SIGINT/SIGTERM
 * turned into cancellation, and every error turned into one line and its exit code (src/core/errors.ts).
 */
export function action<S>(
  buildSettings: (opts: Record<string, any>, args: string[], global: GlobalOptions, command: Command) => S | Promise<S>,
  handler: (ctx: CommandContext<S>) => Promise<void>,
  extra: {
    dryRun?: (opts: Record<string, any>) => boolean;
    /** The context the settings decided on (the local kind cluster's), over --context: a value, never written back. */
    context?: (settings: S) => string | undefined;
  } = {},
) {
  return async (...received: unknown[]): Promise<void> => {
    const command = received[received.length - 1] as Command;
    const opts = command.optsWithGlobals();
    const secrets = processSecrets();
    const json = Boolean(opts.json);
    const verbose = Boolean(opts.verbose);
    const isTTY = Boolean(process.stdout.isTTY && process.stderr.isTTY);
    const ui = await createRenderer(outputMode({ json, isTTY, columns: process.stderr.columns }), { verbose, secrets });
    const controller = new AbortController();
    const stopListening = cancelOnSignals(controller);
    let ctx: ReturnType<typeof createContext<S>> | undefined;
    let lock: ClusterLock | undefined;
    try {
      const global = globalOptions(opts);
      checkCacheDir(global.cacheDir, Boolean(global.trustCacheDir));
      const settings = await buildSettings(opts, command.args, global, command);
      const context = extra.context?.(settings);
      ctx = createContext({
        options: context ? { ...global, context } : global,
        settings,
        events: ui,
        signal: controller.signal,
        prompt: createPrompter({ json, isTTY: Boolean(process.stdin.isTTY && process.stdout.isTTY), terminal: ui }),
        secrets,
        dryRun: extra.dryRun?.(opts) ?? false,
      });
      // a lost lock stops the run like Ctrl-C does, but ends it with its own error (exit 3)
      lock = new ClusterLock(ctx.kube, { command: command.name(), log: stepLog(ui), signal: controller.signal, onLost: (err) => controller.abort(err) });
      await handler({ ...ctx, ui, lock });
      if (controller.signal.aborted) throw abortReason(controller.signal);
      process.exitCode ??= ExitCode.ok;
    } catch (err) {
      const reason = controller.signal.aborted ? abortReason(controller.signal) : undefined;
      // an interruption the handler describes better (e.g. "traffic stopped by Ctrl-C") keeps its own words
      const failure = reason && !(reason instanceof InterruptedError && err instanceof InterruptedError) ? reason : err;
      process.exitCode = reportFailure(failure, { ui, json, verbose, secrets });
    } finally {
      await lock?.release();
      ui.close();
      ctx?.dispose();
      stopListening();
    }
  };
}

/** SIGINT/SIGTERM abort the run; a second one exits at once. Returns the function that stops listening. */
function cancelOnSignals(controller: AbortController): () => void {
  let interrupted = false;
  const onSignal = () => {
    if (interrupted) process.exit(ExitCode.interrupted);
    interrupted = true;
    controller.abort(new InterruptedError());
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  return () => {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  };
}

/** The one place an error becomes its message (one line, details, the stack with --verbose) and its exit code. */
function reportFailure(failure: unknown, out: { ui: Renderer; json: boolean; verbose: boolean; secrets: Set<string> }) {
  const code = exitCodeOf(failure);
  out.ui.close();
  const lines = [`error: ${oneLine(failure)}`];
  if (failure instanceof MeshdemoError) lines.push(...failure.details.map((d) => `  ${d}`));
  if (out.verbose && failure instanceof Error && failure.stack) lines.push(failure.stack);
  if (out.json) {
    out.ui.result(false, { exitCode: code, error: oneLine(failure), details: failure instanceof MeshdemoError ? failure.details : [] });
    for (const l of lines) out.ui.print(l);
  } else {
    const redact = makeRedactor(out.secrets);
    for (const l of lines) process.stderr.write(redact(l) + '\n');
  }
  return code;
}

export function globalOptions(opts: Record<string, any>): GlobalOptions {
  return {
    kubeconfig: opts.kubeconfig || undefined,
    context: opts.context || undefined,
    namespace: validateNamespace(opts.namespace ?? 'default'),
    yes: Boolean(opts.yes),
    json: Boolean(opts.json),
    verbose: Boolean(opts.verbose),
    cacheDir: opts.cacheDir || defaultCacheDir(),
    trustCacheDir: Boolean(opts.trustCacheDir),
    timeoutMs: parseTimeout(opts.timeout ?? '10m'),
  };
}

