import { ExternalCommandError, InterruptedError, PreflightError } from '../core/errors.js';

/** How long an unterminated line waits for the rest of it before it is passed on as it is. */
const PARTIAL_LINE_IDLE_MS = 200;

export interface RunOptions {
  /** Each line of stdout/stderr as it arrives (streamed into the step's log). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  signal?: AbortSignal;
  env?: Record<string, string | undefined>;
  cwd?: string;
  /** Kill the process after this long; reported as ExternalCommandError unless onTimeout is given. */
  timeoutMs?: number;
  /** The error to throw when timeoutMs killed the process (e.g. a ReadinessTimeoutError, exit 4). */
  onTimeout?: (info: { name: string; timeoutMs: number; tail: string[] }) => Error;
  /** Written to the child's stdin (a string, or bytes such as a build context tar). */
  input?: string | Uint8Array;
  /** How many of the last output lines an error carries. */
  tailLines?: number;
  /** Exit codes that are not failures. */
  okExitCodes?: number[];
}

export interface RunResult {
  exitCode: number;
  stdout: string;
  stderr: string;
  /** The last lines of combined output. */
  tail: string[];
}

/**
 * A command that takes over the terminal (stdin, stdout and stderr are meshdemo's own): `meshdemo istioctl -- …`.
 * Its exit code is returned, not judged: the caller passes it through. Killed on cancellation.
 */
export async function runInteractive(file: string, args: string[], opts: { signal?: AbortSignal } = {}): Promise<number> {
  const { execa } = await import('execa');
  const result = await execa(file, args, { stdio: 'inherit', reject: false, cancelSignal: opts.signal, forceKillAfterDelay: 3000 });
  if (result.isCanceled || opts.signal?.aborted) throw new InterruptedError(`interrupted while running ${file.split('/').pop()}`);
  return result.exitCode ?? 1;
}

/**
 * With runInteractive, the only place meshdemo starts processes (istioctl, docker, kind, minikube): argument arrays, no shell,
 * children killed on cancellation, and failures turned into ExternalCommandError with the last lines of output.
 */
export async function runCommand(file: string, args: string[], opts: RunOptions = {}): Promise<RunResult> {
  const { execa } = await import('execa');
  const tail: string[] = [];
  const keep = opts.tailLines ?? 15;
  const remember = (line: string, stream: 'stdout' | 'stderr') => {
    tail.push(line);
    if (tail.length > keep) tail.shift();
    opts.onLine?.(line, stream);
  };
  const child = execa(file, args, {
    reject: false,
    cancelSignal: opts.signal,
    forceKillAfterDelay: 3000,
    env: opts.env,
    cwd: opts.cwd,
    timeout: opts.timeoutMs,
    input: opts.input,
    stdin: opts.input === undefined ? 'ignore' : undefined,
    lines: false,
  });
  const pump = (stream: NodeJS.ReadableStream | null, name: 'stdout' | 'stderr') => {
    if (!stream) return;
    let buffered = '';
    // A message not followed by a newline is shown once the tool pauses: istioctl's progress bar (pb v3 without
    // a TTY) writes "\n" BEFORE each message, so its current message never ends with one.
    let idle: NodeJS.Timeout | undefined;
    const flush = () => {
      if (buffered) remember(buffered.replace(/\r$/, ''), name);
      buffered = '';
    };
    stream.on('data', (chunk: Buffer) => {
      clearTimeout(idle);
      buffered += chunk.toString('utf8');
      let i;
      while ((i = buffered.indexOf('\n')) >= 0) {
        remember(buffered.slice(0, i).replace(/\r$/, ''), name);
        buffered = buffered.slice(i + 1);
      }
      if (buffered) idle = setTimeout(flush, PARTIAL_LINE_IDLE_MS);
    });
    stream.on('end', () => {
      clearTimeout(idle);
      flush();
    });
  };
  pump(child.stdout, 'stdout');
  pump(child.stderr, 'stderr');
  const result = await child;
  const name = `${file.split('/').pop()} ${args.slice(0, 3).join(' ')}`.trim();
  if (result.isCanceled || opts.signal?.aborted) throw new InterruptedError(`interrupted while running ${name}`);
  if ((result as any).code === 'ENOENT' || /ENOENT/.test(String((result as any).originalMessage ?? ''))) {
    throw new PreflightError(`${file} is not installed or not on PATH`, { hint: `install ${file.split('/').pop()} or put it on PATH` });
  }
  if (result.timedOut) {
    if (opts.onTimeout) throw opts.onTimeout({ name, timeoutMs: opts.timeoutMs ?? 0, tail: [...tail] });
    throw new ExternalCommandError(`${name} did not finish within ${((opts.timeoutMs ?? 0) / 1000).toFixed(opts.timeoutMs && opts.timeoutMs < 10_000 ? 1 : 0)}s`, { details: tail, hint: 'see its last output above' });
  }
  const exitCode = result.exitCode ?? 1;
  if (exitCode !== 0 && !(opts.okExitCodes ?? []).includes(exitCode)) {
    throw new ExternalCommandError(`${name} failed with exit code ${exitCode}`, { details: tail, hint: 'its last output is shown below; --verbose streams all of it' });
  }
  return { exitCode, stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), tail };
}
