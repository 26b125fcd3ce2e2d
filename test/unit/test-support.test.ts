// The test harness itself: what meshdemo inherits, and that what a test starts dies with it.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cleanEnv } from '../support/cli.js';
import { killOwned, spawnOwned } from '../support/reaper.js';

const REAPER = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../support/reaper.js');

/** Running (a zombie, killed but not yet reaped by its new parent, is not). */
function alive(pid: number): boolean {
  try {
    return !/\) Z /.test(fs.readFileSync(`/proc/${pid}/stat`, 'utf8'));
  } catch {
    return false;
  }
}

async function gone(pid: number): Promise<boolean> {
  for (let i = 0; i < 100 && alive(pid); i++) await sleep(100);
  return !alive(pid);
}

describe('test harness', () => {
  it("meshdemo does not inherit the runner's MESHDEMO_* settings or KUBECONFIG", () => {
    const saved = { ...process.env };
    Object.assign(process.env, { KUBECONFIG: '/home/me/.kube/prod', MESHDEMO_NAMESPACE: 'prod', MESHDEMO_YES: '1', MESHDEMO_TESTENV_BIN: '/cache/bin', MESHDEMO_FIXTURES: '/fixtures' });
    try {
      const env = cleanEnv({ MESHDEMO_LOCK_WAIT: '5s', HTTP_PROXY: undefined });
      assert.equal(env.KUBECONFIG, undefined);
      assert.equal(env.MESHDEMO_NAMESPACE, undefined);
      assert.equal(env.MESHDEMO_YES, undefined);
      assert.equal(env.MESHDEMO_LOCK_WAIT, '5s', "the test's own");
      assert.equal(env.MESHDEMO_TESTENV_BIN, '/cache/bin', 'the test environment is kept');
      assert.equal(env.CI, 'true');
      assert.ok(!('HTTP_PROXY' in env));
    } finally {
      for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k];
      Object.assign(process.env, saved);
    }
  });

  it('killing an owned process kills what it started too (its process group)', async () => {
    const child = spawnOwned('/bin/sh', ['-c', 'sleep 300 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'ignore'] });
    const grandchild = Number(await new Promise<string>((resolve) => child.stdout!.once('data', (d) => resolve(String(d).trim()))));
    assert.ok(alive(grandchild));
    killOwned(child);
    assert.ok(await gone(grandchild), 'the grandchild (say, istioctl) was killed with it');
  });

  it('what a test process started dies when the test process is killed with SIGKILL', async () => {
    // the sleeper's pid is passed on once spawnOwned has returned (and so has registered its group)
    const script = `import { spawnOwned } from ${JSON.stringify(REAPER)}; const c = spawnOwned('/bin/sh', ['-c', 'sleep 300 & echo $!; wait'], { stdio: ['ignore', 'pipe', 'ignore'] }); c.stdout.on('data', (d) => process.stdout.write(d)); setInterval(() => {}, 1000);`;
    const testProcess = spawn(process.execPath, ['--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'ignore'] });
    const sleeper = Number(await new Promise<string>((resolve) => testProcess.stdout!.once('data', (d) => resolve(String(d).trim()))));
    assert.ok(alive(sleeper));
    testProcess.kill('SIGKILL');
    assert.ok(await gone(sleeper), 'the watchdog killed it');
  });
});
