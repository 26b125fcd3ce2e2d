// `meshdemo traffic` against the demo chain running locally (test/support/local-services.ts): two micro-order
// instances behind a round-robin forwarder, as the sidecar balances them in the mesh. Real processes, loopback only.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { runMeshdemo } from '../support/cli.js';
import { freePorts, startLocalChain, type LocalChain } from '../support/local-services.js';
import { parseUpSettings } from '../../src/settings.js';
import { percentile } from '../../src/demo/traffic.js';
import { outputMode } from '../../src/ui/renderer.js';

const TRACING = 'http://127.0.0.1:16686';

describe('meshdemo traffic', { timeout: 120_000 }, () => {
  let chain: LocalChain;
  before(async () => {
    chain = await startLocalChain({ orderInstances: 2, payInstances: 2 });
  });
  after(async () => {
    await chain?.stop();
  });

  it('--requests 60 --concurrency 4: 60 sent, counts add up, both micro-order instances answered, trace link (NDJSON)', async () => {
    const r = await runMeshdemo(['traffic', '--url', chain.url, '--requests', '60', '--concurrency', '4', '--rate', '0', '--tracing-url', TRACING, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = r.events().at(-1);
    assert.equal(result.type, 'result');
    assert.equal(result.ok, true);
    const t = result.traffic;
    assert.equal(t.sent, 60);
    assert.equal(t.ok + t.errors, t.sent);
    assert.equal(t.ok, 60, JSON.stringify(t.errorKinds));
    assert.equal(t.interrupted, false);
    assert.equal(t.successRate, 1);
    assert.deepEqual(Object.keys(t.servedBy).sort(), [...chain.orderPods].map((p) => `${p}/v1`).sort());
    assert.equal(Object.values(t.servedBy as Record<string, number>).reduce((a, b) => a + b, 0), t.ok);
    // micro-pay-v1 has 2 replicas (upstream's micro-pay.yaml): the per-request gRPC balancing reaches both
    assert.deepEqual(Object.keys(t.payServedBy).sort(), [...chain.payPods].map((p) => `${p}/v1`).sort());
    assert.equal(Object.values(t.payServedBy as Record<string, number>).reduce((a, b) => a + b, 0), t.ok);
    // the forwarder saw exactly the requests traffic sent, spread over both instances
    assert.equal(chain.balancer.counts.reduce((a, b) => a + b, 0), 60);
    assert.ok(t.latencyMs.p50 <= t.latencyMs.p95 && t.latencyMs.p95 <= t.latencyMs.p99, JSON.stringify(t.latencyMs));
    assert.match(t.traceId, /^[0-9a-f]{32}$/);
    assert.equal(t.traceUrl, `${TRACING}/jaeger/trace/${t.traceId}`);
    chain.balancer.counts.fill(0);
  });

  it('prints the summary: counts, latency, each pod with its share, the trace and its Jaeger link', async () => {
    const r = await runMeshdemo(['traffic', '--url', chain.url, '--requests', '60', '--concurrency', '4', '--rate', '0', '--tracing-url', `${TRACING}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^done after \d+\.\ds: 60 sent, 60 ok, 0 failed — success rate 100\.0%$/m);
    assert.match(r.stdout, /^latency {5}p50 \d+ms {2}p95 \d+ms {2}p99 \d+ms$/m);
    assert.match(r.stdout, /^micro-order 2 pod\(s\) answered:$/m);
    let shares = 0;
    for (const pod of chain.orderPods) {
      const m = new RegExp(`^  ${pod}/v1\\s+(\\d+)\\s+(\\d+\\.\\d)%$`, 'm').exec(r.stdout);
      assert.ok(m, `${pod} in\n${r.stdout}`);
      shares += Number(m[1]);
    }
    assert.equal(shares, 60);
    assert.match(r.stdout, /^micro-pay {3}2 pod\(s\) answered:$/m);
    for (const pod of chain.payPods) assert.match(r.stdout, new RegExp(`^  ${pod}/v1\\s+\\d+\\s+\\d+\\.\\d%$`, 'm'));
    const trace = /^trace {7}([0-9a-f]{32}) \(the slowest successful request\)$/m.exec(r.stdout);
    assert.ok(trace, r.stdout);
    assert.match(r.stdout, new RegExp(`^jaeger {6}${TRACING}/jaeger/trace/${trace[1]}$`, 'm'));
  });

  it('Ctrl-C mid-run stops cleanly: exit 130 and the summary, counts adding up', async () => {
    let progressed: () => void;
    const sawProgress = new Promise<void>((r) => (progressed = r));
    let child: import('node:child_process').ChildProcess | undefined;
    const run = runMeshdemo(['traffic', '--url', chain.url, '--rate', '20', '--concurrency', '4', '--tracing-url', TRACING, '--json'], {
      onSpawn: (c) => (child = c),
      onStdout: (chunk) => {
        if (/"type":"traffic","phase":"progress","sent":[1-9]/.test(chunk)) progressed();
      },
    });
    await sawProgress;
    child!.kill('SIGINT');
    const r = await run;
    assert.equal(r.code, 130, r.stderr);
    const events = r.events();
    const summary = events.find((e) => e.type === 'traffic' && e.phase === 'summary');
    assert.ok(summary, r.stdout);
    assert.equal(summary.interrupted, true);
    assert.ok(summary.sent > 0);
    assert.equal(summary.ok + summary.errors, summary.sent);
    assert.equal(Object.values(summary.servedBy as Record<string, number>).reduce((a, b) => a + b, 0), summary.ok);
    assert.equal(events.at(-1).exitCode, 130);
    assert.match(r.stderr, /^stopped after \d+\.\ds: \d+ sent/m);
    assert.match(r.stderr, /^error: traffic stopped by Ctrl-C$/m);
  });

  it('--duration with --rate bounds the count: nothing due after the duration is sent', async () => {
    const r = await runMeshdemo(['traffic', '--url', chain.url, '--duration', '1s', '--rate', '5', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const t = r.events().at(-1).traffic;
    assert.equal(t.interrupted, false);
    assert.ok(t.sent >= 1 && t.sent <= 5, `at 5/s for 1s at most 5 are due, sent ${t.sent}`);
    assert.equal(t.ok + t.errors, t.sent);
  });

  it('verify prints the trace micro-api returned and its Jaeger link', async () => {
    const r = await runMeshdemo(['verify', '--url', chain.url, '--count', '4', '--tracing-url', TRACING, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const result = r.events().at(-1);
    assert.equal(result.ok, 4);
    assert.match(result.traceId, /^[0-9a-f]{32}$/);
    assert.equal(result.traceUrl, `${TRACING}/jaeger/trace/${result.traceId}`);
    assert.deepEqual(Object.keys(result.servedBy).sort(), chain.orderPods.map((p) => `${p}/v1`).sort());
    assert.match(r.stderr, new RegExp(`4/4 orders succeeded, .*; trace ${TRACING}/jaeger/trace/${result.traceId}$`, 'm'));
  });

  it('exit 6 when no request gets through, and exit 2 for bad numbers', async () => {
    const [closed] = await freePorts(1);
    const r = await runMeshdemo(['traffic', '--url', `http://127.0.0.1:${closed}/api/order/create`, '--requests', '3']);
    assert.equal(r.code, 6, r.stderr);
    assert.match(r.stderr, /^error: no request succeeded through http:\/\/127\.0\.0\.1:\d+\/api\/order\/create — check meshdemo status/m);
    assert.match(r.stderr, /ECONNREFUSED ×3/);
    for (const [args, says] of [
      [['--requests', '0'], /--requests "0" is not a whole number from 1 to/],
      [['--concurrency', 'many'], /--concurrency "many" is not a whole number/],
      [['--rate', '-1'], /--rate "-1" is not a number of requests per second/],
      [['--duration', 'soon'], /--duration "soon" is not a duration/],
    ] as const) {
      const bad = await runMeshdemo(['traffic', '--url', chain.url, ...args]);
      assert.equal(bad.code, 2, bad.stderr);
      assert.match(bad.stderr, says);
      assert.equal(bad.stderr.trim().split('\n').length, 1, bad.stderr);
    }
  });

  it('up --traffic <duration> is parsed like --duration, and refused where up deploys no app', () => {
    assert.equal(parseUpSettings({ traffic: '5m' }).trafficMs, 300_000);
    assert.equal(parseUpSettings({}).trafficMs, undefined);
    assert.throws(() => parseUpSettings({ traffic: 'later' }), /--traffic "later" is not a duration/);
    assert.throws(() => parseUpSettings({ traffic: '1m', app: false }), /--traffic sends orders to the demo app, which --no-app leaves out/);
    assert.throws(() => parseUpSettings({ traffic: '1m', render: true }), /which --render does not deploy/);
  });

  it('percentiles are the nearest rank', () => {
    const values = Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(values, 50), 50);
    assert.equal(percentile(values, 95), 95);
    assert.equal(percentile(values, 99), 99);
    assert.equal(percentile([7], 99), 7);
    assert.equal(percentile([], 50), undefined);
  });

  it('a terminal that reports 0 columns gets plain lines (the live line and every step), not spinners', () => {
    assert.equal(outputMode({ json: false, isTTY: true, columns: 0, env: {} }), 'plain');
    assert.equal(outputMode({ json: false, isTTY: true, columns: 80, env: {} }), 'tty');
  });
});
