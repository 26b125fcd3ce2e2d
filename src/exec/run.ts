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

/** How long a process group has between SIGTERM and SIGKILL. */
const KILL_GRACE_MS = 3000;

/**
 * Kills a child's whole process group when the run is cancelled (Ctrl-C, SIGTERM, a lost lock) or the command
 * runs past its time: the child leads a group of its own (spawned `detached`), so what it started — kind's docker
 * calls, istioctl's helpers — goes with it instead of living on as orphans. SIGTERM first, SIGKILL after a grace.
 * Returns whether it fired for the timeout, and a dispose for when the child has ended.
 */
function killGroupOn(pid: number | undefined, signal: AbortSignal | undefined, timeoutMs: number | undefined): { timedOut: () => boolean; dispose: () => void } {
  let timedOut = false;
  let fired = false;
  const send = (sig: NodeJS.Signals) => {
    try {
      if (pid) process.kill(-pid, sig);
    } catch {
      /* ESRCH: the group is gone */
    }
  };
  const fire = () => {
    if (fired) return;
    fired = true;
    send('SIGTERM');
    setTimeout(() => send('SIGKILL'), KILL_GRACE_MS).unref();
  };
  const timer = timeoutMs === undefined ? undefined : setTimeout(() => ((timedOut = true), fire()), timeoutMs);
  if (signal?.aborted) fire();
  else signal?.addEventListener('abort', fire, { once: true });
  return {
    timedOut: () => timedOut,
    dispose: () => {
      clearTimeout(timer);
      signal?.removeEventListener('abort', fire);
    },
  };
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
 * each child in a process group of its own that is killed whole on cancellation and timeout, and failures turned
 * into ExternalCommandError with the last lines of output.
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
    detached: true,
    env: opts.env,
    cwd: opts.cwd,
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
  const group = killGroupOn(child.pid, opts.signal, opts.timeoutMs);
  const result = await child.finally(group.dispose);
  const name = commandName(file, args);
  const notFound = (result as any).code === 'ENOENT' || /ENOENT/.test(String((result as any).originalMessage ?? ''));
  const timedOut = group.timedOut();
  if (timedOut && opts.onTimeout && !opts.signal?.aborted) throw opts.onTimeout({ name, timeoutMs: opts.timeoutMs ?? 0, tail: [...tail] });
  const exitCode = result.exitCode ?? 1;
  const failure = failureOf(file, args, { canceled: !!opts.signal?.aborted, notFound, timedOut, exitCode, tail }, opts);
  if (failure) throw failure;
  return { exitCode, stdout: String(result.stdout ?? ''), stderr: String(result.stderr ?? ''), tail };
}

/**
 * A short command read only once it has exited (a version probe), started with node's spawn: loading
 * execa costs a fresh process ~70 ms, which was a fifth of `meshdemo download`. Same process group handling and
 * errors as runCommand.
 */
export async function runProbe(file: string, args: string[], opts: { signal?: AbortSignal; timeoutMs: number }): Promise<{ stdout: string; stderr: string }> {
  // spawn, not execFile: execFile passes only some of its options on to spawn, and `detached` is not among them
  const { spawn } = await import('node:child_process');
  const MAX_OUTPUT = 4 << 20;
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const group = killGroupOn(child.pid, opts.signal, opts.timeoutMs);
    const out = { stdout: '', stderr: '' };
    let spawnError: NodeJS.ErrnoException | undefined;
    for (const name of ['stdout', 'stderr'] as const) {
      child[name].setEncoding('utf8');
      child[name].on('data', (chunk: string) => {
        if (out.stdout.length + out.stderr.length < MAX_OUTPUT) out[name] += chunk;
      });
    }
    child.on('error', (err) => (spawnError = err));
    child.on('close', (code) => {
      group.dispose();
      if (!spawnError && code === 0) return resolve(out);
      const outcome = {
        canceled: !!opts.signal?.aborted,
        notFound: spawnError?.code === 'ENOENT',
        timedOut: group.timedOut() && !opts.signal?.aborted,
        exitCode: code ?? 1,
        tail: `${out.stdout}${out.stderr}`.split('\n').filter((l) => l !== '').slice(-15),
      };
      reject(failureOf(file, args, outcome, { timeoutMs: opts.timeoutMs }) ?? spawnError);
    });
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
