// Every process a test starts dies with the test process: each is spawned as the leader of its own process group
// (so whatever it starts in turn — meshdemo's istioctl, dockerd's containerd — is in that group too), and the
// groups are killed with SIGKILL when the test process exits, and by a watchdog when it is killed (SIGKILL leaves no
// chance to clean up: the watchdog notices its stdin pipe from us closing).
import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const groups = new Set<number>();
let listFile: string | undefined;

function killGroup(pgid: number, signal: NodeJS.Signals = 'SIGKILL'): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    /* gone */
  }
}

function ensureWatchdog(): string {
  if (listFile) return listFile;
  const file = path.join(os.tmpdir(), `meshdemo-reaper-${process.pid}-${randomBytes(4).toString('hex')}`);
  fs.writeFileSync(file, '');
  const script = 'cat >/dev/null; for g in $(cat "$1" 2>/dev/null); do kill -9 "-$g" 2>/dev/null; done; rm -f "$1"';
  const watchdog = spawn('/bin/sh', ['-c', script, 'meshdemo-reaper', file], { stdio: ['pipe', 'ignore', 'ignore'], detached: true });
  watchdog.once('error', () => {});
  watchdog.unref();
  (watchdog.stdin as unknown as { unref?: () => void } | null)?.unref?.();
  process.once('exit', () => {
    for (const g of groups) killGroup(g);
    try {
      fs.rmSync(file, { force: true });
    } catch {
      /* best effort */
    }
    try {
      process.kill(watchdog.pid!, 'SIGKILL');
    } catch {
      /* gone */
    }
  });
  listFile = file;
  return file;
}

/** spawn(), as the leader of a new process group that dies with this process. */
export function spawnOwned(command: string, args: string[], opts: SpawnOptions = {}): ChildProcess {
  const file = ensureWatchdog();
  const child = spawn(command, args, { ...opts, detached: true });
  if (child.pid !== undefined) {
    groups.add(child.pid);
    fs.appendFileSync(file, `${child.pid}\n`);
  }
  return child;
}

/** Kills the process group a spawnOwned() child leads: the child and everything it started. */
export function killOwned(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid !== undefined) killGroup(child.pid, signal);
}
