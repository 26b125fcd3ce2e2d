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
  const name = commandName(file, args);
  const notFound = (result as any).code === 'ENOENT' || /ENOENT/.test(String((result as any).originalMessage ?? ''));
  if (result.timedOut && opts.onTimeout && !opts.signal?.aborted) throw opts.onTimeout({ name, timeoutMs: opts.timeoutMs ?? 0, tail: [...tail] });
  const exitCode = result.exitCode ?? 1;
  const failure = failureOf(file, args, { canceled: result.isCanceled || !!opts.signal?.aborted, notFound, timedOut: !!result.timedOut, exitCode, tail }, opts);
  if (failure) throw failure;
  return { exitCode, stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), tail };
}

/**
 * A short command read only once it has exited (a version probe), started with node's execFile: loading
 * execa costs a fresh process ~70 ms, which was a fifth of `meshdemo download`. Same errors as runCommand.
 */
export async function runProbe(file: string, args: string[], opts: { signal?: AbortSignal; timeoutMs: number }): Promise<{ stdout: string; stderr: string }> {
  const { execFile } = await import('node:child_process');
  return new Promise((resolve, reject) => {
    const child = execFile(file, args, { signal: opts.signal, timeout: opts.timeoutMs, killSignal: 'SIGKILL', maxBuffer: 4 << 20, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (!err) return resolve({ stdout, stderr });
      const tail = `${stdout}${stderr}`.split('\n').filter((l) => l !== '').slice(-15);
      const code = (err as { code?: unknown }).code;
      const outcome = {
        canceled: !!opts.signal?.aborted,
        notFound: code === 'ENOENT',
        timedOut: err.killed === true && !opts.signal?.aborted && code !== 'ERR_CHILD_PROCESS_STDIO_MAXBUFFER',
        exitCode: typeof code === 'number' ? code : 1,
        tail,
      };
      reject(failureOf(file, args, outcome, { timeoutMs: opts.timeoutMs }) ?? err);
    });
    child.stdin?.end();
  });
}

interface Outcome {
  canceled: boolean;
  notFound: boolean;
  timedOut: boolean;
  exitCode: number;
  tail: string[];
}

function commandName(file: string, args: string[]): string {
  return `${file.split('/').pop()} ${args.slice(0, 3).join(' ')}`.trim();
}

/** The error a finished command stands for, or undefined when it succeeded. */
function failureOf(file: string, args: string[], o: Outcome, opts: Pick<RunOptions, 'timeoutMs' | 'okExitCodes'>): Error | undefined {
  const name = commandName(file, args);
  if (o.canceled) return new InterruptedError(`interrupted while running ${name}`);
  if (o.notFound) return new PreflightError(`${file} is not installed or not on PATH`, { hint: `install ${file.split('/').pop()} or put it on PATH` });
  if (o.timedOut) {
    const ms = opts.timeoutMs ?? 0;
    return new ExternalCommandError(`${name} did not finish within ${(ms / 1000).toFixed(ms && ms < 10_000 ? 1 : 0)}s`, { details: o.tail, hint: 'see its last output above' });
  }
  if (o.exitCode !== 0 && !(opts.okExitCodes ?? []).includes(o.exitCode)) {
    return new ExternalCommandError(`${name} failed with exit code ${o.exitCode}`, { details: o.tail, hint: 'its last output is shown below; --verbose streams all of it' });
  }
  return undefined;
}
