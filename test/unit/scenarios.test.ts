// The scenario objects meshdemo renders (field by field, Istio 1.8's API), the scenario commands' bad input, the
// share checks, and the routing stand-in's semantics (test/support/mesh-router.ts) against real HTTP endpoints on
// loopback — the VirtualServices and DestinationRules it reads are served by a fake `get` here (the integration
// test, test/integration/scenarios.test.ts, has it read the real API server).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { once } from 'node:events';
import type net from 'node:net';
import { renderDestinationRule, renderVirtualService, renderPeerAuthentication, describeScenarios, baseGatewayVirtualService, type ScenarioState } from '../../src/demo/scenarios.js';
import { parseChaosArgs, delayedShare, timeoutChecks } from '../../src/demo/chaos.js';
import { shareCheck, versionCounts } from '../../src/demo/scenario-verify.js';
import { versionShares } from '../../src/demo/traffic.js';
import { UsageError } from '../../src/core/errors.js';
import { startMeshRouter, type MeshRouter } from '../support/mesh-router.js';
import { runMeshdemo, errorLines } from '../support/cli.js';

describe('scenario objects', () => {
  it('a canary with a header route: the header rule first (to v2), then the weighted default', () => {
    const vs = renderVirtualService('default', 'micro-order', { canary: { weight: 20, header: { name: 'end-user', value: 'jason' } } })!;
    assert.equal(vs.metadata.name, 'micro-order');
    assert.deepEqual(vs.spec.hosts, ['micro-order']);
    assert.deepEqual(vs.spec.http, [
      { name: 'canary-header', match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: 'micro-order', subset: 'v2', port: { number: 80 } } }] },
      { name: 'default', route: [{ destination: { host: 'micro-order', subset: 'v1', port: { number: 80 } }, weight: 80 }, { destination: { host: 'micro-order', subset: 'v2', port: { number: 80 } }, weight: 20 }] },
    ]);
  });

  it('micro-api is routed by the gateway\'s VirtualService, which keeps its uri match; with nothing active it is up\'s again', () => {
    const vs = renderVirtualService('default', 'micro-api', { chaos: { timeout: '1s', retries: { attempts: 3 } } })!;
    assert.equal(vs.metadata.name, 'micro-gateway');
    assert.deepEqual(vs.spec.gateways, ['micro-gateway']);
    assert.deepEqual(vs.spec.http[0], { name: 'default', match: [{ uri: { exact: '/api/order/create' } }], route: [{ destination: { host: 'micro-api', port: { number: 19090 } } }], timeout: '1s', retries: { attempts: 3 } });
    assert.deepEqual(renderVirtualService('default', 'micro-api', undefined), baseGatewayVirtualService('default'));
    assert.equal(renderVirtualService('default', 'micro-order', {}), undefined);
  });

  it('promote: one route to v2, and the DestinationRule keeps subset v2 only; the breaker is a trafficPolicy', () => {
    const vs = renderVirtualService('default', 'micro-order', { canary: { weight: 100, promoted: true } })!;
    assert.deepEqual(vs.spec.http[0].route, [{ destination: { host: 'micro-order', subset: 'v2', port: { number: 80 } } }]);
    assert.deepEqual(renderDestinationRule('default', 'micro-order', ['v2'], false)!.spec, { host: 'micro-order', subsets: [{ name: 'v2', labels: { version: 'v2' } }] });
    assert.equal(renderDestinationRule('default', 'micro-order', [], false), undefined);
    const breaker = renderDestinationRule('default', 'micro-pay', [], true)!;
    assert.deepEqual(breaker.spec.trafficPolicy.outlierDetection.consecutive5xxErrors, 1);
    assert.deepEqual(breaker.spec.trafficPolicy.connectionPool.tcp, { maxConnections: 1 });
    assert.deepEqual(renderPeerAuthentication('ns', 'STRICT').spec, { mtls: { mode: 'STRICT' } });
    assert.equal(renderPeerAuthentication('ns', 'STRICT').metadata.labels!['app.kubernetes.io/managed-by'], 'meshdemo');
  });

  it('status lines name each active scenario', () => {
    assert.deepEqual(describeScenarios({ services: { 'micro-order': { canary: { weight: 20 }, chaos: { abort: { httpStatus: 500, percent: 50 } } } }, mtls: 'STRICT' }), [
      'canary micro-order v1=80% v2=20%',
      'chaos micro-order abort 500 for 50%',
      'mtls strict',
    ]);
  });

  it('chaos arguments: each bad value is a UsageError naming the fix', () => {
    assert.deepEqual(parseChaosArgs('delay', 'micro-order', '3s', { percent: '50' }).change, { delay: { fixedDelay: '3s', percent: 50 } });
    assert.deepEqual(parseChaosArgs('breaker', undefined, undefined, {}).services, ['micro-pay']);
    assert.deepEqual(parseChaosArgs('clear', undefined, undefined, {}).services, ['micro-api', 'micro-order', 'micro-pay']);
    for (const [args, says] of [
      [['delay', 'micro-order', '3 seconds', {}], /"3 seconds" is not a duration/],
      [['delay', 'micro-order', undefined, {}], /chaos delay needs a duration/],
      [['abort', 'micro-order', '700', {}], /HTTP status from 200 to 599, not "700"/],
      [['abort', 'micro-order', '500', { percent: '0' }], /--percent "0" is not a percentage/],
      [['timeout', 'micro-order', '1s', { percent: '5' }], /--percent goes with delay or abort/],
      [['breaker', 'micro-order', undefined, {}], /on micro-pay, not micro-order/],
      [['delay', 'micro-bogus', '1s', {}], /needs a service: micro-api, micro-order, micro-pay, not "micro-bogus"/],
    ] as const) {
      assert.throws(() => parseChaosArgs(args[0], args[1], args[2], args[3] as Record<string, unknown>), (err: unknown) => err instanceof UsageError && says.test(err.message) && Boolean(err.hint));
    }
  });

  it('the share per version comes from `<pod>/<version>` in the served-by headers; one version alone is no canary line', () => {
    const served = { apiServedBy: { 'micro-api-x/v1': 10 }, servedBy: { 'micro-order-v1-a/v1': 30, 'micro-order-v1-b/v1': 50, 'micro-order-v2-c/v2': 20 }, payServedBy: { 'micro-pay-v1-a/v1': 100 } };
    assert.deepEqual(versionCounts(served, 'micro-order'), { v1: 80, v2: 20 });
    assert.equal(versionShares(served), 'micro-order v1 80.0% v2 20.0%');
    assert.equal(versionShares({ ...served, servedBy: { 'a/v1': 3 } }), undefined);
  });

  it('share checks: within 5 points passes, beyond fails; the delayed share discounts requests slow without the delay', () => {
    assert.equal(shareCheck('v2', 20, 240, 1000).ok, true);
    assert.equal(shareCheck('v2', 20, 260, 1000).ok, false);
    assert.equal(shareCheck('v2', 20, 0, 0).ok, false);
    // 10% are that slow anyway: 55% slow with the delay means 50% delayed
    assert.equal(delayedShare('1s', 50, { slower: 10, sent: 100 }, { slower: 550, sent: 1000 }).measuredPercent, 50);
  });

  it('timeout checks: one order answered later than the timeout fails; with a longer delay behind the route, the 504 share is checked against it', () => {
    const delayed: ScenarioState = { services: { 'micro-pay': { chaos: { delay: { fixedDelay: '2s', percent: 50 } } } } };
    const cut = { slower: 0, sent: 100, errorKinds: { 'HTTP 504': 2 }, errorMessages: { 'micro-order answered HTTP 504': 48 } };
    assert.deepEqual(timeoutChecks('1s', 1000, 'micro-order', delayed, cut).map((c) => [c.label, c.ok]), [['answered within 1s', true], ['timed out (1s)', true]]);
    const late = { slower: 1, sent: 100, errorKinds: {}, errorMessages: {} };
    assert.deepEqual(timeoutChecks('1s', 1000, 'micro-order', delayed, late).map((c) => [c.label, c.ok]), [['answered within 1s', false], ['timed out (1s)', false]]);
    // a delay shorter than the timeout is not cut: only the first check applies
    assert.deepEqual(timeoutChecks('3s', 3000, 'micro-order', delayed, late).map((c) => c.label), ['answered within 3s']);
  });
});

describe('scenario commands: bad input (exit 2, one line, before any cluster is read)', () => {
  for (const [args, says] of [
    [['canary', 'micro-pay', '--weight', 'v2=20'], /^error: canary releases micro-api or micro-order, not "micro-pay" — /],
    [['canary', 'micro-order', '--weight', 'v2=120'], /^error: --weight "v2=120" is not v2=<0-100> — /],
    [['canary', 'micro-order', '--weight', 'v2=20', '--promote'], /^error: --weight, --promote and --reset exclude each other — /],
    [['canary', 'micro-order', '--header', 'end-user=jason'], /^error: --header goes with --weight — /],
    [['canary', 'micro-order'], /^error: canary needs --weight v2=N, --promote, --reset or --verify — /],
    [['canary', 'micro-order', '--weight', 'v2=20', '--requests', '5'], /^error: --requests "5" is not a whole number from 20 to 100000 — /],
    [['mtls', 'off'], /^error: unknown mtls mode "off" — choose one of strict, permissive, clear$/],
    [['chaos', 'explode', 'micro-order'], /^error: unknown chaos "explode" — choose one of delay, abort, timeout, retries, breaker, clear$/],
    [['open', 'grafana', '--trace', '4bf92f3577b34da6a3ce929d0e0e4736'], /^error: --trace opens a trace in Jaeger, not in grafana — /],
  ] as const) {
    it(args.join(' '), async () => {
      const r = await runMeshdemo(['--kubeconfig', '/nonexistent/kubeconfig', ...args]);
      assert.equal(r.code, 2, r.stderr);
      assert.match(errorLines(r.stderr)[0] ?? r.stderr, says);
    });
  }
});

describe('routing stand-in (Envoy per Istio 1.8 semantics)', () => {
  const servers: http.Server[] = [];
  const urls: Record<string, string> = {};
  let calls: Record<string, number> = {};
  let objects: { virtualservices: any[]; destinationrules: any[] } = { virtualservices: [], destinationrules: [] };
  let router: MeshRouter;

  /** A deterministic stream for Envoy's per-request draws. */
  const seeded = (seed: number) => () => ((seed = (seed * 1103515245 + 12345) % 2147483648) / 2147483648);

  before(async () => {
    for (const [name, behaviour] of [['v1', 'ok'], ['v2', 'ok'], ['slow', 'slow'], ['flaky', 'flaky']] as const) {
      const server = http.createServer((_req, res) => {
        calls[name] = (calls[name] ?? 0) + 1;
        const send = (status: number) => res.writeHead(status, { 'x-served-by': `pod/${name}` }).end(name);
        if (behaviour === 'slow') setTimeout(() => send(200), 300);
        else if (behaviour === 'flaky' && calls[name] % 2 === 1) send(503);
        else send(200);
      });
      server.listen(0, '127.0.0.1');
      await once(server, 'listening');
      servers.push(server);
      urls[name] = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`;
    }
    router = await startMeshRouter({
      get: async (p) => ({ status: 200, body: { items: p.endsWith('/virtualservices') ? objects.virtualservices : objects.destinationrules } }),
      namespace: 'default',
      host: 'svc',
      endpoints: [
        { labels: { app: 'svc', version: 'v1' }, url: urls.v1 },
        { labels: { app: 'svc', version: 'v2' }, url: urls.v2 },
        { labels: { app: 'slow', version: 'v1' }, url: urls.slow },
        { labels: { app: 'flaky', version: 'v1' }, url: urls.flaky },
      ],
      random: seeded(7),
    });
  });
  after(async () => {
    await router.close();
    for (const s of servers) s.close();
  });

  const vs = (http: any[]) => ({ metadata: { name: 'svc', creationTimestamp: '2021-01-01T00:00:00Z' }, spec: { hosts: ['svc'], http } });
  const subsets = { spec: { host: 'svc', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] } };
  const get = async (headers: Record<string, string> = {}) => {
    const res = await fetch(`${router.url}/x`, { headers });
    return { status: res.status, body: await res.text() };
  };

  it('no VirtualService: the Service\'s endpoints in turn', async () => {
    objects = { virtualservices: [], destinationrules: [] };
    await router.synced();
    const got = [await get(), await get()].map((r) => r.body).sort();
    assert.deepEqual(got, ['v1', 'v2']);
  });

  it('weights: drawn per request, 80/20 over 1000 requests within 5 points; a header match wins over the weights', async () => {
    objects = { virtualservices: [vs([
      { match: [{ headers: { 'end-user': { exact: 'jason' } } }], route: [{ destination: { host: 'svc', subset: 'v2' } }] },
      { route: [{ destination: { host: 'svc', subset: 'v1' }, weight: 80 }, { destination: { host: 'svc', subset: 'v2' }, weight: 20 }] },
    ])], destinationrules: [subsets] };
    await router.synced();
    let v2 = 0;
    for (let i = 0; i < 1000; i++) if ((await get()).body === 'v2') v2++;
    assert.ok(Math.abs(v2 / 10 - 20) <= 5, `v2 ${v2 / 10}%`);
    for (let i = 0; i < 5; i++) assert.equal((await get({ 'end-user': 'jason' })).body, 'v2');
  });

  it('an unknown subset is 503 NR; no route matching is 404 NR', async () => {
    objects = { virtualservices: [vs([{ match: [{ uri: { exact: '/x' } }], route: [{ destination: { host: 'svc', subset: 'v3' } }] }])], destinationrules: [subsets] };
    await router.synced();
    assert.equal((await get()).status, 503);
    assert.equal(router.log.at(-1)!.flags, 'NR');
    objects.virtualservices = [vs([{ match: [{ uri: { exact: '/y' } }], route: [{ destination: { host: 'svc' } }] }])];
    await router.synced();
    assert.equal((await get()).status, 404);
    assert.equal(router.log.at(-1)!.flags, 'NR');
  });

  it('fault: abort with its percentage (FI), delay before it (DI)', async () => {
    objects = { virtualservices: [vs([{ fault: { abort: { httpStatus: 500, percentage: { value: 50 } } }, route: [{ destination: { host: 'svc' } }] }])], destinationrules: [] };
    await router.synced();
    let aborted = 0;
    for (let i = 0; i < 400; i++) {
      const r = await get();
      if (r.status === 500) {
        assert.equal(r.body, 'fault filter abort');
        aborted++;
      }
    }
    assert.ok(Math.abs(aborted / 4 - 50) <= 8, `aborted ${aborted / 4}%`);
    objects.virtualservices = [vs([{ fault: { delay: { fixedDelay: '200ms' } }, route: [{ destination: { host: 'svc' } }] }])];
    await router.synced();
    const t0 = performance.now();
    assert.equal((await get()).status, 200);
    assert.ok(performance.now() - t0 >= 199);
    assert.equal(router.log.at(-1)!.flags, 'DI');
  });

  it('timeout: a slower upstream is a 504 UT; retries: a 503 is retried per retryOn', async () => {
    objects = { virtualservices: [vs([{ timeout: '100ms', route: [{ destination: { host: 'slow' } }] }])], destinationrules: [] };
    await router.synced();
    const r = await get();
    assert.deepEqual([r.status, r.body, router.log.at(-1)!.flags], [504, 'upstream request timeout', 'UT']);
    calls = {};
    objects.virtualservices = [vs([{ retries: { attempts: 3, retryOn: '5xx' }, route: [{ destination: { host: 'flaky' } }] }])];
    await router.synced();
    assert.equal((await get()).status, 200);
    assert.equal(router.log.at(-1)!.attempts, 2);
    // no retries field: Istio 1.8's default policy retries a 503 too (retriable-status-codes)
    calls = {};
    objects.virtualservices = [vs([{ route: [{ destination: { host: 'flaky' } }] }])];
    await router.synced();
    assert.equal((await get()).status, 200);
    // retries attempts 0: the 503 reaches the caller
    calls = {};
    objects.virtualservices = [vs([{ retries: { attempts: 0 }, route: [{ destination: { host: 'flaky' } }] }])];
    await router.synced();
    assert.equal((await get()).status, 503);
  });
});
