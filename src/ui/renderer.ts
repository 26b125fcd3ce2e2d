import type { EventSink, MeshEvent } from '../core/events.js';
import { makeRedactor, maskDeep } from '../core/secrets.js';

export type OutputMode = 'tty' | 'plain' | 'json';

export interface Renderer extends EventSink {
  mode: OutputMode;
  /** Human-readable result text (URLs, tables): stdout normally, stderr with --json. */
  print(text: string): void;
  /** Machine-readable final object: the `result` event with --json; nothing otherwise. */
  result(ok: boolean, data: Record<string, unknown>): void;
  /** Stops the spinner while a prompt owns the terminal; resume() brings it back. */
  suspend(): void;
  resume(): void;
  close(): void;
}

/** `columns`: the terminal's width; one that reports 0 (e.g. under `script`) makes ora count endless lines to clear. */
export function outputMode(opts: { json: boolean; isTTY: boolean; columns?: number; env?: NodeJS.ProcessEnv }): OutputMode {
  if (opts.json) return 'json';
  const env = opts.env ?? process.env;
  if (!opts.isTTY || opts.columns === 0 || env.CI) return 'plain';
  return 'tty';
}

export { makeRedactor } from '../core/secrets.js';

interface Streams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean };
  stderr: NodeJS.WritableStream & { isTTY?: boolean };
}

const SYMBOL = { done: '✔', skipped: '↷', failed: '✖' } as const;

export async function createRenderer(
  mode: OutputMode,
  opts: { verbose: boolean; secrets: Set<string>; streams?: Streams },
): Promise<Renderer> {
  const { stdout, stderr } = opts.streams ?? { stdout: process.stdout, stderr: process.stderr };
  const redact = makeRedactor(opts.secrets);
  const out = (s: NodeJS.WritableStream, line: string) => s.write(redact(line) + '\n');

  if (mode === 'json') {
    // masked before serialising: JSON escapes `"` and `\`, so a secret holding them would not be found after
    const json = (value: object) => stdout.write(JSON.stringify(maskDeep(value, redact)) + '\n');
    return {
      mode,
      emit(event) {
        if (event.type === 'log' && event.level === 'debug' && !opts.verbose) return;
        json(event);
      },
      print: (text) => out(stderr, text),
      result: (ok, data) => json({ type: 'result', ok, ...data }),
      suspend() {},
      resume() {},
      close() {},
    };
  }

  const stepLine = (e: Extract<MeshEvent, { type: 'step' }>) => {
    const took = e.durationMs !== undefined && e.durationMs >= 1000 ? ` (${(e.durationMs / 1000).toFixed(1)}s)` : '';
    return `${SYMBOL[e.status as keyof typeof SYMBOL]} ${e.title}${e.message ? ` — ${e.message}` : ''}${took}`;
  };
  const logLine = (e: Extract<MeshEvent, { type: 'log' }>) =>
    `  ${e.level === 'warn' ? 'warning: ' : e.level === 'note' ? 'note: ' : ''}${e.message}`;

  // steps that may run side by side (src/core/runner.ts): while more than one runs, each log line names its step
  const running = new Map<string, string>();
  const track = (e: Extract<MeshEvent, { type: 'step' }>) => {
    if (e.status === 'start') running.set(e.id, e.title);
    else running.delete(e.id);
  };
  const taggedLogLine = (e: Extract<MeshEvent, { type: 'log' }>) => {
    const line = logLine(e);
    return running.size > 1 && e.step ? `  [${e.step}]${line.slice(1)}` : line;
  };

  if (mode === 'plain') {
    let lastProgress = 0;
    return {
      mode,
      emit(e) {
        if (e.type === 'step') {
          track(e);
          out(stderr, e.status === 'start' ? `… ${e.title}` : stepLine(e));
        } else if (e.type === 'log') {
          if (e.level === 'debug' && !opts.verbose) return;
          out(stderr, taggedLogLine(e));
        } else if (e.type === 'progress') {
          if (Date.now() - lastProgress < 5000) return;
          lastProgress = Date.now();
          out(stderr, `  ${formatProgress(e.received, e.total, e.rate)}`);
        }
      },
      print: (text) => out(stdout, text),
      result() {},
      suspend() {},
      resume() {},
      close() {},
    };
  }

  const { default: ora } = await import('ora');
  // one spinner line, naming every step that runs
  let spinner: ReturnType<typeof ora> | undefined;
  let progressText = '';
  let suspended = false;
  // while a prompt owns the terminal (suspend), a spinner is made but not drawn
  const startSpinner = () => {
    const made = ora({ text: spinnerText(), stream: stderr });
    return suspended ? made : made.start();
  };
  const spinnerText = () => redact([...running.values()].join(' · ') + (running.size === 1 && progressText ? ` ${progressText}` : ''));
  return {
    mode,
    emit(e) {
      if (e.type === 'step') {
        track(e);
        progressText = '';
        if (e.status === 'start') {
          if (spinner) spinner.text = spinnerText();
          else spinner = startSpinner();
          return;
        }
        const line = redact(stepLine(e).slice(2));
        if (!spinner) spinner = ora({ stream: stderr });
        if (e.status === 'done') spinner.succeed(line);
        else if (e.status === 'failed') spinner.fail(line);
        else spinner.stopAndPersist({ symbol: SYMBOL.skipped, text: line });
        spinner = running.size ? startSpinner() : undefined;
      } else if (e.type === 'log') {
        if (e.level === 'debug' && !opts.verbose) return;
        const spinning = spinner?.isSpinning;
        if (spinning) spinner!.clear();
        out(stderr, taggedLogLine(e));
        if (spinning) spinner!.render();
      } else if (e.type === 'progress' && spinner) {
        progressText = formatProgress(e.received, e.total, e.rate);
        spinner.text = spinnerText();
      }
    },
    print: (text) => out(stdout, text),
    result() {},
    suspend() {
      if (spinner?.isSpinning) spinner.stop();
      suspended = true;
    },
    resume() {
      if (suspended) spinner?.start();
      suspended = false;
    },
    close() {
      spinner?.stop();
    },
  };
}

export function formatProgress(received: number, total?: number, rate?: number): string {
  const mb = (n: number) => `${(n / 1048576).toFixed(1)} MB`;
  const width = 20;
  const bar = total ? `[${'#'.repeat(Math.round((received / total) * width)).padEnd(width, '.')}] ` : '';
  return `${bar}${mb(received)}${total ? ` / ${mb(total)}` : ''}${rate ? ` at ${mb(rate)}/s` : ''}`;
}
