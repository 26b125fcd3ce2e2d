/**
 * The one error hierarchy of meshdemo. Every failure a user can act on is a MeshdemoError whose
 * subclass fixes the process exit code; action() in src/commands/action.ts is the one place that turns them into
 * messages and exit codes (src/cli.ts handles only commander's own usage errors, and a last-resort catch).
 */
export const ExitCode = {
  ok: 0,
  unexpected: 1,
  usage: 2,
  preflight: 3,
  timeout: 4,
  download: 5,
  externalCommand: 6,
  interrupted: 130,
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

export interface ErrorDetails {
  /** What the user should do about it; appended to the one-line message. */
  hint?: string;
  /** Extra lines (diagnosis, last output of a tool) shown under the message. */
  details?: string[];
  cause?: unknown;
}

export class MeshdemoError extends Error {
  readonly exitCode: ExitCodeValue;
  readonly hint?: string;
  readonly details: string[];
  constructor(message: string, exitCode: ExitCodeValue, info: ErrorDetails = {}) {
    super(message, info.cause === undefined ? undefined : { cause: info.cause });
    this.name = new.target.name;
    this.exitCode = exitCode;
    this.hint = info.hint;
    this.details = info.details ?? [];
  }
}

/** Exit 2: bad flags, bad arguments, bad kubeconfig, a prompt needed but impossible. */
export class UsageError extends MeshdemoError {
  constructor(message: string, info?: ErrorDetails) {
    super(message, ExitCode.usage, info);
  }
}

/** Exit 3: the cluster or the machine is not fit (version, permissions, reachability, missing tool). */
export class PreflightError extends MeshdemoError {
  constructor(message: string, info?: ErrorDetails) {
    super(message, ExitCode.preflight, info);
  }
}

/** Exit 3: the run lost the cluster lock while it held it (taken by another run, or not renewable in time). */
export class LockLostError extends PreflightError {}

/** Exit 4: something did not become ready before the deadline. */
export class ReadinessTimeoutError extends MeshdemoError {
  constructor(message: string, info?: ErrorDetails) {
    super(message, ExitCode.timeout, info);
  }
}

/** Exit 1: a scenario's --verify measured something else than what was asked (e.g. a canary's share per version). */
export class VerificationError extends MeshdemoError {
  constructor(message: string, info?: ErrorDetails) {
    super(message, ExitCode.unexpected, info);
  }
}

/** Exit 5: a download failed or did not verify. */
export class DownloadError extends MeshdemoError {
  constructor(message: string, info?: ErrorDetails) {
    super(message, ExitCode.download, info);
  }
}

/** Exit 6: an external command (istioctl, docker, kind) failed. */
export class ExternalCommandError extends MeshdemoError {
  constructor(message: string, info?: ErrorDetails) {
    super(message, ExitCode.externalCommand, info);
  }
}

/** Exit 130: SIGINT/SIGTERM. */
export class InterruptedError extends MeshdemoError {
  constructor(message = 'interrupted', info?: ErrorDetails) {
    super(message, ExitCode.interrupted, info);
  }
}

/**
 * The error a cancelled run ends with: the reason it was aborted for when that is one of ours (a lost lock),
 * otherwise an interruption (Ctrl-C).
 */
export function abortReason(signal: AbortSignal): MeshdemoError {
  return signal.reason instanceof MeshdemoError ? signal.reason : new InterruptedError();
}

export function exitCodeOf(err: unknown): ExitCodeValue {
  if (err instanceof MeshdemoError) return err.exitCode;
  return ExitCode.unexpected;
}

/** One line: the problem, then the fix. */
export function oneLine(err: unknown): string {
  if (err instanceof MeshdemoError) {
    return err.hint ? `${err.message} — ${err.hint}` : err.message;
  }
  const message = err instanceof Error ? err.message : String(err);
  return `unexpected error: ${message.split('\n')[0]} — re-run with --verbose for details`;
}
