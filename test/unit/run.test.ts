import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { ExternalCommandError, InterruptedError, PreflightError } from '../../src/core/errors.js';
import { runCommand, runProbe } from '../../src/exec/run.js';

// runProbe (node's execFile, for version probes) must fail exactly as runCommand (execa) does.
const runners = {
  runCommand: (file: string, args: string[], o: { signal?: AbortSignal; timeoutMs: number }) => runCommand(file, args, o),
  runProbe,
};

for (const [name, run] of Object.entries(runners)) {
  describe(name, () => {
    it('returns what the command printed', async () => {
      const r = await run('/bin/sh', ['-c', 'echo "kind v0.17.0 go1.19.2 linux/amd64"; echo note >&2'], { timeoutMs: 10_000 });
      assert.equal(r.stdout.trim(), 'kind v0.17.0 go1.19.2 linux/amd64');
      assert.equal(r.stderr.trim(), 'note');
    });

    it('a missing program is a PreflightError naming it', async () => {
      await assert.rejects(run('/nonexistent/istioctl', ['version'], { timeoutMs: 10_000 }), (e: unknown) => e instanceof PreflightError && e.message === '/nonexistent/istioctl is not installed or not on PATH');
    });

    it('a non-zero exit is an ExternalCommandError with the exit code and the last lines', async () => {
      await assert.rejects(run('/bin/sh', ['-c', 'echo first; echo last >&2; exit 3'], { timeoutMs: 10_000 }), (e: unknown) => {
        assert.ok(e instanceof ExternalCommandError);
        assert.equal(e.message, 'sh -c echo first; echo last >&2; exit 3 failed with exit code 3');
        assert.deepEqual(e.details?.slice().sort(), ['first', 'last']);
        return true;
      });
    });

    it('a command past its timeout is killed and reported', async () => {
      await assert.rejects(run('/bin/sh', ['-c', 'exec sleep 30'], { timeoutMs: 300 }), (e: unknown) => e instanceof ExternalCommandError && /did not finish within 0\.3s/.test(e.message));
    });

    it('cancellation is an InterruptedError', async () => {
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 200);
      await assert.rejects(run('/bin/sh', ['-c', 'exec sleep 30'], { signal: controller.signal, timeoutMs: 60_000 }), InterruptedError);
    });
  });
}

/** Alive and not a zombie (an orphan that init has not reaped yet counts as gone). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && alive(pid); i++) await sleep(100);
  return !alive(pid);
}

// A real child that starts a grandchild (as kind starts docker): the grandchild writes its pid to a file, keeps
// the child's stdout open and would outlive the child, which is all a signal to the child alone would reach.
for (const [name, run] of Object.entries(runners)) {
  describe(`${name}: the child's whole process group`, () => {
    const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-pgroup-'));
    const tree = (pidFile: string) => ['-c', `sleep 300 & echo $! > ${pidFile}; wait`];
    const grandchild = async (pidFile: string) => {
      for (let i = 0; i < 50 && !fs.existsSync(pidFile); i++) await sleep(50);
      return Number(fs.readFileSync(pidFile, 'utf8'));
    };

    it('is killed on cancellation (Ctrl-C, SIGTERM): no grandchild is left behind', { timeout: 20_000 }, async () => {
      const pidFile = path.join(tmp, 'cancel.pid');
      const controller = new AbortController();
      const running = run('/bin/sh', tree(pidFile), { signal: controller.signal, timeoutMs: 60_000 });
      const pid = await grandchild(pidFile);
      assert.ok(alive(pid), 'the grandchild runs');
      controller.abort();
      await assert.rejects(running, InterruptedError);
      assert.ok(await gone(pid), 'the grandchild was killed with its parent');
    });

    it('is killed on timeout', { timeout: 20_000 }, async () => {
      const pidFile = path.join(tmp, 'timeout.pid');
      const running = run('/bin/sh', tree(pidFile), { timeoutMs: 1000 });
      const pid = await grandchild(pidFile);
      await assert.rejects(running, (e: unknown) => e instanceof ExternalCommandError && /did not finish within 1\.0s/.test(e.message));
      assert.ok(await gone(pid), 'the grandchild was killed with its parent');
    });

    it('runs in a process group of its own (a terminal Ctrl-C reaches meshdemo, which then kills it)', async () => {
      const r = await run('/bin/sh', ['-c', 'ps -o pgid= -p $$; echo $$'], { timeoutMs: 10_000 });
      const [pgid, pid] = r.stdout.trim().split(/\s+/).map(Number);
      assert.equal(pgid, pid, 'it leads its group');
      assert.notEqual(pgid, Number(execFileSync('ps', ['-o', 'pgid=', '-p', String(process.pid)], { encoding: 'utf8' }).trim()));
    });
  });
}
