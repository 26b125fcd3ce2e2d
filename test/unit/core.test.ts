import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import { ExitCode, exitCodeOf, oneLine, PreflightError, UsageError } from '../../src/core/errors.js';
import { parseDuration, validateNamespace } from '../../src/core/options.js';
import { runSteps } from '../../src/core/runner.js';
import { stepLog, type MeshEvent } from '../../src/core/events.js';
import type { Context, Step } from '../../src/record/context.js';
import { createRenderer, outputMode } from '../../src/ui/renderer.js';
import { versionVerdict, requiredPermissions } from '../../src/demo/cluster-checks.js';
import { parseImages, parseNodePorts, parseRegistry, parseUpSettings } from '../../src/settings.js';
import { assetName } from '../../src/demo/istio-release.js';
import { kubeconfigPaths, loadKubeconfig } from '../../src/kube/kubeconfig.js';

function fakeContext(events: MeshEvent[], opts: { dryRun?: boolean } = {}): Context {
  const sink = { emit: (e: MeshEvent) => events.push(e) };
  return {
    options: { namespace: 'default', yes: true, json: true, verbose: false, cacheDir: '/nonexistent', timeoutMs: 1000 },
    settings: {},
    events: sink,
    log: stepLog(sink),
    signal: new AbortController().signal,
    dryRun: opts.dryRun ?? false,
    prompt: { interactive: false, confirm: async () => true, input: async () => '' },
    kube: async () => assert.fail('no cluster in unit tests'),
    inventory: async () => assert.fail('no cluster in unit tests'),
    reads: async () => assert.fail('no cluster in unit tests'),
    secrets: new Set(),
  };
}

function step(id: string, satisfied: boolean, ran: string[], extra: Partial<Step> = {}): Step {
  return { id, title: id, check: async () => ({ satisfied, detail: `${id} detail` }), run: async () => void ran.push(id), ...extra };
}

describe('runner', () => {
  it('runs unsatisfied steps in order, skips satisfied ones, and asks once before the first change', async () => {
    const events: MeshEvent[] = [];
    const ran: string[] = [];
    let confirmations = 0;
    const outcomes = await runSteps(
      [step('pre', false, ran, { readOnly: true }), step('a', true, ran), step('b', false, ran), step('c', false, ran)],
      fakeContext(events),
      { beforeFirstChange: async () => void confirmations++ },
    );
    assert.deepEqual(ran, ['pre', 'b', 'c']);
    assert.equal(confirmations, 1);
    assert.deepEqual(outcomes.map((o) => o.status), ['done', 'skipped', 'done', 'done']);
    const statuses = events.filter((e) => e.type === 'step').map((e) => `${(e as any).id}:${(e as any).status}`);
    assert.deepEqual(statuses, ['pre:start', 'pre:done', 'a:start', 'a:skipped', 'b:start', 'b:done', 'c:start', 'c:done']);
  });

  it('a dry run runs only read-only steps and never asks', async () => {
    const ran: string[] = [];
    const outcomes = await runSteps([step('pre', false, ran, { readOnly: true }), step('b', false, ran)], fakeContext([], { dryRun: true }), {
      beforeFirstChange: async () => assert.fail('no confirmation in a dry run'),
    });
    assert.deepEqual(ran, ['pre']);
    assert.deepEqual(outcomes.map((o) => o.status), ['done', 'planned']);
  });

  it('stops at the first failure, reports it, and runs nothing after it', async () => {
    const events: MeshEvent[] = [];
    const ran: string[] = [];
    const failing = step('b', false, ran, { run: async () => { throw new PreflightError('no', { hint: 'fix it' }); } });
    await assert.rejects(runSteps([step('a', false, ran), failing, step('c', false, ran)], fakeContext(events)), PreflightError);
    assert.deepEqual(ran, ['a']);
    const failed = events.find((e) => e.type === 'step' && e.status === 'failed') as any;
    assert.equal(failed.id, 'b');
    assert.equal(failed.message, 'no — fix it');
  });
});

describe('runner: steps that name what they need (after)', () => {
  /** A step whose run waits until release() is called, recording when it started and ended. */
  function gated(id: string, log: string[], extra: Partial<Step> = {}) {
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const s: Step = {
      id,
      title: id,
      check: async () => ({ satisfied: false }),
      run: async (ctx) => {
        log.push(`${id}:run`);
        await Promise.race([gate, new Promise((_, reject) => ctx.signal.addEventListener('abort', () => reject(new Error(`${id} aborted`)), { once: true }))]);
        log.push(`${id}:end`);
      },
      ...extra,
    };
    return { step: s, release: () => release() };
  }
  const until = async (cond: () => boolean) => {
    while (!cond()) await new Promise((r) => setImmediate(r));
  };

  it('starts once what it names has finished, beside the steps in between; later steps wait for both', async () => {
    const log: string[] = [];
    const install = gated('install', log);
    const addons = gated('addons', log, { after: ['download'] });
    const run = runSteps([step('download', false, []), install.step, addons.step, step('app', false, [], { run: async () => void log.push('app:run') })], fakeContext([]));
    await until(() => log.includes('install:run') && log.includes('addons:run'));
    addons.release();
    await until(() => log.includes('addons:end'));
    assert.ok(!log.includes('app:run'), 'app started before install finished');
    install.release();
    const outcomes = await run;
    assert.deepEqual(log, ['install:run', 'addons:run', 'addons:end', 'install:end', 'app:run']);
    assert.deepEqual(outcomes.map((o) => `${o.id}:${o.status}`), ['download:done', 'install:done', 'addons:done', 'app:done']);
  });

  it('asks once, before the first change, though two changing steps start together', async () => {
    const log: string[] = [];
    let confirmations = 0;
    const install = gated('install', log);
    const addons = gated('addons', log, { after: [] });
    const run = runSteps([install.step, addons.step], fakeContext([]), { beforeFirstChange: async () => void confirmations++ });
    await until(() => log.length === 2);
    install.release();
    addons.release();
    await run;
    assert.equal(confirmations, 1);
  });

  it('a step waiting for the confirmation does not run when a step beside it fails meanwhile', async () => {
    const events: MeshEvent[] = [];
    const ran: string[] = [];
    let answer!: () => void;
    const answered = new Promise<void>((r) => (answer = r));
    const failing = step('label', false, ran, { readOnly: true, after: [], check: async () => { throw new PreflightError('forbidden'); } });
    const run = runSteps([step('namespace', false, ran), failing], fakeContext(events), { beforeFirstChange: () => answered });
    await until(() => events.some((e) => e.type === 'step' && e.id === 'label' && e.status === 'failed'));
    answer();
    await assert.rejects(run, (e: unknown) => e instanceof PreflightError && e.message === 'forbidden');
    assert.deepEqual(ran, [], 'namespace ran after the question although label had failed');
    const ends = events.filter((e) => e.type === 'step' && e.status !== 'start').map((e) => `${(e as any).id}:${(e as any).message}`);
    assert.deepEqual(ends, ['label:forbidden', 'namespace:stopped: label failed']);
  });

  it('a failure stops the step running beside it, starts nothing more, and is the error thrown', async () => {
    const events: MeshEvent[] = [];
    const log: string[] = [];
    const addons = gated('addons', log, { after: [] });
    const install = step('install', false, [], {
      run: async () => {
        await until(() => log.includes('addons:run'));
        throw new PreflightError('istioctl failed', { hint: 'see its output' });
      },
    });
    const later: string[] = [];
    await assert.rejects(runSteps([install, addons.step, step('dashboards', false, later)], fakeContext(events)), (e: unknown) => e instanceof PreflightError && e.message === 'istioctl failed');
    assert.deepEqual(later, []);
    const ends = events.filter((e) => e.type === 'step' && e.status !== 'start').map((e) => `${(e as any).id}:${(e as any).status}:${(e as any).message}`);
    assert.deepEqual(ends, ['install:failed:istioctl failed — see its output', 'addons:failed:stopped: install failed']);
  });
});

describe('plain output of steps that run side by side', () => {
  it('names the step on each log line while more than one runs', async () => {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let err = '';
    stderr.on('data', (c) => (err += c));
    const r = await createRenderer('plain', { verbose: false, secrets: new Set(), streams: { stdout, stderr } });
    r.emit({ type: 'step', id: 'istio-install', title: 'Install Istio', status: 'start' });
    r.emit({ type: 'log', step: 'istio-install', level: 'info', message: 'alone' });
    r.emit({ type: 'step', id: 'addons', title: 'Apply addons', status: 'start' });
    r.emit({ type: 'log', step: 'addons', level: 'warn', message: 'beside' });
    r.emit({ type: 'step', id: 'addons', title: 'Apply addons', status: 'done' });
    r.emit({ type: 'log', step: 'istio-install', level: 'info', message: 'alone again' });
    r.close();
    assert.deepEqual(err.trim().split('\n'), ['… Install Istio', '  alone', '… Apply addons', '  [addons] warning: beside', '✔ Apply addons', '  alone again']);
  });
});

describe('errors', () => {
  it('map to the documented exit codes and one line', () => {
    assert.equal(exitCodeOf(new UsageError('x')), 2);
    assert.equal(exitCodeOf(new PreflightError('x')), 3);
    assert.equal(exitCodeOf(new Error('boom')), ExitCode.unexpected);
    assert.equal(oneLine(new UsageError('bad flag', { hint: 'use --good' })), 'bad flag — use --good');
    assert.equal(oneLine(new Error('first\nsecond')), 'unexpected error: first — re-run with --verbose for details');
  });
});

describe('renderer', () => {
  async function render(mode: 'json' | 'plain', secrets: string[], emit: (r: Awaited<ReturnType<typeof createRenderer>>) => void, verbose = false) {
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (c) => (out += c));
    stderr.on('data', (c) => (err += c));
    const r = await createRenderer(mode, { verbose, secrets: new Set(secrets), streams: { stdout, stderr } });
    emit(r);
    r.close();
    return { out, err };
  }

  it('--json writes only NDJSON to stdout, human text to stderr, secrets masked', async () => {
    const { out, err } = await render('json', ['s3cr3t-token'], (r) => {
      r.emit({ type: 'step', id: 'a', title: 'A', status: 'start' });
      r.emit({ type: 'log', step: 'a', level: 'info', message: 'using token s3cr3t-token' });
      r.print('human text');
      r.result(true, { urls: {} });
    });
    const lines = out.trim().split('\n').map((l) => JSON.parse(l));
    assert.deepEqual(lines.map((l) => l.type), ['step', 'log', 'result']);
    assert.equal(lines[1].message, 'using token ***');
    assert.equal(err, 'human text\n');
  });

  it('--json keeps the result the last line on stdout: a --verbose trace after it (releasing the lock) goes to stderr', async () => {
    const { out, err } = await render(
      'json',
      ['s3cr3t'],
      (r) => {
        r.emit({ type: 'log', level: 'debug', message: 'GET /api/v1/namespaces/default 200 3ms' });
        r.result(false, { exitCode: 3, error: 'no' });
        r.emit({ type: 'log', level: 'debug', message: 'DELETE /apis/coordination.k8s.io/v1/namespaces/default/leases/meshdemo?token=s3cr3t 200 2ms' });
      },
      true,
    );
    assert.deepEqual(out.trim().split('\n').map((l) => JSON.parse(l).type), ['log', 'result']);
    assert.match(err, /DELETE \/apis\/coordination\.k8s\.io\/v1\/namespaces\/default\/leases\/meshdemo\?token=\*\*\* 200 2ms/);
  });

  it('--json: up --traffic\'s traffic events follow up\'s result on stdout, its log lines do not', async () => {
    const { out, err } = await render('json', [], (r) => {
      r.result(true, { urls: {} });
      r.emit({ type: 'log', level: 'warn', message: 'the lock is released' });
      r.emit({ type: 'traffic', phase: 'summary', sent: 3 });
    });
    assert.deepEqual(out.trim().split('\n').map((l) => JSON.parse(l).type), ['result', 'traffic']);
    assert.match(err, /the lock is released/);
  });

  it('plain mode writes step lines to stderr and results to stdout', async () => {
    const { out, err } = await render('plain', [], (r) => {
      r.emit({ type: 'step', id: 'a', title: 'Apply', status: 'start' });
      r.emit({ type: 'step', id: 'a', title: 'Apply', status: 'done', durationMs: 2500, message: 'ok' });
      r.emit({ type: 'log', level: 'debug', message: 'hidden without --verbose' });
      r.print('http://x');
    });
    assert.equal(err, '… Apply\n✔ Apply — ok (2.5s)\n');
    assert.equal(out, 'http://x\n');
  });

  it('chooses plain output without a TTY or with CI set, NDJSON with --json', () => {
    assert.equal(outputMode({ json: false, isTTY: true, env: {} }), 'tty');
    assert.equal(outputMode({ json: false, isTTY: true, env: { CI: 'true' } }), 'plain');
    assert.equal(outputMode({ json: false, isTTY: false, env: {} }), 'plain');
    assert.equal(outputMode({ json: true, isTTY: true, env: {} }), 'json');
  });
});

describe('options and settings', () => {
  it('parses durations and refuses nonsense', () => {
    assert.equal(parseDuration('90s'), 90_000);
    assert.equal(parseDuration('10m'), 600_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('45'), 45_000);
    for (const bad of ['5x', '', 'm', '10m5', '0s', '0', '0.0', '0m0s', '0.0001']) assert.throws(() => parseDuration(bad), UsageError, bad);
    assert.throws(() => parseDuration('0'), /^UsageError: --timeout must be greater than zero$/);
    assert.equal(parseDuration('0', 'MESHDEMO_LOCK_WAIT', { allowZero: true }), 0);
    assert.equal(parseDuration('0s', 'MESHDEMO_LOCK_WAIT', { allowZero: true }), 0);
  });

  it('validates namespaces', () => {
    assert.equal(validateNamespace('shop-1'), 'shop-1');
    for (const bad of ['Shop', '-x', 'istio-system', 'a'.repeat(64)]) assert.throws(() => validateNamespace(bad), UsageError, bad);
  });

  it('parses node ports, images and registries', () => {
    assert.deepEqual(parseNodePorts(['kiali=31001,grafana=31002', 'tracing=31004']), { kiali: 31001, grafana: 31002, tracing: 31004 });
    assert.throws(() => parseNodePorts(['kiali=31001,grafana=31001']), /both kiali and grafana/);
    assert.throws(() => parseNodePorts(['bogus=31001']), /unknown dashboard "bogus"/);
    assert.throws(() => parseNodePorts(['kiali=99999']), /not a port number/);
    assert.deepEqual(parseImages(['micro-api=reg:5000/a/micro-api:1']), { 'micro-api': 'reg:5000/a/micro-api:1' });
    assert.throws(() => parseImages(['micro-web=x:1']), /not SERVICE=IMAGE/);
    assert.equal(parseRegistry('10.211.55.2:8080/micro-service/'), '10.211.55.2:8080/micro-service');
    for (const bad of ['http://reg/x', 'Reg/X', 'reg:port/x', '']) assert.throws(() => parseRegistry(bad), UsageError, bad);
  });

  it('refuses conflicting up flags', () => {
    assert.throws(() => parseUpSettings({ app: false, registry: 'r:5000/x' }), /--no-app conflicts/);
    assert.throws(() => parseUpSettings({ skipBuild: true, image: ['micro-api=a:1'] }), /--skip-build needs an --image for micro-order, micro-pay/);
    assert.throws(() => parseUpSettings({ istioVersion: '1.9.0' }), /--istio-version 1\.9\.0 is not supported/);
    assert.throws(() => parseUpSettings({ addons: 'jaeger,zipkin' }), /jaeger and zipkin/);
    const s = parseUpSettings({});
    assert.equal(s.istioVersion, '1.8.4');
    assert.deepEqual(s.addons, ['prometheus', 'grafana', 'jaeger', 'kiali']);
  });
});

describe('preflight rules', () => {
  it('gives the Kubernetes version verdict', () => {
    const v = (minor: string) => versionVerdict({ major: '1', minor, gitVersion: `v1.${minor.replace('+', '')}.0` }).verdict;
    assert.deepEqual(['15', '16', '19', '20', '21+', '22', '28'].map(v), ['refused', 'supported', 'supported', 'untested', 'untested', 'refused', 'refused']);
    assert.match(versionVerdict({ major: '1', minor: '22', gitVersion: 'v1.22.3' }).message, /kindest\/node:v1\.19\.16/);
  });

  it('checks what up does: CRDs, webhooks, cluster RBAC, namespaces, services, deployments', () => {
    const perms = requiredPermissions('shop').map((p) => `${p.verb} ${p.resource} ${p.namespace ?? '*'}`);
    for (const p of ['create namespaces *', 'patch namespaces *', 'create customresourcedefinitions *', 'create clusterroles *', 'create mutatingwebhookconfigurations *', 'patch services istio-system', 'create deployments shop']) {
      assert.ok(perms.includes(p), p);
    }
  });

  it('names the release asset for each platform', () => {
    assert.equal(assetName('1.8.4', 'linux', 'x64').name, 'istio-1.8.4-linux-amd64.tar.gz');
    assert.equal(assetName('1.8.4', 'linux', 'arm64').name, 'istio-1.8.4-linux-arm64.tar.gz');
    assert.equal(assetName('1.8.4', 'linux', 'arm').name, 'istio-1.8.4-linux-armv7.tar.gz');
    assert.match(assetName('1.8.4', 'darwin', 'arm64').note ?? '', /Rosetta/);
    assert.throws(() => assetName('1.8.4', 'win32', 'x64'), /istio-1\.8\.4-win\.zip/);
  });
});

describe('kubeconfig resolution', () => {
  it('follows kubectl precedence: flag, KUBECONFIG, ~/.kube/config', () => {
    assert.deepEqual(kubeconfigPaths('/a', { KUBECONFIG: '/b' }).paths, ['/a']);
    assert.deepEqual(kubeconfigPaths(undefined, { KUBECONFIG: `/b${path.delimiter}/c` }).paths, ['/b', '/c']);
    assert.deepEqual(kubeconfigPaths(undefined, { HOME: '/home/u' }).paths, ['/home/u/.kube/config']);
  });

  it('merges a KUBECONFIG list, collects credentials as secrets, and never falls back to localhost', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-kc-'));
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    fs.writeFileSync(a, 'apiVersion: v1\nkind: Config\nclusters: [{name: c1, cluster: {server: "https://127.0.0.1:6443"}}]\nusers: [{name: u1, user: {token: tok-aaaa}}]\ncontexts: [{name: one, context: {cluster: c1, user: u1}}]\ncurrent-context: one\n');
    fs.writeFileSync(b, 'apiVersion: v1\nkind: Config\nclusters: [{name: c2, cluster: {server: "https://127.0.0.2:6443"}}]\nusers: [{name: u2, user: {username: admin, password: pw-bbbb}}]\ncontexts: [{name: two, context: {cluster: c2, user: u2}}]\n');
    const saved = process.env.KUBECONFIG;
    process.env.KUBECONFIG = `${a}${path.delimiter}${b}`;
    try {
      const one = await loadKubeconfig({});
      assert.equal(one.contextName, 'one');
      assert.equal(one.server, 'https://127.0.0.1:6443');
      assert.deepEqual(one.secrets.sort(), ['pw-bbbb', 'tok-aaaa']);
      const two = await loadKubeconfig({ context: 'two' });
      assert.equal(two.server, 'https://127.0.0.2:6443');
      process.env.KUBECONFIG = path.join(dir, 'missing');
      await assert.rejects(loadKubeconfig({}), (e: unknown) => e instanceof UsageError && /no kubeconfig found/.test(e.message));
    } finally {
      if (saved === undefined) delete process.env.KUBECONFIG;
      else process.env.KUBECONFIG = saved;
      fs.rmSync(dir, { recursive: true });
    }
  });
});
