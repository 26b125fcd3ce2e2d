// Shared helpers for the benchmarks: timing child processes, medians, tables, kubectl lookup, cleanup.
// Everything runs on this machine (loopback only); each bench measures its reference in the same run.
import { spawn, spawnSync, type SpawnOptions } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** /work/main (dist/bench/common.js → ../..). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
export const MESHDEMO_BIN = path.join(REPO_ROOT, 'bin', 'meshdemo');
export const BENCH_DIST = path.join(REPO_ROOT, 'dist', 'bench');

/** Repetitions of the slow benches (env MESHDEMO_BENCH_REPS, default 3). */
export function reps(defaultReps = 3): number {
  const n = Number(process.env.MESHDEMO_BENCH_REPS);
  return Number.isInteger(n) && n > 0 ? n : defaultReps;
}

export interface Target {
  what: string;
  met: boolean;
  /** The figure the target is about (e.g. "0.92×", "14 requests"). */
  figure: string;
  /** Its spread over the rounds (e.g. "0.88–0.97×"). */
  spread: string;
  detail: string;
}

export interface BenchResult {
  name: string;
  title: string;
  headers: string[];
  rows: string[][];
  targets: Target[];
  notes: string[];
}

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function ms(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  return x >= 10_000 ? `${(x / 1000).toFixed(1)} s` : x >= 1000 ? `${(x / 1000).toFixed(2)} s` : `${Math.round(x)} ms`;
}

export function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}×` : 'n/a';
}

/** "min–max×" of per-round ratios (or of any numbers, with another unit). */
export function spread(xs: number[], unit = '×', digits = 2): string {
  const finite = xs.filter(Number.isFinite);
  if (!finite.length) return 'n/a';
  return `${Math.min(...finite).toFixed(digits)}–${Math.max(...finite).toFixed(digits)}${unit}`;
}

export function list(xs: number[]): string {
  return xs.map((x) => ms(x)).join(', ');
}

/** A markdown table with padded columns (readable in a terminal, pasteable into RESULTS.md). */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) => `| ${cells.map((c, i) => (c ?? '').padEnd(widths[i])).join(' | ')} |`;
  return [line(headers), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)].join('\n');
}

export function formatResult(r: BenchResult): string {
  const out = [`### ${r.title}`, '', formatTable(r.headers, r.rows), ''];
  for (const t of r.targets) out.push(`- ${formatTarget(r.name, t)} — ${t.detail}`);
  for (const n of r.notes) out.push(`- ${n}`);
  return out.join('\n');
}

/**
 * An API request in meshdemo's --verbose request trace (src/kube/client.ts formatTrace): a debug event
 * "GET /api/v1/namespaces 200 12ms" in the NDJSON of --json --verbose.
 */
export function isRequestTrace(e: { type?: string; level?: string; message?: string }): boolean {
  return e.type === 'log' && e.level === 'debug' && /^(GET|POST|PUT|PATCH|DELETE) \/\S* (\d{3}|[A-Z_]+|error) \d+ms$/.test(e.message ?? '');
}

/** "MET    noop-up: no-op up: at most 15 API requests: 14 requests (spread 14–14 requests)" */
export function formatTarget(bench: string, t: Target): string {
  return `${t.met ? 'MET   ' : 'MISSED'} ${bench}: ${t.what}: ${t.figure} (spread over the rounds ${t.spread})`;
}

export function log(msg: string): void {
  process.stderr.write(`[bench] ${msg}\n`);
}

export interface Timed {
  ms: number;
  /** user + system CPU time of the process (and its children), with `cpu: true`. */
  cpuMs?: number;
  code: number;
  stdout: string;
  stderr: string;
}

const TIME_BIN = '/usr/bin/time';
let cpuFileSeq = 0;

/**
 * Runs a command to completion and measures its wall time (spawn → exit) with a monotonic clock; with `cpu`,
 * also its CPU time, through GNU time (less sensitive than wall time to the load of a shared machine).
 */
export function timeCommand(
  cmd: string,
  args: string[],
  opts: SpawnOptions & { timeoutMs?: number; cpu?: boolean; onStdoutLine?: (line: string, atMs: number) => void } = {},
): Promise<Timed> {
  const cpuFile = opts.cpu && fs.existsSync(TIME_BIN) ? path.join(os.tmpdir(), `meshdemo-bench-cpu-${process.pid}-${cpuFileSeq++}`) : undefined;
  if (cpuFile) {
    args = ['-q', '-f', '%U %S', '-o', cpuFile, cmd, ...args];
    cmd = TIME_BIN;
  }
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { ...opts, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    let partial = '';
    child.stdout!.on('data', (c: Buffer) => {
      const text = c.toString('utf8');
      stdout += text;
      if (opts.onStdoutLine) {
        const now = performance.now() - t0;
        partial += text;
        let i: number;
        while ((i = partial.indexOf('\n')) >= 0) {
          opts.onStdoutLine(partial.slice(0, i), now);
          partial = partial.slice(i + 1);
        }
      }
    });
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString('utf8')));
    const timer = opts.timeoutMs ? setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs) : undefined;
    child.once('error', reject);
    child.once('close', (code, signal) => {
      const elapsed = performance.now() - t0;
      if (timer) clearTimeout(timer);
      let cpuMs: number | undefined;
      if (cpuFile) {
        const [user, sys] = fs.readFileSync(cpuFile, 'utf8').trim().split(/\s+/).slice(-2).map(Number);
        fs.rmSync(cpuFile, { force: true });
        cpuMs = (user + sys) * 1000;
      }
      resolve({ ms: elapsed, cpuMs, code: code ?? (signal ? 128 : 1), stdout, stderr });
    });
  });
}

/** Like timeCommand, but throws (with the output) when the exit code is not 0. */
export async function mustRun(cmd: string, args: string[], opts: Parameters<typeof timeCommand>[2] = {}): Promise<Timed> {
  const r = await timeCommand(cmd, args, opts);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} exited ${r.code}\n${r.stderr.slice(-2000)}${r.stdout.slice(-1000)}`);
  return r;
}

/** Environment for child processes: loopback is never proxied. */
export function loopbackEnv(extra: Record<string, string | undefined> = {}): NodeJS.ProcessEnv {
  const env: Record<string, string | undefined> = { ...process.env, NO_PROXY: '127.0.0.1,localhost,::1', no_proxy: '127.0.0.1,localhost,::1', CI: 'true', ...extra };
  for (const k of Object.keys(env)) if (env[k] === undefined) delete env[k];
  return env as NodeJS.ProcessEnv;
}

export interface Kubectl {
  path: string;
  version: string;
  source: string;
}

/**
 * Debian's kubectl 1.20 (package kubernetes-client). It cannot be installed next to google-cloud-sdk's
 * kubectl package (both own /usr/bin/kubectl), so the bench also looks where `dpkg-deb -x` of that
 * package puts it (/opt/debian-kubernetes-client). Override with MESHDEMO_BENCH_KUBECTL.
 */
export function findKubectl(): Kubectl | undefined {
  const candidates: Array<[string | undefined, string]> = [[process.env.MESHDEMO_BENCH_KUBECTL, 'MESHDEMO_BENCH_KUBECTL']];
  const dpkg = spawnSync('dpkg', ['-L', 'kubernetes-client'], { encoding: 'utf8' });
  if (dpkg.status === 0) candidates.push([dpkg.stdout.split('\n').find((l) => /\/bin\/kubectl$/.test(l)), 'Debian package kubernetes-client']);
  candidates.push(['/opt/debian-kubernetes-client/usr/bin/kubectl', 'Debian kubernetes-client .deb, unpacked with dpkg-deb -x']);
  for (const dir of (process.env.PATH ?? '').split(path.delimiter).filter(Boolean)) candidates.push([path.join(dir, 'kubectl'), 'kubectl on PATH']);
  for (const [p, source] of candidates) {
    if (!p) continue;
    try {
      fs.accessSync(p, fs.constants.X_OK);
    } catch {
      continue;
    }
    const v = spawnSync(p, ['version', '--client', '--short'], { encoding: 'utf8' });
    const version = /v\d+\.\d+\.\d+\S*/.exec(v.stdout + v.stderr)?.[0] ?? 'unknown';
    return { path: fs.realpathSync(p), version, source };
  }
  return undefined;
}

/** CPU time (user + system, ms) the processes have used so far, from /proc (0 for a process that is gone). */
export function procCpuMs(pids: number[]): number {
  let ticks = 0;
  for (const pid of pids) {
    try {
      // fields after the command name (which is in parentheses and may hold spaces): utime is the 12th, stime the 13th
      const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
    } catch {
      // gone
    }
  }
  return (ticks * 1000) / 100; // USER_HZ is 100 on Linux
}

/** The PIDs of a test control plane (etcd, kube-apiserver, kube-controller-manager), from its pid file. */
export function controlPlanePids(dir: string): number[] {
  try {
    return fs.readFileSync(path.join(dir, 'pids'), 'utf8').split('\n').filter(Boolean).map(Number);
  } catch {
    return [];
  }
}

export interface Machine {
  nproc: number;
  memory: string;
  node: string;
  cpu: string;
  load: string;
}

export function machine(): Machine {
  return {
    nproc: os.cpus().length,
    memory: `${(os.totalmem() / 2 ** 30).toFixed(1)} GiB`,
    node: process.version,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    load: os.loadavg().map((l) => l.toFixed(2)).join(' '),
  };
}

export function tmpDir(prefix: string): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), `meshdemo-bench-${prefix}-`));
}

// ---------------------------------------------------------------------------------------------------------
// Cleanup: every bench registers what it started; run.ts runs these on SIGINT/SIGTERM too.

const cleanups = new Set<() => Promise<void> | void>();

/** Registers fn; returns a function that runs it once and unregisters it. */
export function onCleanup(fn: () => Promise<void> | void): () => Promise<void> {
  let done = false;
  const wrapped = async () => {
    if (done) return;
    done = true;
    cleanups.delete(wrapped);
    await fn();
  };
  cleanups.add(wrapped);
  return wrapped;
}

export async function runCleanups(): Promise<void> {
  for (const fn of [...cleanups].reverse()) {
    try {
      await fn();
    } catch (err) {
      log(`cleanup failed: ${(err as Error).message}`);
    }
  }
}
