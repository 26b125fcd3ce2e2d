import type { ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { killOwned, spawnOwned } from './reaper.js';

/** The real meshdemo executable, run as a user would (no TTY): bin/meshdemo → dist/src/cli.js. */
export const MESHDEMO_BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../bin/meshdemo');

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** stdout parsed as NDJSON (throws if any line is not JSON). */
  events(): any[];
}

/**
 * The environment meshdemo runs in: this process's, without meshdemo's own settings (MESHDEMO_*, but for the test
 * environment's MESHDEMO_TESTENV_* and MESHDEMO_FIXTURES) and without KUBECONFIG, so that what the person running
 * the tests has set cannot change a test's outcome; then CI=true and the test's own variables.
 */
export function cleanEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: Record<string, string | undefined> = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k === 'KUBECONFIG' || (k.startsWith('MESHDEMO_') && !k.startsWith('MESHDEMO_TESTENV_') && k !== 'MESHDEMO_FIXTURES')) continue;
    env[k] = v;
  }
  Object.assign(env, { CI: 'true' }, extra);
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return env as NodeJS.ProcessEnv;
}

/**
 * Runs meshdemo as the leader of its own process group: on timeout (and when this process exits or is killed)
 * the whole group is killed — meshdemo and anything it started, such as istioctl.
 */
export function runMeshdemo(
  args: string[],
  opts: {
    env?: Record<string, string | undefined>;
    cwd?: string;
    timeoutMs?: number;
    onStdout?: (chunk: string) => void;
    onSpawn?: (child: ChildProcess) => void;
    /** Each NDJSON event (--json) as soon as its line is complete, with the meshdemo process (to signal it). */
    onEvent?: (event: any, child: ChildProcess) => void;
  } = {},
): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawnOwned(process.execPath, [MESHDEMO_BIN, ...args], { env: cleanEnv(opts.env), cwd: opts.cwd, stdio: ['ignore', 'pipe', 'pipe'] });
    opts.onSpawn?.(child);
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout!.on('data', (c) => {
      stdout += c;
      opts.onStdout?.(String(c));
      if (!opts.onEvent) return;
      const lines = (partial + c).split('\n');
      partial = lines.pop()!;
      for (const l of lines) if (l.trim()) opts.onEvent(JSON.parse(l), child);
    });
    child.stderr!.on('data', (c) => (stderr += c));
    const timer = setTimeout(() => killOwned(child), opts.timeoutMs ?? 300_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code: code ?? (signal ? 128 : 1),
        stdout,
        stderr,
        events: () => stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)),
      });
    });
  });
}

/** The lines meshdemo printed as errors (each must be one line naming the problem and the fix). */
export function errorLines(stderr: string): string[] {
  return stderr.split('\n').filter((l) => l.startsWith('error: '));
}
