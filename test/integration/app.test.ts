// The app half of `meshdemo up` end to end: REAL API server + controller manager, REAL dockerd and registry
// (test/support/docker-env.ts, base image imported from this machine's node), REAL local release server.
// Simulated: the node (pods marked Ready by test/support/node-simulator.ts — no container really runs in the
// cluster) and istioctl (a stand-in applying the real Istio 1.8.4 manifests). So the gateway URL is computed
// from the real istio-ingressgateway Service, but no Envoy answers it; `verify` is tested against the real
// services in test/unit/services.test.ts and below against the real images run on loopback.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { type ControlPlane, kubeJson } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import { FIXTURES } from '../support/release-archive.js';
import { freePort, type DockerEnv } from '../support/docker-env.js';
import { errorLines, runMeshdemo } from '../support/cli.js';
import { snapshotCluster } from '../support/snapshot.js';
import { startLocalChain } from '../support/local-services.js';
import { startRoundRobin } from '../support/round-robin.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane', 'docker');

describe('app half of up: images, deploy, gateway URL', { skip, timeout: 900_000 }, () => {
  const demo = withDemoCluster({ name: 'app', release: 'server', docker: true, meshdemo: { timeoutMs: 600_000 } });
  const { api } = demo;
  let cp: ControlPlane;
  let docker: DockerEnv;
  let tmp: string;
  let registry: string;

  const up = (args: string[]) =>
    demo.meshdemo(['up', '--yes', '--istio-mirror', demo.server.url, '--registry', registry, '--base-image', docker.baseImage, ...args]);

  before(() => {
    ({ cp, docker, tmp } = demo);
    registry = `${docker.registry}/micro-service`;
  });

  it('a first up builds and pushes the images, deploys the app, and ends with the gateway and dashboard URLs', async () => {
    const r = await up(['--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-3000));
    const events = r.events();
    const done = events.filter((e) => e.type === 'step' && e.status === 'done').map((e) => e.id);
    // the Istio half may finish in any order (its steps run side by side); the app half starts after all of it
    assert.deepEqual([...done.slice(0, -3)].sort(), ['preflight', 'tools-preflight', 'istio-download', 'istio-namespace', 'istio-install', 'namespace-label', 'addons', 'dashboards'].sort());
    assert.deepEqual(done.slice(-3), ['images', 'app-deploy', 'gateway-url']);
    assert.match(events.find((e) => e.id === 'images' && e.status === 'done').message, /3 built/);

    const gw = await api('/api/v1/namespaces/istio-system/services/istio-ingressgateway');
    const http2 = gw.body.spec.ports.find((p: any) => p.name === 'http2').nodePort;
    const result = events.at(-1);
    assert.equal(result.ok, true);
    assert.equal(result.urls.gateway, `http://127.0.0.1:${http2}/api/order/create`);
    assert.equal(result.urls.kiali, 'http://127.0.0.1:31001/kiali');
    // 1.8.4's jaeger.yaml sets QUERY_BASE_PATH=/jaeger: the UI is there, / is a 404
    assert.equal(result.urls.tracing, 'http://127.0.0.1:31004/jaeger');
    // the tutorial's SECURE_INGRESS_PORT: the gateway's https nodePort
    const https = gw.body.spec.ports.find((p: any) => p.name === 'https').nodePort;
    assert.equal(result.urls.https, `https://127.0.0.1:${https}`);
    assert.match(r.stderr, new RegExp(`https\\s+https://127\\.0\\.0\\.1:${https}$`, 'm'));
    assert.match(r.stderr, new RegExp(`gateway\\s+http://127\\.0\\.0\\.1:${http2}/api/order/create`));

    // the tutorial's names, labels and ports (micro-order.yaml, micro-api.yaml, micro-pay.yaml, micro-gateway.yaml);
    // the three Deployments run the pushed images and rolled out through the real controllers
    const tags = async (svc: string) => (await (await fetch(`http://${docker.registry}/v2/micro-service/${svc}/tags/list`)).json()).tags as string[];
    for (const [name, svc, replicas, port] of [['micro-api', 'micro-api', 1, 9090], ['micro-order-v1', 'micro-order', 2, 9091], ['micro-pay-v1', 'micro-pay', 2, 18888]] as const) {
      const d = (await api(`/apis/apps/v1/namespaces/default/deployments/${name}`)).body;
      assert.equal(d.spec.replicas, replicas, `${name} replicas`);
      assert.equal(d.status.availableReplicas, replicas, `${name} available`);
      const container = d.spec.template.spec.containers[0];
      assert.ok(container.image.startsWith(`${registry}/${svc}:`), container.image);
      assert.deepEqual(await tags(svc), [container.image.split(':').at(-1)]);
      assert.deepEqual(d.spec.template.metadata.labels, { app: svc, version: 'v1' });
      assert.deepEqual(d.spec.selector.matchLabels, { app: svc, version: 'v1' });
      assert.equal(container.ports[0].containerPort, port, `${name} container port`);
    }
    const pods = (await api('/api/v1/namespaces/default/pods?labelSelector=app%3Dmicro-order')).body.items.filter((p: any) => !p.metadata.deletionTimestamp);
    assert.equal(pods.length, 2);
    assert.ok(pods.every((p: any) => p.metadata.name.startsWith('micro-order-v1-')), pods.map((p: any) => p.metadata.name).join(' '));
    const ports = async (svc: string) => (await api(`/api/v1/namespaces/default/services/${svc}`)).body.spec.ports.map((p: any) => [p.name, p.port, p.targetPort]);
    assert.deepEqual(await ports('micro-api'), [['http', 19090, 9090]]);
    assert.deepEqual(await ports('micro-order'), [['http', 80, 9091]]);
    // micro-pay.yaml: http 19092 → 9092 and grpc 18888
    assert.deepEqual(await ports('micro-pay'), [['http', 19092, 9092], ['grpc', 18888, 18888]]);
    const vs = (await api('/apis/networking.istio.io/v1alpha3/namespaces/default/virtualservices/micro-gateway')).body;
    assert.deepEqual(vs.spec.hosts, ['*']);
    assert.deepEqual(vs.spec.gateways, ['micro-gateway']);
    assert.deepEqual(vs.spec.http[0].match[0].uri, { exact: '/api/order/create' });
    assert.deepEqual(vs.spec.http[0].route[0].destination, { host: 'micro-api', port: { number: 19090 } });
    // the previous version's names are not used
    assert.equal((await api('/apis/apps/v1/namespaces/default/deployments/micro-order')).status, 404);
    assert.equal((await api('/apis/networking.istio.io/v1alpha3/namespaces/default/virtualservices/micro-api')).status, 404);
    const gateway = (await api('/apis/networking.istio.io/v1alpha3/namespaces/default/gateways/micro-gateway')).body;
    assert.deepEqual(gateway.spec.selector, { istio: 'ingressgateway' });
    // the stand-in installs no sidecar injector, so meshdemo must say the pods have no sidecar
    assert.ok(events.some((e) => e.type === 'log' && e.level === 'warn' && /no istio-proxy sidecar/.test(e.message)));
  });

  it('a second up rebuilds and pushes nothing and changes nothing', async () => {
    const before = await snapshotCluster(cp);
    const r = await up(['--json']);
    assert.equal(r.code, 0, r.stderr);
    const ran = r.events().filter((e) => e.type === 'step' && e.status === 'done').map((e) => e.id);
    assert.deepEqual(ran, ['preflight', 'tools-preflight', 'gateway-url'], 'only read-only steps ran');
    assert.match(r.events().find((e) => e.id === 'images' && e.status === 'skipped')?.message, /^all 3 images are in registry /);
    assert.deepEqual(await snapshotCluster(cp), before);

    // status names the Deployments as the tutorial does (kubectl get deploy micro-order-v1)
    const status = await runMeshdemo(['--kubeconfig', cp.kubeconfigPath, '--cache-dir', path.join(tmp, 'cache'), 'status']);
    assert.equal(status.code, 0, status.stderr);
    assert.match(status.stdout, /^app {9}deployed \(deployments micro-api ready, micro-order-v1 ready, micro-pay-v1 ready\)$/m);
  });

  it('up --verify --traffic 2s: after up, steady orders through the gateway URL up printed, with the share per pod and a Jaeger link', async () => {
    // no Envoy runs here: the ingress gateway's http2 nodePort on the node address (127.0.0.1) is answered by a
    // forwarder (standing in for kube-proxy and the gateway) to the demo chain running locally, two micro-order
    const gw = await api('/api/v1/namespaces/istio-system/services/istio-ingressgateway');
    const http2 = gw.body.spec.ports.find((p: any) => p.name === 'http2').nodePort;
    const chain = await startLocalChain({ orderInstances: 2 });
    const gateway = await startRoundRobin([new URL(chain.url).origin], { port: http2 });
    try {
      const r = await up(['--verify', '--traffic', '2s', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const events = r.events();
      // --verify: the sample orders' summary ends with the last order's trace link
      const verified = events.find((e) => e.type === 'step' && e.id === 'gateway-url' && e.status === 'done');
      assert.match(verified.message, /6\/6 orders succeeded, .*; trace http:\/\/127\.0\.0\.1:31004\/jaeger\/trace\/[0-9a-f]{32}$/);
      const result = events.findIndex((e) => e.type === 'result');
      const summaryAt = events.findIndex((e) => e.type === 'traffic' && e.phase === 'summary');
      assert.ok(result >= 0 && summaryAt > result, 'traffic runs after up has printed its URLs');
      const t = events[summaryAt];
      assert.equal(t.url, `http://127.0.0.1:${http2}/api/order/create`);
      assert.equal(t.interrupted, false);
      assert.ok(t.sent > 0);
      assert.equal(t.ok, t.sent, JSON.stringify(t.errorKinds));
      assert.equal(gateway.counts[0], 6 + t.sent, 'every order (6 from --verify, then the traffic) went through the gateway port');
      // at 10/s for 2s up to 20 orders, taken in turn: both micro-order instances answered
      assert.ok(t.sent >= 2, `sent ${t.sent}`);
      assert.deepEqual(Object.keys(t.servedBy).sort(), chain.orderPods.map((p) => `${p}/v1`).sort());
      // the tracing dashboard is on its NodePort (31004): the link points at Jaeger's UI under /jaeger
      assert.equal(t.traceUrl, `http://127.0.0.1:31004/jaeger/trace/${t.traceId}`);
    } finally {
      await gateway.close();
      await chain.stop();
    }
  });

  it("an up over the previous meshdemo version's app replaces its objects and keeps the record true; down then removes all", async () => {
    // what the previous version deployed (its templates/manifests/app.yaml): Deployment micro-order, Service
    // micro-api on port 80, VirtualService micro-api — applied as that version applied (server-side apply, field
    // manager meshdemo, managed-by label; its Services had no port protocol, which 1.20 cannot apply, so they were
    // created with a plain create) and recorded in its inventory
    const ns = 'legacy';
    const labels = { 'app.kubernetes.io/managed-by': 'meshdemo' };
    assert.equal((await api('/api/v1/namespaces', 'POST', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: ns, labels } })).status, 201);
    const image = (await api('/apis/apps/v1/namespaces/default/deployments/micro-order-v1')).body.spec.template.spec.containers[0].image;
    const old = [
      { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'micro-order', namespace: ns, labels: { ...labels, app: 'micro-order', version: 'v1' } },
        spec: { replicas: 2, selector: { matchLabels: { app: 'micro-order', version: 'v1' } }, template: { metadata: { labels: { app: 'micro-order', version: 'v1' } }, spec: { containers: [{ name: 'micro-order', image, ports: [{ name: 'http', containerPort: 9091 }] }] } } } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'micro-api', namespace: ns, labels: { ...labels, app: 'micro-api', service: 'micro-api' } },
        spec: { selector: { app: 'micro-api' }, ports: [{ name: 'http', port: 80, targetPort: 'http' }] } },
      { apiVersion: 'networking.istio.io/v1alpha3', kind: 'VirtualService', metadata: { name: 'micro-api', namespace: ns, labels },
        spec: { hosts: ['*'], gateways: ['micro-gateway'], http: [{ match: [{ uri: { exact: '/api/order/create' } }], route: [{ destination: { host: 'micro-api', port: { number: 80 } } }] }] } },
    ];
    const payImage = (await api('/apis/apps/v1/namespaces/default/deployments/micro-pay-v1')).body.spec.template.spec.containers[0].image;
    old.push({ apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'micro-pay', namespace: ns, labels: { ...labels, app: 'micro-pay', version: 'v1' } },
      spec: { replicas: 1, selector: { matchLabels: { app: 'micro-pay', version: 'v1' } }, template: { metadata: { labels: { app: 'micro-pay', version: 'v1' } }, spec: { containers: [{ name: 'micro-pay', image: payImage, ports: [{ name: 'grpc', containerPort: 18888 }] }] } } } } as any);
    const paths = ['/apis/apps/v1/namespaces/legacy/deployments/micro-order', '/api/v1/namespaces/legacy/services/micro-api', '/apis/networking.istio.io/v1alpha3/namespaces/legacy/virtualservices/micro-api', '/apis/apps/v1/namespaces/legacy/deployments/micro-pay'];
    const created = [];
    for (const [i, o] of old.entries()) {
      let r = await kubeJson(cp, `${paths[i]}?fieldManager=meshdemo&force=true`, { method: 'PATCH', body: o, contentType: 'application/apply-patch+yaml' });
      if (r.status === 500 && /typed patch object/.test(r.body.message)) r = await kubeJson(cp, `${paths[i].replace(/\/[^/]+$/, '')}?fieldManager=meshdemo`, { method: 'POST', body: o });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      created.push({ apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace: ns, uid: r.body.metadata.uid, step: 'app-deploy' });
    }
    const inventory = { version: 1, namespace: ns, createdNamespaces: [ns], created, changed: [], images: [], steps: {} };
    assert.equal((await api(`/api/v1/namespaces/${ns}/configmaps`, 'POST', { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'meshdemo-inventory', namespace: ns, labels }, data: { 'inventory.json': JSON.stringify(inventory) } })).status, 201);

    const r = await up(['--namespace', ns, '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-2000));
    const logs = r.events().filter((e) => e.type === 'log').map((e) => e.message);
    assert.ok(logs.includes(`replaced Deployment/${ns}/micro-order of an earlier meshdemo version`), logs.join('\n'));
    assert.ok(logs.includes(`replaced VirtualService/${ns}/micro-api of an earlier meshdemo version`), logs.join('\n'));
    assert.ok(logs.includes(`replaced Deployment/${ns}/micro-pay of an earlier meshdemo version`), logs.join('\n'));
    assert.equal((await api(paths[0])).status, 404);
    assert.equal((await api(paths[2])).status, 404);
    assert.equal((await api(paths[3])).status, 404);
    assert.equal((await api(`/apis/apps/v1/namespaces/${ns}/deployments/micro-pay-v1`)).body.status.availableReplicas, 2);
    // the Service kept its name: its port is the tutorial's now, and the old port 80 is gone
    assert.deepEqual((await api(paths[1])).body.spec.ports.map((p: any) => [p.name, p.port, p.targetPort]), [['http', 19090, 9090]]);
    assert.equal((await api(`/apis/apps/v1/namespaces/${ns}/deployments/micro-order-v1`)).body.status.availableReplicas, 2);

    const record = JSON.parse((await api(`/api/v1/namespaces/${ns}/configmaps/meshdemo-inventory`)).body.data['inventory.json']);
    const names = record.created.filter((c: any) => c.namespace === ns).map((c: any) => `${c.kind}/${c.name}`).sort();
    assert.deepEqual(names, ['Deployment/micro-api', 'Deployment/micro-order-v1', 'Deployment/micro-pay-v1', 'Gateway/micro-gateway', 'Service/micro-api', 'Service/micro-order', 'Service/micro-pay', 'VirtualService/micro-gateway']);

    // a second up finds nothing to replace
    const again = await up(['--namespace', ns, '--json']);
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.events().filter((e) => e.type === 'step' && e.id === 'app-deploy').at(-1)?.status, 'skipped');

    const down = await runMeshdemo(['--kubeconfig', cp.kubeconfigPath, '--cache-dir', path.join(tmp, 'cache'), '--namespace', ns, 'down', '--yes', '--keep-istio'], { timeoutMs: 300_000 });
    assert.equal(down.code, 0, down.stderr);
    for (const p of [`/apis/apps/v1/namespaces/${ns}/deployments/micro-order-v1`, paths[1], `/apis/networking.istio.io/v1alpha3/namespaces/${ns}/virtualservices/micro-gateway`]) {
      const left = await api(p);
      assert.ok(left.status === 404 || left.body?.metadata?.deletionTimestamp, `${p} left behind`);
    }
  });

  it("the pushed images, run as containers on loopback, answer the tutorial's request with the ResponseResult body, and 9996/9998/9999", async () => {
    const d = async (name: string) => (await api(`/apis/apps/v1/namespaces/default/deployments/${name}`)).body.spec.template.spec.containers[0].image;
    const [payGrpc, payHttp, orderPort, apiPort, deadPort] = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort()]);
    const started: string[] = [];
    const run = async (image: string, env: Record<string, string | number>) => {
      const args = ['run', '-d', '--network', 'host', ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]), image];
      started.push((await docker.docker(args)).stdout.trim());
    };
    const ready = async (port: number) => {
      for (let i = 0; i < 100; i++) {
        if (await fetch(`http://127.0.0.1:${port}/ready`).then((res) => res.ok, () => false)) return;
        await new Promise((res) => setTimeout(res, 200));
      }
      assert.fail(`nothing ready on 127.0.0.1:${port}`);
    };
    const post = async (url: string, body: unknown, method = 'POST') => {
      const res = await fetch(url, { method, headers: { 'content-type': 'application/json', 'x-b3-traceid': '463ac35c9f6413ad48485a3953bb6124' }, body: method === 'GET' ? undefined : JSON.stringify(body) });
      return { status: res.status, headers: res.headers, json: (await res.json()) as any };
    };
    const order = { businessId: 'Y2021040819', amount: 100, channel: 1 };
    try {
      await run(await d('micro-pay-v1'), { HOST: '127.0.0.1', GRPC_PORT: payGrpc, HTTP_PORT: payHttp });
      await run(await d('micro-order-v1'), { HOST: '127.0.0.1', PORT: orderPort, GRPC_SERVER_HOST: '127.0.0.1', GRPC_SERVER_PORT: payGrpc });
      await run(await d('micro-api'), { HOST: '127.0.0.1', PORT: apiPort, ORDER_URL: `http://127.0.0.1:${orderPort}/order/create` });
      await Promise.all([ready(payHttp), ready(orderPort), ready(apiPort)]);
      const apiUrl = `http://127.0.0.1:${apiPort}/api/order/create`;
      const orderUrl = `http://127.0.0.1:${orderPort}/order/create`;
      for (const url of [apiUrl, orderUrl]) {
        const ok = await post(url, order);
        assert.equal(ok.status, 200, JSON.stringify(ok.json));
        assert.deepEqual(Object.keys(ok.json), ['code', 'message', 'data']);
        assert.equal(ok.json.code, 0);
        assert.equal(ok.json.message, '成功');
        assert.equal(ok.json.data.status, 2);
        assert.match(ok.json.data.orderId, /^\d{23}$/);
        const wrongMethod = await post(url, undefined, 'GET');
        assert.equal(wrongMethod.status, 405);
        assert.equal(wrongMethod.json.code, 9996);
        const bad = await post(url, { ...order, amount: 'lots' });
        assert.equal(bad.status, 400);
        assert.deepEqual(Object.keys(bad.json), ['code', 'message']);
        assert.equal(bad.json.code, 9998);
        assert.match(bad.json.message, /amount/);
      }
      assert.equal((await post(apiUrl, order)).headers.get('x-b3-traceid'), '463ac35c9f6413ad48485a3953bb6124');

      // micro-order whose micro-pay is gone: 9999 from micro-order, and the same code and message through micro-api
      const [order2, api2] = await Promise.all([freePort(), freePort()]);
      await run(await d('micro-order-v1'), { HOST: '127.0.0.1', PORT: order2, GRPC_SERVER_HOST: '127.0.0.1', GRPC_SERVER_PORT: deadPort });
      await run(await d('micro-api'), { HOST: '127.0.0.1', PORT: api2, ORDER_URL: `http://127.0.0.1:${order2}/order/create` });
      await Promise.all([ready(order2), ready(api2)]);
      const direct = await post(`http://127.0.0.1:${order2}/order/create`, order);
      assert.equal(direct.status, 500);
      assert.equal(direct.json.code, 9999);
      assert.match(direct.json.message, /^micro-pay doPay failed: UNAVAILABLE/);
      const through = await post(`http://127.0.0.1:${api2}/api/order/create`, order);
      assert.equal(through.status, 500);
      assert.equal(through.json.code, 9999);
      assert.match(through.json.message, /^micro-pay doPay failed: UNAVAILABLE/);

      const r = await runMeshdemo(['verify', '--url', apiUrl, '--count', '3', '--json']);
      assert.equal(r.code, 0, r.stderr);
      const result = r.events().at(-1);
      assert.equal(result.ok, 3);
      assert.equal(Object.values(result.servedBy as Record<string, number>).reduce((a, b) => a + b, 0), 3);
    } finally {
      for (const id of started) await docker.docker(['rm', '-f', id]).catch(() => {});
    }
  });

  it('--render writes the manifests and touches nothing', async () => {
    const before = await snapshotCluster(cp);
    const dir = path.join(tmp, 'rendered');
    const r = await up(['--render', dir, '--namespace', 'shop']);
    assert.equal(r.code, 0, r.stderr);
    const docs = yaml.loadAll(fs.readFileSync(path.join(dir, 'app.yaml'), 'utf8')) as any[];
    assert.deepEqual(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort(), [
      'Deployment/micro-api', 'Deployment/micro-order-v1', 'Deployment/micro-pay-v1', 'Gateway/micro-gateway',
      'Service/micro-api', 'Service/micro-order', 'Service/micro-pay', 'VirtualService/micro-gateway',
    ]);
    const byName = (kind: string, name: string) => docs.find((d) => d.kind === kind && d.metadata.name === name);
    assert.deepEqual(byName('Deployment', 'micro-order-v1').spec.template.metadata.labels, { app: 'micro-order', version: 'v1' });
    assert.equal(byName('Deployment', 'micro-order-v1').spec.replicas, 2);
    assert.deepEqual(byName('Service', 'micro-api').spec.ports, [{ name: 'http', protocol: 'TCP', port: 19090, targetPort: 9090 }]);
    assert.deepEqual(byName('Service', 'micro-order').spec.ports, [{ name: 'http', protocol: 'TCP', port: 80, targetPort: 9091 }]);
    assert.deepEqual(byName('VirtualService', 'micro-gateway').spec.http[0].route[0].destination, { host: 'micro-api', port: { number: 19090 } });
    assert.ok(docs.every((d) => d.metadata.namespace === 'shop'));
    assert.ok(docs.filter((d) => d.kind === 'Deployment').every((d) => d.spec.template.spec.containers[0].image.startsWith(`${registry}/`)));
    assert.deepEqual(await snapshotCluster(cp), before);
  });

  it('--render with no directory prints the manifests alone on stdout, and needs no cluster with --skip-build', async () => {
    const images = ['micro-api=reg.example/micro-api:1', 'micro-order=reg.example/micro-order:1', 'micro-pay=reg.example/micro-pay:1'];
    const r = await demo.meshdemo(['up', '--render', '--skip-build', ...images.flatMap((i) => ['--image', i])], { kubeconfig: path.join(tmp, 'no-such-kubeconfig') });
    assert.equal(r.code, 0, r.stderr);
    // `> app.yaml` is a manifest file: every document an object, nothing after the YAML
    const docs = (yaml.loadAll(r.stdout) as any[]).filter((d) => d !== null && d !== undefined);
    assert.deepEqual(docs.map((d) => `${d.kind}/${d.metadata.name}`).sort(), [
      'Deployment/micro-api', 'Deployment/micro-order-v1', 'Deployment/micro-pay-v1', 'Gateway/micro-gateway',
      'Service/micro-api', 'Service/micro-order', 'Service/micro-pay', 'VirtualService/micro-gateway',
    ]);
    for (const d of docs) assert.deepEqual(Object.keys(d).sort(), ['apiVersion', 'kind', 'metadata', 'spec'], `${d.kind}/${d.metadata.name}: no stray key`);
    assert.ok(docs.every((d) => d.metadata.namespace === 'default'));
    assert.deepEqual(docs.filter((d) => d.kind === 'Deployment').map((d) => d.spec.template.spec.containers[0].image).sort(), images.map((i) => i.split('=')[1]).sort());
  });

  it('names the failing sidecar-injector webhook when app pods cannot be created (exit 4)', async () => {
    const gen = yaml.loadAll(fs.readFileSync(path.join(FIXTURES, 'manifests/charts/istio-control/istio-discovery/files/gen-istio.yaml'), 'utf8')) as any[];
    const webhook = gen.find((d) => d?.kind === 'MutatingWebhookConfiguration');
    const created = await api('/apis/admissionregistration.k8s.io/v1beta1/mutatingwebhookconfigurations', 'POST', webhook);
    assert.equal(created.status, 201, JSON.stringify(created.body));
    try {
      const r = await up(['--namespace', 'webhooked', '--timeout', '10s']);
      assert.equal(r.code, 4, r.stderr);
      assert.match(errorLines(r.stderr)[0], /webhooked\/micro-api.*not ready before the deadline/);
      assert.match(r.stderr, /no pods were created/);
      assert.match(r.stderr, /sidecar-injector\.istio\.io/);
    } finally {
      await api(`/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations/${webhook.metadata.name}`, 'DELETE');
    }
  });
});
