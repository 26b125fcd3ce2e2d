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

type StepEvent = Extract<MeshEvent, { type: 'step' }>;
type LogEvent = Extract<MeshEvent, { type: 'log' }>;
interface RenderOptions {
  verbose: boolean;
  secrets: Set<string>;
  streams?: Streams;
}
/** What the three renderers share: the streams, the redaction, one writer of masked lines. */
interface Output extends Streams {
  verbose: boolean;
  redact: (text: string) => string;
  out: (s: NodeJS.WritableStream, line: string) => void;
}

export async function createRenderer(mode: OutputMode, opts: RenderOptions): Promise<Renderer> {
  const { stdout, stderr } = opts.streams ?? { stdout: process.stdout, stderr: process.stderr };
  const redact = makeRedactor(opts.secrets);
  const output: Output = { stdout, stderr, verbose: opts.verbose, redact, out: (s, line) => s.write(redact(line) + '\n') };
  if (mode === 'json') return jsonRenderer(output);
  if (mode === 'plain') return plainRenderer(output);
  return ttyRenderer(output);
}

function jsonRenderer({ stdout, stderr, verbose, redact, out }: Output): Renderer {
  // masked before serialising: JSON escapes `"` and `\`, so a secret holding them would not be found after
  const json = (value: object) => stdout.write(JSON.stringify(maskDeep(value, redact)) + '\n');
  // log lines after the result (the --verbose trace of releasing the lock) go to stderr, so the result stays the last
  // line of a command's own output; only up --traffic's traffic events follow it on stdout
  let resultWritten = false;
  return {
    mode: 'json',
    emit(event) {
      if (event.type === 'log' && event.level === 'debug' && !verbose) return;
      if (resultWritten && event.type === 'log') out(stderr, JSON.stringify(maskDeep(event, redact)));
      else json(event);
    },
    print: (text) => out(stderr, text),
    result: (ok, data) => {
      json({ type: 'result', ok, ...data });
      resultWritten = true;
    },
    suspend() {},
    resume() {},
    close() {},
  };
}

function stepLine(e: StepEvent): string {
  const took = e.durationMs !== undefined && e.durationMs >= 1000 ? ` (${(e.durationMs / 1000).toFixed(1)}s)` : '';
  return `${SYMBOL[e.status as keyof typeof SYMBOL]} ${e.title}${e.message ? ` — ${e.message}` : ''}${took}`;
}

function logLine(e: LogEvent): string {
  return `  ${e.level === 'warn' ? 'warning: ' : e.level === 'note' ? 'note: ' : ''}${e.message}`;
}

/** Steps that may run side by side (src/core/runner.ts): while more than one runs, each log line names its step. */
function runningSteps() {
  const running = new Map<string, string>();
  return {
    running,
    track(e: StepEvent) {
      if (e.status === 'start') running.set(e.id, e.title);
      else running.delete(e.id);
    },
    logLine(e: LogEvent) {
      const line = logLine(e);
      return running.size > 1 && e.step ? `  [${e.step}]${line.slice(1)}` : line;
    },
  };
}

function plainRenderer({ stdout, stderr, verbose, out }: Output): Renderer {
  const steps = runningSteps();
  let lastProgress = 0;
  return {
    mode: 'plain',
    emit(e) {
      if (e.type === 'step') {
        steps.track(e);
        out(stderr, e.status === 'start' ? `… ${e.title}` : stepLine(e));
      } else if (e.type === 'log') {
        if (e.level === 'debug' && !verbose) return;
        out(stderr, steps.logLine(e));
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

async function ttyRenderer({ stdout, stderr, verbose, redact, out }: Output): Promise<Renderer> {
  const { default: ora } = await import('ora');
  const steps = runningSteps();
  const { running } = steps;
  // one spinner line, naming every step that runs
  let spinner: ReturnType<typeof ora> | undefined;
  let progressText = '';
  let suspended = false;
  const spinnerText = () => redact([...running.values()].join(' · ') + (running.size === 1 && progressText ? ` ${progressText}` : ''));
  // while a prompt owns the terminal (suspend), a spinner is made but not drawn
  const startSpinner = () => {
    const made = ora({ text: spinnerText(), stream: stderr });
    return suspended ? made : made.start();
  };
  const onStep = (e: StepEvent) => {
    steps.track(e);
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
  };
  const onLog = (e: LogEvent) => {
    if (e.level === 'debug' && !verbose) return;
    const spinning = spinner?.isSpinning;
    if (spinning) spinner!.clear();
    out(stderr, steps.logLine(e));
    if (spinning) spinner!.render();
  };
  return {
    mode: 'tty',
    emit(e) {
      if (e.type === 'step') onStep(e);
      else if (e.type === 'log') onLog(e);
      else if (e.type === 'progress' && spinner) {
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
