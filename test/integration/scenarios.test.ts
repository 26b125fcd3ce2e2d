// The tutorial's next steps — canary, chaos, mtls — and `open`, end to end. REAL API server + controller manager
// with the REAL Istio 1.8.4 CRDs (applied by the istioctl stand-in from ../shared/fixtures/istio-1.8.4), REAL
// local release server, the demo deployed by a real `up --skip-build`. Simulated: the node (pods marked Ready) and
// Envoy: the ingress gateway and micro-api's sidecar are test/support/mesh-router.ts, routing by the
// VirtualServices and DestinationRules meshdemo applied to the API server, to the demo services running on
// loopback — one process per Ready pod of each version, so a v2 answers only once meshdemo's v2 Deployment has a pod;
// micro-order's sidecars are startGrpcMeshRouter, routing doPay to micro-pay by the DestinationRule's circuit breaker.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import yaml from 'js-yaml';
import type { V1Pod } from '@kubernetes/client-node';
import { withDemoCluster } from '../support/demo-cluster.js';
import { createImageStore, type ContainerExit } from '../support/node-simulator.js';
import { errorLines, type CliResult } from '../support/cli.js';
import { killOwned } from '../support/reaper.js';
import { snapshotCluster } from '../support/snapshot.js';
import { freePorts, serviceReady, spawnService } from '../support/local-services.js';
import { createMeshIdentity, startGrpcMeshRouter, startInboundSidecar, seededRandom, startMeshRouter, watchMesh, type Endpoint, type InboundSidecar, type MeshRouter } from '../support/mesh-router.js';
import { skipUnless } from '../support/requirements.js';

const NET = '/apis/networking.istio.io/v1alpha3/namespaces/default';
const IMAGES = ['micro-api', 'micro-order', 'micro-pay'].flatMap((s) => ['--image', `${s}=127.0.0.1:5000/micro-service/${s}:1`]);

describe('scenarios: canary, chaos, mtls, open', { skip: skipUnless('control-plane'), timeout: 900_000 }, () => {
  let gateway: MeshRouter;
  let orderRoute: MeshRouter;
  const paySidecars: MeshRouter[] = [];
  let stopPayWatch: (() => Promise<void>) | undefined;
  let baseline: Record<string, string[]>;
  /** The cluster before up. */
  let pristine: Record<string, string[]>;
  let baseVs: any;
  const children: ChildProcess[] = [];
  /** micro-api's pods' inbound sidecars (their PeerAuthentication mode decides what a plaintext caller gets). */
  const apiInbound: InboundSidecar[] = [];
  /** Local processes per service and version: one is handed to each Ready pod of that version. */
  const processes: Record<string, string[]> = {};

  // registered before the demo cluster's own after(): the processes and routers stop before the API server they poll
  after(async () => {
    for (const c of children) c.kill('SIGKILL');
    await gateway?.close();
    await orderRoute?.close();
    for (const i of apiInbound) await i.close();
    for (const p of paySidecars) await p.close();
    await stopPayWatch?.();
  });
  const demo = withDemoCluster({
    name: 'scenarios',
    release: 'server',
    // The demo's images are already on the node, as after `kind load` (nothing serves 127.0.0.1:5000 here).
    node: (tmp) => {
      const loadedFile = path.join(tmp, 'node-images.json');
      fs.writeFileSync(loadedFile, JSON.stringify(Object.fromEntries(IMAGES.filter((a) => a !== '--image').map((a) => [a.split('=')[1], {}]))));
      return { images: createImageStore({ loadedFile }), run: runPod };
    },
  });
  const { api } = demo;
  const meshdemo = (args: string[], opts: { onEvent?: (e: any, child: ChildProcess) => void } = {}): Promise<CliResult> =>
    demo.meshdemo(['--timeout', '2m', ...args], { timeoutMs: 300_000, onEvent: opts.onEvent });

  const run = (name: string, env: Record<string, string | number>) => children.push(spawnService(name, env));

  /** The endpoints of a Service as kube-proxy/Envoy would see them: its Ready pods, each answered by a local process of its version. */
  const endpointsOf = async (app: string): Promise<Endpoint[]> => {
    const pods = (await api(`/api/v1/namespaces/default/pods?labelSelector=app%3D${app}`)).body.items as any[];
    const live = pods.filter((p) => !p.metadata.deletionTimestamp && p.status?.conditions?.some((c: any) => c.type === 'Ready' && c.status === 'True'));
    const used: Record<string, number> = {};
    return live.flatMap((p) => {
      const version = p.metadata.labels.version;
      const i = used[version] ?? 0;
      used[version] = i + 1;
      const url = processes[`${app}/${version}`]?.[i];
      return url ? [{ labels: p.metadata.labels, url }] : [];
    });
  };

  /**
   * The node's container runtime for pods that run to completion, as meshdemo's plaintext probe: its `node`
   * command runs as a local process. What cluster DNS and kube-proxy do cannot run here: a URL argument naming a
   * Service (http://<svc>.default.svc.cluster.local:<port>/…) is pointed at one Ready pod of it — for micro-api, its
   * inbound sidecar's listener, in plaintext as the call is sent. The kubelet mounts a host file at the container's
   * terminationMessagePath; the argument naming that path is pointed at such a file.
   */
  const runPod = (pod: V1Pod): Promise<ContainerExit> | undefined => {
    const c = pod.spec?.containers?.[0];
    if (!c?.command || c.command[0] !== 'node') return undefined;
    const logFile = path.join(demo.tmp, `termination-${pod.metadata!.uid}`);
    return (async () => {
      const args: string[] = [];
      for (const a of [...c.command!.slice(1), ...(c.args ?? [])]) {
        const m = /^http:\/\/([a-z0-9-]+)\.default\.svc\.cluster\.local:(\d+)(\/.*)?$/.exec(a);
        if (a === c.terminationMessagePath) args.push(logFile);
        else if (m) {
          const svc = (await api(`/api/v1/namespaces/default/services/${m[1]}`)).body;
          assert.ok(svc.spec.ports.some((p: any) => p.port === Number(m[2])), `no port ${m[2]} on Service ${m[1]}`);
          const [endpoint] = await endpointsOf(m[1]);
          assert.ok(endpoint, `no Ready pod behind Service ${m[1]}`);
          args.push(`${endpoint.url.replace(/^https:/, 'http:')}${m[3] ?? ''}`);
        } else args.push(a);
      }
      const child = spawn(process.execPath, args, { stdio: 'ignore', env: { PATH: process.env.PATH ?? '' } });
      children.push(child);
      const [code] = await once(child, 'exit');
      return { exitCode: code ?? 137, message: fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : undefined };
    })();
  };

  before(async () => {
    pristine = await snapshotCluster(demo.cp);
    const u = await meshdemo(['up', '--yes', '--istio-mirror', demo.server.url, '--skip-build', ...IMAGES]);
    assert.equal(u.code, 0, u.stderr);
    baseVs = (await api(`${NET}/virtualservices/micro-gateway`)).body.spec;
    baseline = await snapshotCluster(demo.cp);

    const get = (p: string) => api(p);
    // micro-pay: a process for each of micro-pay-v1's two pods, and one failing every payment for the breaker's
    // micro-pay-failing pod (PAY_FAIL=INTERNAL, as meshdemo's Deployment sets it) — it answers once that pod is Ready
    const payPorts = await freePorts(6);
    for (const [i, version] of ['v1', 'v1', 'failing'].entries()) {
      run('micro-pay', { GRPC_PORT: payPorts[2 * i], HTTP_PORT: payPorts[2 * i + 1], POD_NAME: `micro-pay-${version}-${i}`, VERSION: version, ...(version === 'failing' ? { PAY_FAIL: 'INTERNAL' } : {}) });
      (processes[`micro-pay/${version}`] ??= []).push(`http://127.0.0.1:${payPorts[2 * i]}`);
    }
    // the routers' draws for weights and percentages: one reproducible sequence (test/support/mesh-router.ts)
    const random = seededRandom(20261205);
    // micro-order: two v1 processes and one v2 (VERSION=v2, as meshdemo's canary Deployment sets it), each with its
    // own sidecar for the gRPC hop to micro-pay (its own circuit breaker and outlier detection, as each Envoy has)
    const payWatch = await watchMesh({ get, namespace: 'default', host: 'micro-pay', endpoints: () => endpointsOf('micro-pay'), random });
    stopPayWatch = () => payWatch.stop();
    const orderPorts = await freePorts(3);
    for (const [i, version] of ['v1', 'v1', 'v2'].entries()) {
      const sidecar = await startGrpcMeshRouter({ get, namespace: 'default', host: 'micro-pay', endpoints: () => endpointsOf('micro-pay'), watch: payWatch });
      paySidecars.push(sidecar);
      run('micro-order', { PORT: orderPorts[i], GRPC_SERVER_HOST: '127.0.0.1', GRPC_SERVER_PORT: new URL(sidecar.url).port, POD_NAME: `micro-order-${version}-${i}`, VERSION: version });
      (processes[`micro-order/${version}`] ??= []).push(`http://127.0.0.1:${orderPorts[i]}`);
    }
    // micro-api's sidecar: its outbound route to micro-order, by the mesh's VirtualService and DestinationRule
    orderRoute = await startMeshRouter({ get, namespace: 'default', host: 'micro-order', endpoints: () => endpointsOf('micro-order'), random });
    // micro-api's pods have sidecars: each is reached through its inbound sidecar, in mutual TLS from the gateway
    const identity = createMeshIdentity(path.join(demo.tmp, 'mesh-ca'));
    const apiPorts = await freePorts(2);
    for (const [i, version] of ['v1', 'v2'].entries()) {
      run('micro-api', { PORT: apiPorts[i], ORDER_URL: `${orderRoute.url}/order/create`, POD_NAME: `micro-api-${version}-${i}`, VERSION: version });
      const inbound = await startInboundSidecar({ get, namespace: 'default', labels: { app: 'micro-api', version }, app: `http://127.0.0.1:${apiPorts[i]}`, identity });
      apiInbound.push(inbound);
      (processes[`micro-api/${version}`] ??= []).push(inbound.url);
    }
    await Promise.all([payPorts[1], payPorts[3], payPorts[5], ...orderPorts, ...apiPorts].map(serviceReady));
    // the ingress gateway on its http2 nodePort (node address 127.0.0.1), by the VirtualService bound to micro-gateway
    const gw = await api('/api/v1/namespaces/istio-system/services/istio-ingressgateway');
    const http2 = gw.body.spec.ports.find((p: any) => p.name === 'http2').nodePort;
    gateway = await startMeshRouter({ get, namespace: 'default', host: 'micro-api', gateway: 'micro-gateway', endpoints: () => endpointsOf('micro-api'), port: http2, identity, random });
  });

  /** The record meshdemo keeps (ConfigMap meshdemo-inventory). */
  const record = async () => JSON.parse((await api('/api/v1/namespaces/default/configmaps/meshdemo-inventory')).body.data['inventory.json']);

  // each chaos and mtls test clears what it applied; one that failed half-way would leave it to the next tests
  afterEach(async () => {
    const cm = await api('/api/v1/namespaces/default/configmaps/meshdemo-inventory');
    if (cm.status !== 200) return;
    const active = JSON.parse(cm.body.data['inventory.json']).steps?.scenarios?.inputs ?? {};
    if (Object.values(active.services ?? {}).some((sv: any) => sv.chaos)) assert.equal((await meshdemo(['chaos', 'clear'])).code, 0, 'chaos clear after the test');
    if (active.mtls) assert.equal((await meshdemo(['mtls', 'clear'])).code, 0, 'mtls clear after the test');
  });

  it('a scenario on a namespace without the demo is refused (exit 3) with the way on, and changes nothing', async () => {
    const before = await snapshotCluster(demo.cp);
    for (const args of [['canary', 'micro-order', '--weight', 'v2=20'], ['chaos', 'delay', 'micro-order', '3s'], ['mtls', 'strict']]) {
      const r = await meshdemo(['--namespace', 'elsewhere', ...args]);
      assert.equal(r.code, 3, r.stderr);
      assert.match(errorLines(r.stderr)[0], /^error: the demo is not deployed in namespace elsewhere \(missing .*\) — run meshdemo up first --namespace elsewhere/);
    }
    assert.deepEqual(await snapshotCluster(demo.cp), before);
  });

  it('canary micro-order --weight v2=20 --verify: v2 deployed, DestinationRule subsets and a weighted VirtualService, 15–25% measured on v2', async () => {
    const r = await meshdemo(['canary', 'micro-order', '--weight', 'v2=20', '--verify', '--requests', '1000', '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    const result = r.events().at(-1);
    const v2 = result.checks.find((c: any) => c.label === 'micro-order v2');
    assert.equal(v2.askedPercent, 20);
    assert.ok(v2.measuredPercent >= 15 && v2.measuredPercent <= 25, JSON.stringify(result.checks));
    assert.ok(result.checks.every((c: any) => c.ok));

    // the objects, field by field against Istio 1.8's API (istio/api release-1.8)
    const d = (await api('/apis/apps/v1/namespaces/default/deployments/micro-order-v2')).body;
    assert.deepEqual(d.spec.selector.matchLabels, { app: 'micro-order', version: 'v2' });
    assert.ok(d.spec.template.spec.containers[0].env.some((e: any) => e.name === 'VERSION' && e.value === 'v2'));
    const dr = (await api(`${NET}/destinationrules/micro-order`)).body;
    assert.deepEqual(dr.spec, { host: 'micro-order', subsets: [{ name: 'v1', labels: { version: 'v1' } }, { name: 'v2', labels: { version: 'v2' } }] }); // Subset.name, .labels
    const vs = (await api(`${NET}/virtualservices/micro-order`)).body;
    assert.deepEqual(vs.spec.hosts, ['micro-order']);
    assert.deepEqual(vs.spec.http.map((h: any) => h.route.map((x: any) => [x.destination.subset, x.weight])), [[['v1', 80], ['v2', 20]]]); // HTTPRouteDestination.weight
    // recorded, and listed by status
    const rec = await record();
    for (const name of ['micro-order-v2', 'micro-order']) assert.ok(rec.created.some((c: any) => c.name === name && c.step === 'scenarios'), JSON.stringify(rec.created));
    const status = await meshdemo(['status']);
    assert.match(status.stdout, /^scenarios {3}canary micro-order v1=80% v2=20%$/m);
  });

  it('a wrong weight in the VirtualService fails --verify (exit 1), printing the measured share next to the asked one', async () => {
    const vs = (await api(`${NET}/virtualservices/micro-order`)).body;
    vs.spec.http[0].route[0].weight = 50;
    vs.spec.http[0].route[1].weight = 50;
    assert.equal((await api(`${NET}/virtualservices/micro-order`, 'PUT', vs)).status, 200);
    const r = await meshdemo(['canary', 'micro-order', '--verify', '--requests', '1000']);
    assert.equal(r.code, 1, r.stderr);
    assert.match(errorLines(r.stderr)[0], /^error: the measured share is more than 5 points off the weight for micro-order v1, micro-order v2 — /);
    assert.match(r.stderr + r.stdout, /micro-order v2\s+asked +20%\s+measured +\d\d\.\d%/);
  });

  it('--header end-user=jason routes that user to v2, everyone else by the weight', async () => {
    const r = await meshdemo(['canary', 'micro-order', '--weight', 'v2=0', '--header', 'end-user=jason']);
    assert.equal(r.code, 0, r.stderr);
    const vs = (await api(`${NET}/virtualservices/micro-order`)).body;
    assert.deepEqual(vs.spec.http[0].match, [{ headers: { 'end-user': { exact: 'jason' } } }]); // HTTPMatchRequest.headers
    await orderRoute.synced();
    const order = async (user?: string) => {
      const res = await fetch(`${gateway.url}/api/order/create`, { method: 'POST', headers: { 'content-type': 'application/json', ...(user ? { 'end-user': user } : {}) }, body: JSON.stringify({ businessId: 'Y2021040819', amount: 100, channel: 1 }) });
      assert.equal(res.status, 200);
      return String(res.headers.get('x-order-served-by')).split('/').at(-1);
    };
    for (let i = 0; i < 10; i++) {
      assert.equal(await order('jason'), 'v2');
      assert.equal(await order('someone'), 'v1');
    }
  });

  it('a route to a subset no DestinationRule defines is a 503 NR at the router, as Envoy answers', async () => {
    const vs = (await api(`${NET}/virtualservices/micro-order`)).body;
    vs.spec.http = [{ route: [{ destination: { host: 'micro-order', subset: 'v3', port: { number: 80 } } }] }];
    assert.equal((await api(`${NET}/virtualservices/micro-order`, 'PUT', vs)).status, 200);
    await orderRoute.synced();
    const res = await fetch(`${gateway.url}/api/order/create`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ businessId: 'Y1', amount: 1, channel: 1 }) });
    const body = await res.json();
    assert.equal(res.status, 500);
    assert.equal(body.code, 9999); // micro-api: a call downstream failed
    assert.deepEqual({ ...orderRoute.log.at(-1), attempts: undefined, path: undefined }, { path: undefined, status: 503, flags: 'NR', subset: 'v3', attempts: undefined });
  });

  it('--promote sends all to v2 and retires v1\'s subset; --reset restores the plain demo (snapshot)', async () => {
    const p = await meshdemo(['canary', 'micro-order', '--promote', '--verify', '--requests', '200', '--json']);
    assert.equal(p.code, 0, p.stderr);
    const checks = p.events().at(-1).checks;
    assert.deepEqual(checks.map((c: any) => [c.label, c.askedPercent, c.ok]), [['micro-order v2', 100, true]]);
    assert.ok(checks[0].measuredPercent >= 95, JSON.stringify(checks));
    assert.deepEqual((await api(`${NET}/destinationrules/micro-order`)).body.spec.subsets, [{ name: 'v2', labels: { version: 'v2' } }]);
    const r = await meshdemo(['canary', 'micro-order', '--reset']);
    assert.equal(r.code, 0, r.stderr);
    assert.deepEqual(await snapshotCluster(demo.cp), baseline);
  });

  it('canary micro-api weights the gateway\'s own VirtualService; --reset gives it back as up applied it', async () => {
    const r = await meshdemo(['canary', 'micro-api', '--weight', 'v2=30', '--verify', '--requests', '1000', '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-1500));
    const vs = (await api(`${NET}/virtualservices/micro-gateway`)).body.spec;
    assert.deepEqual(vs.gateways, ['micro-gateway']);
    assert.deepEqual(vs.http[0].match, [{ uri: { exact: '/api/order/create' } }]);
    assert.deepEqual(vs.http[0].route.map((x: any) => [x.destination.host, x.destination.subset, x.weight]), [['micro-api', 'v1', 70], ['micro-api', 'v2', 30]]);
    const reset = await meshdemo(['canary', 'micro-api', '--reset']);
    assert.equal(reset.code, 0, reset.stderr);
    assert.deepEqual((await api(`${NET}/virtualservices/micro-gateway`)).body.spec, baseVs);
    assert.deepEqual(await snapshotCluster(demo.cp), baseline);
  });

  it('chaos abort micro-order 500 --percent 50 --verify: about half fail, and the caller sees the tutorial\'s 9999', async () => {
    const r = await meshdemo(['chaos', 'abort', 'micro-order', '500', '--percent', '50', '--verify', '--requests', '1000']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-1500));
    assert.match(r.stdout, /^failures {4}code 9999 ×\d+$/m);
    const m = /^failed \(abort 500\)\s+asked +50%\s+measured +(\d+\.\d)%/m.exec(r.stdout);
    assert.ok(m && Math.abs(Number(m[1]) - 50) <= 5, r.stdout);
    const vs = (await api(`${NET}/virtualservices/micro-order`)).body.spec;
    assert.deepEqual(vs.http[0].fault, { abort: { httpStatus: 500, percentage: { value: 50 } } }); // HTTPFaultInjection.Abort
  });

  it('chaos delay, timeout and retries compose on one VirtualService; chaos clear restores the cluster (snapshot)', async () => {
    const d = await meshdemo(['chaos', 'delay', 'micro-order', '500ms', '--percent', '50', '--verify', '--requests', '400']);
    assert.equal(d.code, 0, d.stderr + d.stdout.slice(-1500));
    assert.match(d.stdout, /^delayed by 500ms\s+asked +50%\s+measured +\d+\.\d%.*ok$/m);
    assert.match(d.stdout, /^latency without the delay {2}p50 \d+ms {2}p99 \d+ms {2}\(100 orders first\); with it {2}p50 \d+ms {2}p99 \d+ms$/m);
    assert.equal((await meshdemo(['chaos', 'abort', 'micro-order', '500', '--percent', '50'])).code, 0);
    assert.equal((await meshdemo(['chaos', 'timeout', 'micro-order', '2s'])).code, 0);
    assert.equal((await meshdemo(['chaos', 'retries', 'micro-order', '3', '--per-try-timeout', '1s', '--retry-on', '5xx'])).code, 0);
    const http = (await api(`${NET}/virtualservices/micro-order`)).body.spec.http[0];
    assert.deepEqual(http.fault, { delay: { fixedDelay: '500ms', percentage: { value: 50 } }, abort: { httpStatus: 500, percentage: { value: 50 } } });
    assert.equal(http.timeout, '2s'); // HTTPRoute.timeout
    assert.deepEqual(http.retries, { attempts: 3, perTryTimeout: '1s', retryOn: '5xx' }); // HTTPRetry
    const b = await meshdemo(['chaos', 'breaker']);
    assert.equal(b.code, 0, b.stderr);
    const dr = (await api(`${NET}/destinationrules/micro-pay`)).body.spec;
    assert.deepEqual(dr.trafficPolicy.connectionPool, { tcp: { maxConnections: 1 }, http: { http1MaxPendingRequests: 1, maxRequestsPerConnection: 1 } });
    assert.deepEqual(dr.trafficPolicy.outlierDetection, { consecutive5xxErrors: 1, interval: '1s', baseEjectionTime: '3m', maxEjectionPercent: 100 });
    const status = await meshdemo(['status']);
    assert.match(status.stdout, /^scenarios {3}chaos micro-order delay 500ms for 50%; chaos micro-order abort 500 for 50%; chaos micro-order timeout 2s; chaos micro-order retries 3 \(1s each\) on 5xx; chaos micro-pay breaker/m);
    const c = await meshdemo(['chaos', 'clear']);
    assert.equal(c.code, 0, c.stderr);
    assert.deepEqual(await snapshotCluster(demo.cp), baseline);
  });

  it('chaos breaker micro-pay --verify: the failing pod is ejected after its first failure, the pool overflows (UO); nothing is left after chaos clear', async () => {
    const all = () => paySidecars.flatMap((p) => p.log);
    const before = paySidecars.map((p) => p.log.length);
    const r = await meshdemo(['chaos', 'breaker', 'micro-pay', '--verify', '--requests', '400', '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    const checks = r.events().at(-1).checks;
    const ejected = checks.find((c: any) => c.label === 'micro-pay-failing ejected');
    assert.ok(ejected.ok && Number(ejected.measured) >= 1 && Number(ejected.measured) <= 4, JSON.stringify(checks)); // 2 micro-order sidecars × (1 connection + 1 pending)
    assert.ok(checks.find((c: any) => c.label === 'overflow (UO)').ok, JSON.stringify(checks));
    // the sidecars' access logs: the failing pod got only what came before its ejection, each answer gRPC INTERNAL
    // (13) in the headers; the overflows are Envoy's own answers, HTTP 200 with grpc-status 14 and flag UO
    const entries = paySidecars.flatMap((p, i) => p.log.slice(before[i]));
    const failingUrl = processes['micro-pay/failing'][0];
    const toFailing = entries.filter((e) => e.upstream === failingUrl);
    assert.ok(toFailing.length >= 1 && toFailing.length <= 4, JSON.stringify(toFailing));
    assert.ok(toFailing.every((e) => e.grpcStatus === 13));
    const uo = entries.filter((e) => e.flags === 'UO');
    assert.ok(uo.length > 0 && uo.every((e) => e.status === 200 && e.grpcStatus === 14), JSON.stringify(uo.slice(0, 3)));
    assert.ok(entries.filter((e) => e.upstream && e.upstream !== failingUrl && e.grpcStatus === 0).length > 0, 'the healthy pods answered');
    assert.ok(all().length > 0);
    // the failing pod lived only for the measurement, and is not in the record
    assert.equal((await api('/apis/apps/v1/namespaces/default/deployments/micro-pay-failing')).status, 404);
    assert.ok(!(await record()).created.some((c: any) => c.name === 'micro-pay-failing'));
    assert.equal((await meshdemo(['chaos', 'clear', 'micro-pay'])).code, 0);
    assert.deepEqual(await snapshotCluster(demo.cp), baseline);
  });

  it('chaos breaker --verify fails (exit 1) when the failing pod is not ejected: outlierDetection taken out while it measures', async () => {
    let changed: Promise<unknown> | undefined;
    const r = await meshdemo(['chaos', 'breaker', 'micro-pay', '--verify', '--requests', '300', '--json'], {
      onEvent: (e) => {
        if (!changed && e.type === 'log' && /^created Deployment\/micro-pay-failing/.test(e.message)) {
          changed = (async () => {
            const dr = (await api(`${NET}/destinationrules/micro-pay`)).body;
            delete dr.spec.trafficPolicy.outlierDetection;
            assert.equal((await api(`${NET}/destinationrules/micro-pay`, 'PUT', dr)).status, 200);
          })();
        }
      },
    });
    await changed;
    assert.equal(r.code, 1, r.stderr + r.stdout.slice(-1500));
    assert.match(errorLines(r.stderr)[0], /^error: what --verify measured is not what chaos breaker applied: micro-pay-failing ejected — /);
    assert.match(r.stdout + r.stderr, /micro-pay-failing ejected\s+expected reached, then ejected: 1 to 4 of 300 orders fail there {2}measured \d+ {2}NOT as expected/);
    assert.equal((await api('/apis/apps/v1/namespaces/default/deployments/micro-pay-failing')).status, 404);
    assert.equal((await meshdemo(['chaos', 'clear', 'micro-pay'])).code, 0);
    assert.deepEqual(await snapshotCluster(demo.cp), baseline);
  });

  it('chaos retries --verify: with half the payments aborted, 3 retries on 5xx leave about 0.5^4 failing; retries that do not cover 5xx fail --verify', async () => {
    assert.equal((await meshdemo(['chaos', 'abort', 'micro-pay', '500', '--percent', '50'])).code, 0);
    const bad = await meshdemo(['chaos', 'retries', 'micro-order', '3', '--retry-on', 'connect-failure', '--verify', '--requests', '400']);
    assert.equal(bad.code, 1, bad.stderr + bad.stdout.slice(-1500));
    assert.match(errorLines(bad.stderr)[0], /^error: what --verify measured is not what chaos retries applied: failed \(retries 3\) — /);
    const r = await meshdemo(['chaos', 'retries', 'micro-order', '3', '--retry-on', '5xx', '--verify', '--requests', '800', '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    const [check] = r.events().at(-1).checks;
    assert.equal(check.label, 'failed (retries 3)');
    assert.ok(check.ok && check.askedPercent < 20 && check.measuredPercent < 20, JSON.stringify(check));
    assert.equal((await meshdemo(['chaos', 'clear'])).code, 0);
    assert.deepEqual(await snapshotCluster(demo.cp), baseline);
  });

  it('chaos timeout --verify: with half the payments delayed 2s, a 1s timeout on micro-order cuts about half (504) and none is answered late; without the timeout enforced, --verify fails (none timed out)', async () => {
    assert.equal((await meshdemo(['chaos', 'delay', 'micro-pay', '2s', '--percent', '50'])).code, 0);
    const r = await meshdemo(['chaos', 'timeout', 'micro-order', '1s', '--verify', '--requests', '600', '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    const checks = r.events().at(-1).checks;
    assert.deepEqual(checks.map((c: any) => [c.label, c.ok]), [['answered within 1s', true], ['timed out (1s)', true]]);
    assert.equal(checks[1].askedPercent, 50);
    assert.ok(Math.abs(checks[1].measuredPercent - 50) <= 5, JSON.stringify(checks));
    // the route's timeout taken out while it measures: the delayed orders come late, none times out
    let changed: Promise<unknown> | undefined;
    const bad = await meshdemo(['chaos', 'timeout', 'micro-order', '1s', '--verify', '--requests', '100', '--json'], {
      onEvent: (e) => {
        if (!changed && e.type === 'log' && /^configured VirtualService\/default\/micro-order$/.test(e.message)) {
          changed = (async () => {
            const vs = (await api(`${NET}/virtualservices/micro-order`)).body;
            delete vs.spec.http[0].timeout;
            assert.equal((await api(`${NET}/virtualservices/micro-order`, 'PUT', vs)).status, 200);
            await orderRoute.synced();
          })();
        }
      },
    });
    await changed;
    assert.equal(bad.code, 1, bad.stderr + bad.stdout.slice(-1500));
    assert.match(errorLines(bad.stderr)[0], /^error: what --verify measured is not what chaos timeout applied: answered within 1s, timed out \(1s\) — /);
    assert.equal((await meshdemo(['chaos', 'clear'])).code, 0);
    assert.deepEqual(await snapshotCluster(demo.cp), baseline);
  });

  it('--dry-run prints the YAML and changes nothing', async () => {
    const r = await meshdemo(['chaos', 'delay', 'micro-order', '3s', '--percent', '50', '--dry-run']);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /kind: VirtualService[\s\S]*fixedDelay: 3s[\s\S]*value: 50/);
    assert.deepEqual(await snapshotCluster(demo.cp), baseline);
  });

  it('mtls strict --verify: a plaintext call from a pod without a sidecar is reset, the mesh path answers; permissive --verify: both answer; clear removes the PeerAuthentication (snapshot)', async () => {
    const PA = '/apis/security.istio.io/v1beta1/namespaces/default/peerauthentications';
    const marks = () => apiInbound.map((i) => i.log.length);
    const since = (from: number[]) => apiInbound.flatMap((i, k) => i.log.slice(from[k]));
    const before = marks();
    const r = await meshdemo(['mtls', 'strict', '--verify', '--requests', '40']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-1500));
    assert.deepEqual((await api(`${PA}/default`)).body.spec, { mtls: { mode: 'STRICT' } }); // PeerAuthentication.MutualTLS.mode
    assert.match(r.stdout, /^plaintext, no sidecar\s+expected refused \(connection reset\) {2}measured connection reset \(.*\) \(attempt \d\) {2}ok$/m);
    assert.match(r.stdout, /^mesh path \(gateway\)\s+expected all 40 orders answered {2}measured 40\/40 answered {2}ok$/m);
    // the sidecars refused the plaintext connection and took the gateway's in mutual TLS
    const strict = since(before);
    const afterStrict = marks();
    // no plaintext passed; the gateway's connections (kept alive across tests) are mutual TLS
    assert.ok(strict.includes('refused') && !strict.includes('plaintext'), JSON.stringify(strict));
    assert.ok(apiInbound.some((i) => i.log.includes('mtls')));
    // the probe pod lived only while it ran, and is not in the record
    assert.deepEqual((await api('/api/v1/namespaces/default/pods?labelSelector=app%3Dmeshdemo-plaintext-probe')).body.items.filter((p: any) => !p.metadata.deletionTimestamp), []);
    assert.ok(!(await record()).created.some((c: any) => c.kind === 'Pod'));

    const p = await meshdemo(['mtls', 'permissive', '--verify', '--requests', '40', '--json']);
    assert.equal(p.code, 0, p.stderr + p.stdout.slice(-1500));
    const checks = p.events().at(-1).checks;
    assert.deepEqual(checks.map((c: any) => [c.label, c.ok]), [['plaintext, no sidecar', true], ['mesh path (gateway)', true]]);
    assert.match(checks[0].measured, /^answered HTTP 200 \(attempt \d\)$/);
    assert.ok(since(afterStrict).includes('plaintext'));
    assert.equal((await meshdemo(['mtls', 'clear'])).code, 0);
    assert.equal((await api(`${PA}/default`)).status, 404);
    assert.deepEqual(await snapshotCluster(demo.cp), baseline);
  });

  it('mtls strict --verify fails (exit 1) while a workload PeerAuthentication keeps micro-api PERMISSIVE: the plaintext call is answered', async () => {
    const PA = '/apis/security.istio.io/v1beta1/namespaces/default/peerauthentications';
    const own = { apiVersion: 'security.istio.io/v1beta1', kind: 'PeerAuthentication', metadata: { name: 'micro-api-permissive', namespace: 'default' }, spec: { selector: { matchLabels: { app: 'micro-api' } }, mtls: { mode: 'PERMISSIVE' } } };
    assert.equal((await api(PA, 'POST', own)).status, 201);
    try {
      const r = await meshdemo(['mtls', 'strict', '--verify', '--requests', '20']);
      assert.equal(r.code, 1, r.stderr + r.stdout.slice(-1500));
      assert.match(errorLines(r.stderr)[0], /^error: what --verify measured is not what mtls strict does: plaintext, no sidecar — look for another PeerAuthentication/);
      assert.match(r.stdout + r.stderr, /plaintext, no sidecar\s+expected refused \(connection reset\) {2}measured answered HTTP 200 \(attempt 5\) {2}NOT as expected/);
    } finally {
      await api(`${PA}/micro-api-permissive`, 'DELETE');
    }
    assert.equal((await meshdemo(['mtls', 'clear'])).code, 0);
    assert.deepEqual(await snapshotCluster(demo.cp), baseline);
  });

  it('--render prints the YAML of the Istio objects of canary, chaos and mtls, and creates nothing', async () => {
    const docs = async (args: string[]) => {
      const r = await meshdemo([...args, '--render']);
      assert.equal(r.code, 0, r.stderr);
      return yaml.loadAll(r.stdout) as any[];
    };
    const canary = await docs(['canary', 'micro-order', '--weight', 'v2=20']);
    assert.deepEqual(canary.map((o) => `${o.kind}/${o.metadata.name}`), ['Deployment/micro-order-v2', 'DestinationRule/micro-order', 'VirtualService/micro-order']);
    assert.deepEqual(canary[2].spec.http[0].route.map((x: any) => [x.destination.subset, x.weight]), [['v1', 80], ['v2', 20]]);
    const [vs] = await docs(['chaos', 'abort', 'micro-order', '500', '--percent', '50']);
    assert.deepEqual(vs.spec.http[0].fault, { abort: { httpStatus: 500, percentage: { value: 50 } } });
    const [pa] = await docs(['mtls', 'strict']);
    assert.deepEqual([pa.apiVersion, pa.kind, pa.metadata.name, pa.spec], ['security.istio.io/v1beta1', 'PeerAuthentication', 'default', { mtls: { mode: 'STRICT' } }]);
    assert.deepEqual(await snapshotCluster(demo.cp), baseline);
  });

  it('open prints the dashboard\'s page on its node port (--no-browser), opens it with xdg-open, and --trace opens Jaeger\'s trace page', async () => {
    // something answering on the node ports at a loopback node address (kube-proxy's part, which cannot run here)
    const net = await import('node:net');
    const listeners = await Promise.all([31001, 31002, 31004].map((port) => new Promise<import('node:net').Server>((resolve, reject) => {
      const s = net.createServer((c) => c.end()).listen(port, '127.0.0.5', () => resolve(s));
      s.once('error', reject);
    })));
    // xdg-open's stand-in (xdg-utils: `xdg-open {file|URL}`, exit 0 when the browser was started): records its argument
    const bin = path.join(demo.tmp, 'bin');
    fs.mkdirSync(bin, { recursive: true });
    const opened = path.join(demo.tmp, 'opened.txt');
    fs.writeFileSync(path.join(bin, 'xdg-open'), `#!/bin/sh\nprintf '%s\\n' "$@" >> '${opened}'\n`, { mode: 0o755 });
    try {
      const k = await meshdemo(['open', 'kiali', '--no-browser', '--node-address', '127.0.0.5']);
      assert.equal(k.code, 0, k.stderr);
      assert.equal(k.stdout.trim(), 'http://127.0.0.5:31001/kiali');
      const id = '4bf92f3577b34da6a3ce929d0e0e4736';
      const t = await meshdemo(['open', '--trace', id, '--no-browser', '--node-address', '127.0.0.5']);
      assert.equal(t.code, 0, t.stderr);
      assert.equal(t.stdout.trim(), `http://127.0.0.5:31004/jaeger/trace/${id}`);
      assert.ok(!fs.existsSync(opened), '--no-browser opened nothing');
      const g = await demo.meshdemo(['open', 'jaeger', '--node-address', '127.0.0.5'], { env: { PATH: `${bin}:${process.env.PATH}` } });
      assert.equal(g.code, 0, g.stderr);
      assert.equal(fs.readFileSync(opened, 'utf8'), 'http://127.0.0.5:31004/jaeger\n');
    } finally {
      for (const l of listeners) l.close();
    }
  });

  it('a canary killed (SIGKILL) right after it created its first object leaves a record that down uses: the cluster is as before up', async () => {
    let killed = false;
    const r = await meshdemo(['canary', 'micro-order', '--weight', 'v2=20', '--json'], {
      onEvent: (e, child) => {
        if (!killed && e.type === 'log' && /^created Deployment\//.test(e.message)) {
          killed = true;
          killOwned(child);
        }
      },
    });
    assert.ok(killed, r.stdout + r.stderr);
    assert.ok((await record()).created.some((c: any) => c.name === 'micro-order-v2'));
    assert.equal((await meshdemo(['mtls', 'permissive'])).code, 0);
    assert.equal((await meshdemo(['chaos', 'breaker'])).code, 0);
    const down = await meshdemo(['down', '--yes']);
    assert.equal(down.code, 0, down.stderr);
    assert.deepEqual(await snapshotCluster(demo.cp), pristine);
  });
});

