// Runs the three demo services (templates/services/*) as real local processes, each from the build context
// meshdemo's image builder prepares (src/images/context.ts: the image's /app, laid out like templates/services):
//   <ctx>/Dockerfile, <ctx>/<service>/server.mjs, <ctx>/common/*.mjs,
//   <ctx>/paycore.proto and <ctx>/node_modules (micro-order and micro-pay only).
// test/unit/services-local.test.ts runs them in place, as `npm run services` does.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { contextDir } from '../support/build-context.js';

// dist/test/unit/services.test.js -> repository root
const ROOT = fileURLToPath(new URL('../../../', import.meta.url));
const TEMPLATES = path.join(ROOT, 'templates', 'services');

type ServiceName = 'micro-api' | 'micro-order' | 'micro-pay';
type Json = any;

const HOSTNAME = os.hostname();
const TEST_TIMEOUT = 30_000;

// ---------------------------------------------------------------------------
// helpers

let workDir = '';
const contexts = new Map<ServiceName, string>();
const running = new Set<ChildProcess>();

/** The image's /app as meshdemo builds it; returns the service's working directory (/app/<service>). */
async function buildContext(svc: ServiceName): Promise<string> {
  const { dir } = await contextDir(svc, 'node:22-alpine', workDir);
  // micro-api must run without node_modules and without the proto
  assert.equal(existsSync(path.join(dir, 'node_modules')), svc !== 'micro-api', `${svc} context node_modules`);
  assert.equal(existsSync(path.join(dir, 'paycore.proto')), svc !== 'micro-api', `${svc} context paycore.proto`);
  assert.ok(existsSync(path.join(dir, 'Dockerfile')), `${svc} context has its Dockerfile at the root`);
  return path.join(dir, svc);
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  srv.listen(0, '127.0.0.1');
  await once(srv, 'listening');
  const { port } = srv.address() as net.AddressInfo;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitFor(what: string, check: () => boolean | Promise<boolean>, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

interface Reply {
  status: number;
  headers: http.IncomingHttpHeaders;
  text: string;
  json: Json;
}

function request(
  url: string,
  opts: { method?: string; headers?: Record<string, string>; body?: string } = {},
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: opts.method ?? 'GET', headers: opts.headers, agent: false }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        let json: Json = undefined;
        try {
          json = JSON.parse(text);
        } catch {
          // not JSON
        }
        resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json });
      });
    });
    req.on('error', reject);
    req.setTimeout(10_000, () => req.destroy(new Error(`request to ${url} timed out`)));
    req.end(opts.body);
  });
}

const postJson = (url: string, body: unknown, headers: Record<string, string> = {}) =>
  request(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });

interface Service {
  name: ServiceName;
  child: ChildProcess;
  /** HTTP port (micro-pay: its health port) */
  port: number;
  url: string;
  logs: Json[];
  badLines: string[];
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnService(name: ServiceName, port: number, env: Record<string, string>): Service {
  const cwd = contexts.get(name);
  assert.ok(cwd, `no build context for ${name}`);
  const child = spawn(process.execPath, ['server.mjs'], {
    cwd,
    // a clean environment: nothing inherited except PATH (no NODE_OPTIONS, no NODE_PATH)
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  running.add(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal });
    });
  });
  const logs: Json[] = [];
  const badLines: string[] = [];
  createInterface({ input: child.stdout! }).on('line', (line) => {
    try {
      logs.push(JSON.parse(line));
    } catch {
      badLines.push(line);
    }
  });
  let err = '';
  child.stderr!.on('data', (c: Buffer) => (err += c.toString('utf8')));
  return { name, child, port, url: `http://127.0.0.1:${port}`, logs, badLines, stderr: () => err, exited };
}

async function waitReady(svc: Service): Promise<void> {
  let exitedEarly = false;
  void svc.exited.then(() => (exitedEarly = true));
  await waitFor(`${svc.name} on port ${svc.port} to become ready`, async () => {
    if (exitedEarly) throw new Error(`${svc.name} exited during startup:\n${svc.stderr()}\n${JSON.stringify(svc.logs)}`);
    try {
      return (await request(`${svc.url}/ready`)).status === 200;
    } catch {
      return false;
    }
  }, 15_000);
}

async function startService(name: ServiceName, port: number, env: Record<string, string>): Promise<Service> {
  const svc = spawnService(name, port, env);
  await waitReady(svc);
  return svc;
}

const requestLogs = (svc: Service, p: string) => svc.logs.filter((l) => l.msg === 'request' && l.path === p);

async function refused(url: string): Promise<boolean> {
  try {
    await request(url);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ECONNREFUSED';
  }
}

// ---------------------------------------------------------------------------
// a fake micro-order, to drive micro-api's downstream error paths

type StubMode = 'fail' | 'result-error' | 'garbage' | 'hang' | 'slow-ok';
let stubMode: StubMode = 'fail';
const stubRequests: { headers: http.IncomingHttpHeaders; body: string }[] = [];
let onStubRequest: (() => void) | null = null;
const stub = http.createServer((req, res) => {
  let body = '';
  req.on('data', (c: Buffer) => (body += c.toString('utf8')));
  req.on('end', () => {
    stubRequests.push({ headers: req.headers, body });
    onStubRequest?.();
    const json = { 'content-type': 'application/json', 'x-served-by': 'stub-order/v9' };
    switch (stubMode) {
      case 'fail':
        res.writeHead(503, json).end(JSON.stringify({ error: 'unavailable', message: 'stub says no' }));
        break;
      case 'result-error':
        res.writeHead(400, json).end(JSON.stringify({ code: 9998, message: "stub: invalid field 'amount'" }));
        break;
      case 'garbage':
        res.writeHead(200, { 'content-type': 'text/plain' }).end('this is not json');
        break;
      case 'hang':
        break; // never answers
      case 'slow-ok':
        setTimeout(() => res.writeHead(200, json).end(JSON.stringify({ code: 0, message: '成功', data: { orderId: 'stub-order-1', status: 2 } })), 700);
        break;
    }
  });
});

// ---------------------------------------------------------------------------

describe('demo services (micro-api -> micro-order -> micro-pay)', { timeout: 120_000 }, () => {
  let pay: Service;
  let order: Service;
  let api: Service;
  let payGrpcPort: number;

  before(async () => {
    workDir = await mkdtemp(path.join(os.tmpdir(), 'meshdemo-services-'));
    for (const svc of ['micro-api', 'micro-order', 'micro-pay'] as const) contexts.set(svc, await buildContext(svc));

    const [payHttp, payGrpc, orderPort, apiPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    payGrpcPort = payGrpc;
    const common = { SHUTDOWN_DELAY_MS: '1500', LOG_LEVEL: 'debug' };
    [pay, order, api] = await Promise.all([
      startService('micro-pay', payHttp, {
        ...common,
        GRPC_PORT: String(payGrpc),
        HTTP_PORT: String(payHttp),
        POD_NAME: 'micro-pay-0',
        VERSION: 'v2',
      }),
      startService('micro-order', orderPort, {
        ...common,
        PORT: String(orderPort),
        GRPC_SERVER_HOST: '127.0.0.1',
        GRPC_SERVER_PORT: String(payGrpc),
        POD_NAME: 'micro-order-0',
      }),
      startService('micro-api', apiPort, {
        ...common,
        PORT: String(apiPort),
        ORDER_URL: `http://127.0.0.1:${orderPort}/order/create`,
        POD_NAME: 'micro-api-0',
      }),
    ]);

    stub.listen(0, '127.0.0.1');
    await once(stub, 'listening');
  });

  after(async () => {
    for (const child of running) child.kill('SIGKILL');
    stub.closeAllConnections();
    await new Promise<void>((r) => stub.close(() => r()));
    if (workDir) await rm(workDir, { recursive: true, force: true });
  });

  test('templates: proto contract, package.json dependencies and Dockerfiles', async () => {
    const proto = await readFile(path.join(TEMPLATES, 'paycore.proto'), 'utf8');
    assert.match(proto, /syntax\s*=\s*"proto3"/);
    assert.match(proto, /package\s+com\.wudimanong\.pay\.client\s*;/);
    assert.match(proto, /service\s+PayService\s*\{\s*rpc\s+doPay\s*\(\s*PayRequest\s*\)\s*returns\s*\(\s*PayResponse\s*\)\s*;\s*\}/);
    assert.match(proto, /message\s+PayRequest\s*\{\s*string\s+orderId\s*=\s*1\s*;\s*int32\s+amount\s*=\s*2\s*;\s*\}/);
    assert.match(proto, /message\s+PayResponse\s*\{\s*int32\s+status\s*=\s*1\s*;\s*\}/);

    const expected: Record<ServiceName, { deps: Record<string, string>; ports: string[] }> = {
      'micro-api': { deps: {}, ports: ['9090'] },
      'micro-order': { deps: { '@grpc/grpc-js': '^1', '@grpc/proto-loader': '^0.8' }, ports: ['9091'] },
      'micro-pay': { deps: { '@grpc/grpc-js': '^1', '@grpc/proto-loader': '^0.8' }, ports: ['18888', '9092'] },
    };
    for (const [svc, want] of Object.entries(expected) as [ServiceName, (typeof expected)[ServiceName]][]) {
      const pkg = JSON.parse(await readFile(path.join(TEMPLATES, svc, 'package.json'), 'utf8'));
      assert.equal(pkg.name, svc);
      assert.equal(pkg.type, 'module');
      assert.deepEqual(pkg.dependencies ?? {}, want.deps, `${svc} dependencies`);

      // every bare import reachable from server.mjs is a declared dependency
      const seen = new Set<string>();
      const bare = new Set<string>();
      const visit = async (file: string) => {
        if (seen.has(file)) return;
        seen.add(file);
        const src = await readFile(file, 'utf8');
        for (const m of src.matchAll(/^\s*(?:import|export)\s[^'"]*?from\s+['"]([^'"]+)['"]/gm)) {
          const spec = m[1];
          if (spec.startsWith('.')) await visit(path.resolve(path.dirname(file), spec));
          else if (!spec.startsWith('node:')) bare.add(spec);
        }
      };
      await visit(path.join(contexts.get(svc)!, 'server.mjs'));
      assert.deepEqual([...bare].sort(), Object.keys(want.deps).sort(), `${svc} bare imports`);

      const docker = await readFile(path.join(TEMPLATES, svc, 'Dockerfile'), 'utf8');
      const lines = docker.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#'));
      assert.equal(lines[0], 'ARG BASE_IMAGE=node:22-alpine');
      assert.equal(lines[1], 'FROM ${BASE_IMAGE}');
      assert.ok(lines.indexOf('WORKDIR /app') < lines.indexOf('COPY . .'));
      assert.ok(lines.indexOf('COPY . .') < lines.indexOf(`WORKDIR /app/${svc}`), `${svc} runs from /app/${svc}`);
      assert.equal(lines.at(-1), 'CMD ["node","server.mjs"]');
      assert.doesNotMatch(lines.join('\n'), /\b(npm|yarn|pnpm|apk|apt-get|curl|wget)\b/i, `${svc} Dockerfile must not need the network`);
      const exposed = lines.filter((l) => l.startsWith('EXPOSE')).flatMap((l) => l.split(/\s+/).slice(1));
      assert.deepEqual(exposed.sort(), [...want.ports].sort(), `${svc} EXPOSE`);
    }
    assert.deepEqual((await readdir(path.join(TEMPLATES, 'common'))).sort(), ['paycore.mjs', 'runtime.mjs']);
  });

  test('end to end: api -> order -> pay answers code 0 with an orderId and status 2', { timeout: TEST_TIMEOUT }, async () => {
    const res = await postJson(`${api.url}/api/order/create`, { businessId: 'biz-1', amount: 100, channel: 1 });
    assert.equal(res.status, 200, res.text);
    assert.match(String(res.headers['content-type']), /^application\/json/);
    assert.deepEqual(Object.keys(res.json), ['code', 'message', 'data']);
    assert.equal(res.json.code, 0);
    assert.equal(res.json.message, '成功');
    assert.deepEqual(Object.keys(res.json.data).sort(), ['orderId', 'status']);
    assert.equal(res.json.data.status, 2);
    assert.match(res.json.data.orderId, /^\d{23}$/);
    // served-by of every hop is visible to the client
    assert.equal(res.headers['x-served-by'], 'micro-api-0/v1');
    assert.equal(res.headers['x-order-served-by'], 'micro-order-0/v1');
    assert.equal(res.headers['x-pay-served-by'], 'micro-pay-0/v2');

    const again = await postJson(`${api.url}/api/order/create`, { businessId: 'biz-1', amount: 100, channel: 1 });
    assert.equal(again.json.code, 0);
    assert.notEqual(again.json.data.orderId, res.json.data.orderId, 'order ids are unique');
  });

  test('trace headers sent to micro-api arrive at micro-pay as gRPC metadata', { timeout: TEST_TIMEOUT }, async () => {
    const trace: Record<string, string> = {
      'x-request-id': 'req-7f3c2a',
      'x-b3-traceid': '80f198ee56343ba864fe8b2a57d3eff7',
      'x-b3-spanid': 'e457b5a2e4d86bd1',
      'x-b3-parentspanid': '05e3ac9a4f6e3b90',
      'x-b3-sampled': '1',
      'x-b3-flags': '0',
      'x-ot-span-context': 'ot-ctx-1',
      'x-datadog-trace-id': '1234567890123456789',
      'x-datadog-parent-id': '987654321987654321',
      'x-datadog-sampled': '1',
      traceparent: '00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01',
      tracestate: 'congo=t61rcWkgMzE',
      'end-user': 'jason',
    };
    const res = await postJson(
      `${api.url}/api/order/create`,
      { businessId: 'biz-trace', amount: 4242, channel: 3 },
      { ...trace, 'user-agent': 'meshdemo-test/1.0', 'x-not-a-trace-header': 'nope' },
    );
    assert.equal(res.status, 200, res.text);
    assert.equal(res.json.code, 0);
    // micro-api hands the trace id back, for a link to Jaeger
    assert.equal(res.headers['x-b3-traceid'], trace['x-b3-traceid']);

    const last = await request(`${pay.url}/debug/last-metadata`);
    assert.equal(last.status, 200, last.text);
    assert.equal(last.headers['x-served-by'], 'micro-pay-0/v2');
    assert.equal(last.json.method, '/com.wudimanong.pay.client.PayService/doPay');
    assert.deepEqual(last.json.request, { orderId: res.json.data.orderId, amount: 4242 });
    for (const [key, value] of Object.entries(trace)) {
      assert.equal(last.json.trace[key], value, `trace metadata ${key}`);
      assert.equal(last.json.metadata[key], value, `raw metadata ${key}`);
    }
    // gRPC owns user-agent; the caller's one travels as x-forwarded-user-agent
    assert.equal(last.json.trace['x-forwarded-user-agent'], 'meshdemo-test/1.0');
    assert.equal(last.json.metadata['x-not-a-trace-header'], undefined, 'only trace headers are forwarded');

    // micro-pay logs the received trace metadata
    const payLog = pay.logs.find((l) => l.msg === 'request' && l.orderId === res.json.data.orderId);
    assert.ok(payLog, 'micro-pay logged the doPay call');
    assert.equal(payLog.traceId, trace['x-b3-traceid']);
    assert.equal(payLog.trace.traceparent, trace.traceparent);
    assert.equal(payLog.status, 0);
  });

  test('a traceparent alone is propagated and used as the log traceId', { timeout: TEST_TIMEOUT }, async () => {
    const traceparent = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const res = await postJson(`${api.url}/api/order/create`, { businessId: 'b', amount: 1, channel: 0 }, { traceparent });
    assert.equal(res.json.code, 0, res.text);
    const last = await request(`${pay.url}/debug/last-metadata`);
    assert.equal(last.json.trace.traceparent, traceparent);
    assert.equal(last.json.trace['x-b3-traceid'], undefined);
    const id = '4bf92f3577b34da6a3ce929d0e0e4736';
    await waitFor('request logs with the traceparent trace id', () =>
      [api, order, pay].every((s) => s.logs.some((l) => l.msg === 'request' && l.traceId === id)),
    );
  });

  test('every service writes one-line JSON request logs', { timeout: TEST_TIMEOUT }, async () => {
    const traceId = 'a1b2c3d4e5f60718';
    const res = await postJson(`${api.url}/api/order/create`, { businessId: 'log', amount: 5, channel: 2 }, { 'x-b3-traceid': traceId });
    assert.equal(res.json.code, 0);
    await waitFor('logs on all three hops', () =>
      [api, order, pay].every((s) => s.logs.some((l) => l.msg === 'request' && l.traceId === traceId)),
    );
    const expectPath: Record<ServiceName, string> = {
      'micro-api': '/api/order/create',
      'micro-order': '/order/create',
      'micro-pay': '/com.wudimanong.pay.client.PayService/doPay',
    };
    for (const svc of [api, order, pay]) {
      assert.deepEqual(svc.badLines, [], `${svc.name} stdout lines are all JSON`);
      const line = svc.logs.find((l) => l.msg === 'request' && l.traceId === traceId);
      for (const key of ['ts', 'level', 'svc', 'msg', 'method', 'path', 'status', 'ms', 'traceId']) {
        assert.ok(key in line, `${svc.name} log has ${key}: ${JSON.stringify(line)}`);
      }
      assert.equal(line.svc, svc.name);
      assert.equal(line.level, 'info');
      assert.equal(line.path, expectPath[svc.name]);
      assert.ok(!Number.isNaN(Date.parse(line.ts)));
      assert.equal(typeof line.ms, 'number');
    }
    assert.equal(api.logs.find((l) => l.traceId === traceId && l.msg === 'request').status, 200);
  });

  test('bad input answers 400 with code 9998 naming the field, without calling micro-order', { timeout: TEST_TIMEOUT }, async () => {
    const before = requestLogs(order, '/order/create').length;
    const cases: [string, string, string][] = [
      ['invalid JSON', '{"businessId":', 'body'],
      ['empty body', '', 'body'],
      ['array body', '[1,2]', 'body'],
      ['null body', 'null', 'body'],
      ['missing businessId', JSON.stringify({ amount: 1, channel: 1 }), 'businessId'],
      ['numeric businessId', JSON.stringify({ businessId: 42, amount: 1, channel: 1 }), 'businessId'],
      ['empty businessId', JSON.stringify({ businessId: '', amount: 1, channel: 1 }), 'businessId'],
      ['missing amount', JSON.stringify({ businessId: 'b', channel: 1 }), 'amount'],
      ['string amount', JSON.stringify({ businessId: 'b', amount: '100', channel: 1 }), 'amount'],
      ['fractional amount', JSON.stringify({ businessId: 'b', amount: 1.5, channel: 1 }), 'amount'],
      ['negative amount', JSON.stringify({ businessId: 'b', amount: -1, channel: 1 }), 'amount'],
      ['amount beyond int32', JSON.stringify({ businessId: 'b', amount: 2 ** 31, channel: 1 }), 'amount'],
      ['missing channel', JSON.stringify({ businessId: 'b', amount: 1 }), 'channel'],
      ['null channel', JSON.stringify({ businessId: 'b', amount: 1, channel: null }), 'channel'],
      ['boolean channel', JSON.stringify({ businessId: 'b', amount: 1, channel: true }), 'channel'],
      ['fractional channel', JSON.stringify({ businessId: 'b', amount: 1, channel: 0.5 }), 'channel'],
    ];
    for (const [name, body, field] of cases) {
      const res = await postJson(`${api.url}/api/order/create`, body);
      assert.equal(res.status, 400, `${name}: ${res.text}`);
      assert.equal(res.json.code, 9998, name);
      assert.deepEqual(Object.keys(res.json), ['code', 'message'], `${name}: an error carries no data`);
      assert.ok(res.json.message.includes(field), `${name}: message names '${field}': ${res.json.message}`);
      assert.equal(res.headers['x-served-by'], 'micro-api-0/v1');
    }
    // micro-order validates its own input too
    const direct = await postJson(`${order.url}/order/create`, { businessId: 'b', amount: 'x', channel: 1 });
    assert.equal(direct.status, 400);
    assert.equal(direct.json.code, 9998);
    assert.match(direct.json.message, /'amount'/);

    await sleep(100);
    assert.equal(requestLogs(order, '/order/create').length, before + 1, 'only the direct call reached micro-order');
  });

  test('unknown paths answer 404 and wrong methods 405 with code 9996', { timeout: TEST_TIMEOUT }, async () => {
    const r404 = await request(`${api.url}/api/nope`);
    assert.equal(r404.status, 404);
    assert.equal(r404.json.code, 404);
    for (const url of [`${api.url}/api/order/create`, `${order.url}/order/create`]) {
      for (const method of ['GET', 'PUT', 'DELETE']) {
        const r405 = await request(url, { method });
        assert.equal(r405.status, 405, `${method} ${url}`);
        assert.equal(r405.headers.allow, 'POST');
        assert.deepEqual(Object.keys(r405.json), ['code', 'message']);
        assert.equal(r405.json.code, 9996, `${method} ${url}`);
        assert.match(r405.json.message, new RegExp(`unsupported HTTP method ${method}`));
      }
    }
    assert.equal((await request(`${order.url}/nope`, { method: 'POST' })).status, 404);
    assert.equal((await request(`${pay.url}/nope`)).status, 404);
  });

  test('micro-order alone answers the ResponseResult {code 0, 成功, data {orderId, status 2}} with x-served-by and x-pay-served-by', { timeout: TEST_TIMEOUT }, async () => {
    const res = await postJson(`${order.url}/order/create`, { businessId: 'direct', amount: 7, channel: 1 });
    assert.equal(res.status, 200, res.text);
    assert.deepEqual(Object.keys(res.json), ['code', 'message', 'data']);
    assert.equal(res.json.code, 0);
    assert.equal(res.json.message, '成功');
    assert.deepEqual(Object.keys(res.json.data).sort(), ['orderId', 'status']);
    assert.match(res.json.data.orderId, /^\d{23}$/);
    assert.equal(res.json.data.status, 2);
    assert.equal(res.headers['x-served-by'], 'micro-order-0/v1');
    assert.equal(res.headers['x-pay-served-by'], 'micro-pay-0/v2');
  });

  test('micro-pay answers doPay over gRPC with status 2 and x-served-by metadata', { timeout: TEST_TIMEOUT }, async () => {
    const def = protoLoader.loadSync(path.join(TEMPLATES, 'paycore.proto'), { keepCase: true, defaults: true });
    const loaded = grpc.loadPackageDefinition(def) as Json;
    const PayService = loaded.com.wudimanong.pay.client.PayService as typeof grpc.Client;
    const client = new PayService(`127.0.0.1:${payGrpcPort}`, grpc.credentials.createInsecure()) as Json;
    try {
      const call = (req: Json) =>
        new Promise<{ err: grpc.ServiceError | null; res: Json; servedBy: string | undefined }>((resolve) => {
          let servedBy: string | undefined;
          const c = client.doPay(req, new grpc.Metadata(), { deadline: Date.now() + 5000 }, (err: grpc.ServiceError | null, res: Json) =>
            resolve({ err, res, servedBy }),
          );
          c.on('metadata', (md: grpc.Metadata) => (servedBy = md.get('x-served-by')[0]?.toString()));
        });
      const ok = await call({ orderId: 'grpc-direct-1', amount: 10 });
      assert.equal(ok.err, null);
      assert.deepEqual(ok.res, { status: 2 });
      assert.equal(ok.servedBy, 'micro-pay-0/v2');
      const bad = await call({ orderId: '', amount: 10 });
      assert.equal(bad.err?.code, grpc.status.INVALID_ARGUMENT);
    } finally {
      client.close();
    }
  });

  test('health and readiness probes on every HTTP port, with x-served-by', { timeout: TEST_TIMEOUT }, async () => {
    const who: Record<ServiceName, string> = {
      'micro-api': 'micro-api-0/v1',
      'micro-order': 'micro-order-0/v1',
      'micro-pay': 'micro-pay-0/v2',
    };
    for (const svc of [api, order, pay]) {
      for (const probe of ['/healthz', '/ready']) {
        const res = await request(`${svc.url}${probe}`);
        assert.equal(res.status, 200, `${svc.name} ${probe}`);
        assert.equal(res.headers['x-served-by'], who[svc.name]);
      }
      // probes are logged at debug level only (LOG_LEVEL=debug here)
      assert.ok(svc.logs.some((l) => l.path === '/ready' && l.level === 'debug'));
    }
  });

  test('micro-order down, then micro-pay down: micro-api answers 500 with code 9999', { timeout: TEST_TIMEOUT }, async () => {
    const [orderPort, apiPort, deadPayPort] = await Promise.all([freePort(), freePort(), freePort()]);
    const api2 = await startService('micro-api', apiPort, {
      PORT: String(apiPort),
      ORDER_URL: `http://127.0.0.1:${orderPort}/order/create`,
    });
    // nothing listens on orderPort yet: connection refused
    const down = await postJson(`${api2.url}/api/order/create`, { businessId: 'b', amount: 1, channel: 1 });
    assert.equal(down.status, 500, down.text);
    assert.equal(down.json.code, 9999);
    assert.deepEqual(Object.keys(down.json), ['code', 'message']);
    assert.match(down.json.message, /micro-order/);
    assert.match(down.json.message, /ECONNREFUSED/);
    // no POD_NAME / VERSION: hostname and v1
    assert.equal(down.headers['x-served-by'], `${HOSTNAME}/v1`);

    // micro-order up, but its micro-pay is not: 9999 from micro-order, passed through by micro-api
    const order2 = await startService('micro-order', orderPort, {
      PORT: String(orderPort),
      GRPC_SERVER_HOST: '127.0.0.1',
      GRPC_SERVER_PORT: String(deadPayPort),
    });
    const direct = await postJson(`${order2.url}/order/create`, { businessId: 'b', amount: 1, channel: 1 });
    assert.equal(direct.status, 500, direct.text);
    assert.equal(direct.json.code, 9999);
    assert.match(direct.json.message, /^micro-pay doPay failed: UNAVAILABLE/);
    const viaApi = await postJson(`${api2.url}/api/order/create`, { businessId: 'b', amount: 1, channel: 1 });
    assert.equal(viaApi.status, 500, viaApi.text);
    assert.deepEqual(Object.keys(viaApi.json), ['code', 'message']);
    assert.equal(viaApi.json.code, 9999);
    assert.match(viaApi.json.message, /^micro-pay doPay failed: UNAVAILABLE/);
    assert.equal(viaApi.headers['x-order-served-by'], `${HOSTNAME}/v1`);

    // SIGINT (interactive stop): no readiness delay (default SHUTDOWN_DELAY_MS is 1000), exits 0
    for (const s of [api2, order2]) s.child.kill('SIGINT');
    for (const s of [api2, order2]) {
      assert.deepEqual(await s.exited, { code: 0, signal: null }, `${s.name}: ${s.stderr()}`);
      const started = s.logs.find((l) => l.msg === 'shutdown started');
      const done = s.logs.find((l) => l.msg === 'shutdown complete');
      assert.equal(started?.signal, 'SIGINT');
      assert.equal(started?.delayMs, 0);
      assert.ok(done, `${s.name} logged shutdown complete`);
    }
  });

  describe('micro-api against a fake micro-order', () => {
    let api3: Service;
    before(async () => {
      const port = await freePort();
      const { port: stubPort } = stub.address() as net.AddressInfo;
      api3 = await startService('micro-api', port, {
        PORT: String(port),
        ORDER_URL: `http://127.0.0.1:${stubPort}/order/create`,
        ORDER_TIMEOUT_MS: '1500',
        SHUTDOWN_DELAY_MS: '0',
        VERSION: 'canary',
      });
    });

    test('forwards trace headers (and only them) over HTTP with the validated body', { timeout: TEST_TIMEOUT }, async () => {
      stubMode = 'slow-ok';
      stubRequests.length = 0;
      const res = await postJson(
        `${api3.url}/api/order/create`,
        { businessId: 'fwd', amount: 3, channel: 9, extra: 'dropped' },
        { 'x-b3-traceid': 'fwd-trace', 'x-b3-sampled': '1', 'user-agent': 'ua/9', 'end-user': 'e', cookie: 'secret=1' },
      );
      assert.equal(res.status, 200, res.text);
      assert.deepEqual(res.json, { code: 0, message: '成功', data: { orderId: 'stub-order-1', status: 2 } });
      assert.equal(res.headers['x-served-by'], `${HOSTNAME}/canary`);
      assert.equal(res.headers['x-order-served-by'], 'stub-order/v9');
      const [seen] = stubRequests;
      assert.equal(seen.headers['x-b3-traceid'], 'fwd-trace');
      assert.equal(seen.headers['x-b3-sampled'], '1');
      assert.equal(seen.headers['user-agent'], 'ua/9');
      assert.equal(seen.headers['end-user'], 'e');
      assert.equal(seen.headers.cookie, undefined);
      assert.deepEqual(JSON.parse(seen.body), { businessId: 'fwd', amount: 3, channel: 9 });
    });

    test("micro-order's non-zero code reaches the client with its code and message", { timeout: TEST_TIMEOUT }, async () => {
      stubMode = 'result-error';
      const res = await postJson(`${api3.url}/api/order/create`, { businessId: 'b', amount: 1, channel: 1 }, { 'x-b3-traceid': 'abc123' });
      assert.equal(res.status, 400, res.text);
      assert.deepEqual(res.json, { code: 9998, message: "stub: invalid field 'amount'" });
      assert.equal(res.headers['x-b3-traceid'], 'abc123');
      assert.equal(res.headers['x-order-served-by'], 'stub-order/v9');
    });

    test('non-2xx, invalid body and timeout from micro-order become 500/9999', { timeout: TEST_TIMEOUT }, async () => {
      stubMode = 'fail';
      const failed = await postJson(`${api3.url}/api/order/create`, { businessId: 'b', amount: 1, channel: 1 });
      assert.equal(failed.status, 500);
      assert.equal(failed.json.code, 9999);
      assert.match(failed.json.message, /503/);
      assert.match(failed.json.message, /stub says no/);
      assert.equal(failed.headers['x-order-served-by'], 'stub-order/v9');

      stubMode = 'garbage';
      const garbage = await postJson(`${api3.url}/api/order/create`, { businessId: 'b', amount: 1, channel: 1 });
      assert.equal(garbage.status, 500);
      assert.equal(garbage.json.code, 9999);

      stubMode = 'hang';
      const t0 = Date.now();
      const hung = await postJson(`${api3.url}/api/order/create`, { businessId: 'b', amount: 1, channel: 1 });
      const took = Date.now() - t0;
      assert.equal(hung.status, 500);
      assert.equal(hung.json.code, 9999);
      assert.match(hung.json.message, /1500ms/);
      assert.ok(took >= 1400 && took < 4000, `timed out after ${took}ms`);
    });

    test('SIGTERM stops accepting, finishes the in-flight request and exits 0', { timeout: TEST_TIMEOUT }, async () => {
      stubMode = 'slow-ok';
      const arrived = new Promise<void>((r) => (onStubRequest = r));
      const inflight = postJson(`${api3.url}/api/order/create`, { businessId: 'slow', amount: 1, channel: 1 });
      await arrived;
      onStubRequest = null;
      api3.child.kill('SIGTERM');
      await waitFor('micro-api to stop accepting connections', () => refused(`${api3.url}/healthz`), 2000);
      const res = await inflight;
      assert.equal(res.status, 200, res.text);
      assert.equal(res.json.code, 0);
      assert.deepEqual(await api3.exited, { code: 0, signal: null }, api3.stderr());
      assert.ok(api3.logs.some((l) => l.msg === 'shutdown complete'));
    });
  });

  test('SIGTERM flips readiness to 503 while still serving, then every service exits 0', { timeout: TEST_TIMEOUT }, async () => {
    for (const svc of [api, order, pay]) svc.child.kill('SIGTERM');
    // SHUTDOWN_DELAY_MS=1500: not ready, but alive and still serving traffic
    for (const svc of [api, order, pay]) {
      let ready = await request(`${svc.url}/ready`);
      await waitFor(`${svc.name} /ready to answer 503`, async () => (ready = await request(`${svc.url}/ready`)).status === 503, 1000);
      assert.equal(ready.json.status, 'draining');
      assert.equal(ready.headers.connection, 'close');
      assert.equal((await request(`${svc.url}/healthz`)).status, 200, `${svc.name} /healthz while draining`);
    }
    const during = await postJson(`${api.url}/api/order/create`, { businessId: 'late', amount: 1, channel: 1 });
    assert.equal(during.json.code, 0, 'requests during the drain delay still succeed');

    const t0 = Date.now();
    const results = await Promise.all([api, order, pay].map((s) => s.exited));
    for (const [i, svc] of [api, order, pay].entries()) {
      assert.deepEqual(results[i], { code: 0, signal: null }, `${svc.name} exit: ${svc.stderr()}`);
      assert.ok(svc.logs.some((l) => l.msg === 'shutdown started' && l.signal === 'SIGTERM'));
      assert.ok(svc.logs.some((l) => l.msg === 'shutdown complete'));
      assert.equal(svc.stderr(), '', `${svc.name} wrote nothing to stderr`);
    }
    assert.ok(Date.now() - t0 < 5000, 'exits within a few seconds');
    assert.ok(await refused(`${api.url}/healthz`));
  });
});
