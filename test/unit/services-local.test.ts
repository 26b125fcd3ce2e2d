// `npm run services`: the chain started from templates/services/ as the files are (no build context), then the
// tutorial's curl against micro-api; Ctrl-C stops all three. Real processes, real npm, real curl, loopback only.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, execFile } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import { freePorts } from '../support/local-services.js';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/**
 * `npm run services -- <args>` as a terminal runs it: its own process group, so Ctrl-C reaches npm and the runner.
 * npm itself ends by the signal it forwarded (@npmcli/run-script re-raises it); the runner's own exit code is
 * what the test looks at, so the script npm runs is started the same way without npm in between.
 */
function startServices(args: string[], viaNpm = true) {
  const script = JSON.parse(readFileSync(path.join(ROOT, 'package.json'), 'utf8')).scripts.services as string;
  assert.equal(script, 'node templates/services/run-local.mjs');
  const [cmd, ...cmdArgs] = viaNpm ? ['npm', 'run', '--silent', 'services', '--', ...args] : [process.execPath, 'templates/services/run-local.mjs', ...args];
  const child = spawn(cmd, cmdArgs, { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c) => (stdout += c));
  child.stderr.on('data', (c) => (stderr += c));
  // close, not exit: the services write to the same pipes until they have stopped
  const exited = new Promise<number | NodeJS.Signals | null>((resolve) => child.on('close', (code, signal) => resolve(code ?? signal)));
  return {
    child,
    exited,
    out: () => stdout,
    err: () => stderr,
    async until(pattern: RegExp): Promise<void> {
      while (!pattern.test(stdout)) {
        const ended = await Promise.race([once(child.stdout, 'data').then(() => false), exited.then(() => true)]);
        if (ended && !pattern.test(stdout)) throw new Error(`services exited before ${pattern}:\n${stdout}\n${stderr}`);
      }
    },
    interrupt: () => process.kill(-child.pid!, 'SIGINT'),
  };
}

describe('npm run services', { timeout: 60_000 }, () => {
  it("starts micro-pay, micro-order and micro-api from templates/services and the tutorial's curl succeeds", async () => {
    const [api, order, pay, payHttp] = await freePorts(4);
    const run = startServices(['--api-port', String(api), '--order-port', String(order), '--pay-port', String(pay), '--pay-http-port', String(payHttp)]);
    let orderId = '';
    try {
      await run.until(/run-local: ready/);
      // the tutorial's request, with curl as the tutorial sends it
      const { stdout } = await promisify(execFile)('curl', [
        '-s', '-H', 'Content-Type:application/json', '-X', 'POST',
        '-d', '{"businessId":"Y2021040819","amount":100,"channel":1}',
        `http://127.0.0.1:${api}/api/order/create`,
      ]);
      const body = JSON.parse(stdout);
      assert.equal(body.code, 0, stdout);
      assert.equal(body.message, '成功');
      assert.equal(body.data.status, 2);
      assert.match(body.data.orderId, /^\d{23}$/);
      // each service's log lines are prefixed with its name; each ran from templates/services
      for (const svc of ['micro-api', 'micro-order', 'micro-pay']) assert.match(run.out(), new RegExp(`^${svc}\\s*\\| \\{.*"msg":"listening"`, 'm'));
      orderId = body.data.orderId;
    } finally {
      run.interrupt();
    }
    assert.equal(await run.exited, 'SIGINT', run.err());
    // all output is in once the pipes closed: micro-pay was paid for that order
    assert.match(run.out(), new RegExp(`^micro-pay\\s*\\| .*"msg":"request".*"orderId":"${orderId}"`, 'm'));
    for (const svc of ['micro-api', 'micro-order', 'micro-pay']) assert.match(run.out(), new RegExp(`^${svc}\\s*\\| .*"msg":"shutdown complete"`, 'm'));
  });

  it('Ctrl-C stops all three and the runner exits 0', async () => {
    const ports = await freePorts(4);
    const run = startServices(['--api-port', String(ports[0]), '--order-port', String(ports[1]), '--pay-port', String(ports[2]), '--pay-http-port', String(ports[3])], false);
    await run.until(/run-local: ready/);
    run.interrupt();
    assert.equal(await run.exited, 0, run.err());
    for (const svc of ['micro-api', 'micro-order', 'micro-pay']) assert.match(run.out(), new RegExp(`^${svc}\\s*\\| .*"msg":"shutdown complete"`, 'm'));
  });

  it('a port in use stops the chain with exit 1 and names the service', async () => {
    const [api, order, pay, payHttp] = await freePorts(4);
    const blocker = net.createServer().listen(order, '127.0.0.1');
    await once(blocker, 'listening');
    try {
      const run = startServices(['--api-port', String(api), '--order-port', String(order), '--pay-port', String(pay), '--pay-http-port', String(payHttp)], false);
      assert.equal(await run.exited, 1);
      assert.match(run.err(), /run-local: micro-order exited \(code 1\) — see its log above \(a port in use\? pass another with --order-port\)/);
      assert.match(run.out(), /micro-order\s*\| .*"msg":"cannot listen"/);
    } finally {
      blocker.close();
    }
  });

  it('refuses a bad port with exit 2', async () => {
    const run = startServices(['--api-port', 'http'], false);
    assert.equal(await run.exited, 2);
    assert.match(run.err(), /--api-port "http" is not a port number/);
  });
});
