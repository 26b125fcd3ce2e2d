// The app half of `meshdemo up` end to end: REAL API server + controller manager, REAL dockerd and registry
// (test/support/docker-env.ts, base image imported from this machine's node), REAL local release server.
// Simulated: the node (pods marked Ready by test/support/node-simulator.ts — no container really runs in the
// cluster) and istioctl (a stand-in applying the real Istio 1.8.4 manifests). So the gateway URL is computed
// from the real istio-ingressgateway Service, but no Envoy answers it; `verify` is tested against the real
// services in test/unit/services.test.ts and below against the real images run on loopback.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import { startControlPlane, type ControlPlane, kubeJson } from '../support/control-plane.js';
import { startNodeSimulator, type NodeSimulator } from '../support/node-simulator.js';
import { buildReleaseArchive, FIXTURES } from '../support/release-archive.js';
import { startReleaseServer, type ReleaseServer } from '../support/release-server.js';
import { freePort, startDockerEnv, type DockerEnv } from '../support/docker-env.js';
import { errorLines, runMeshdemo } from '../support/cli.js';
import { snapshotCluster } from '../support/snapshot.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane', 'docker');

describe('app half of up: images, deploy, gateway URL', { skip, timeout: 900_000 }, () => {
  let cp: ControlPlane;
  let sim: NodeSimulator;
  let server: ReleaseServer;
  let docker: DockerEnv;
  let tmp: string;
  let registry: string;

  const api = (p: string, method = 'GET', body?: unknown) => kubeJson(cp, p, { method, body });
  const up = (args: string[]) =>
    runMeshdemo(
      ['--kubeconfig', cp.kubeconfigPath, '--cache-dir', path.join(tmp, 'cache'), 'up', '--yes', '--istio-mirror', server.url, '--registry', registry, '--base-image', docker.baseImage, ...args],
      { env: { DOCKER_HOST: docker.dockerHost }, timeoutMs: 600_000 },
    );

  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-app-'));
    const archive = await buildReleaseArchive({ outDir: path.join(tmp, 'release') });
    server = await startReleaseServer({ '1.8.4/istio-1.8.4-linux-amd64.tar.gz': archive.path });
    [cp, docker] = await Promise.all([startControlPlane(), startDockerEnv()]);
    sim = await startNodeSimulator(cp.kubeconfigPath);
    registry = `${docker.registry}/micro-service`;
  });
  after(async () => {
    await sim?.stop();
    await cp?.stop();
    await docker?.stop();
    await server?.close();
    fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('a first up builds and pushes the images, deploys the app, and ends with the gateway and dashboard URLs', async () => {
    const r = await up(['--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-3000));
    const events = r.events();
    const done = events.filter((e) => e.type === 'step' && e.status === 'done').map((e) => e.id);
    assert.deepEqual(done, ['preflight', 'tools-preflight', 'istio-download', 'istio-install', 'namespace-label', 'addons', 'dashboards', 'images', 'app-deploy', 'gateway-url']);
    assert.match(events.find((e) => e.id === 'images' && e.status === 'done').message, /3 built/);

    const gw = await api('/api/v1/namespaces/istio-system/services/istio-ingressgateway');
    const http2 = gw.body.spec.ports.find((p: any) => p.name === 'http2').nodePort;
    const result = events.at(-1);
    assert.equal(result.ok, true);
    assert.equal(result.urls.gateway, `http://127.0.0.1:${http2}/api/order/create`);
    assert.equal(result.urls.kiali, 'http://127.0.0.1:31001/kiali');
    assert.match(r.stderr, new RegExp(`gateway\\s+http://127\\.0\\.0\\.1:${http2}/api/order/create`));

    // the three Deployments run the pushed images and rolled out through the real controllers
    const tags = async (svc: string) => (await (await fetch(`http://${docker.registry}/v2/micro-service/${svc}/tags/list`)).json()).tags as string[];
    for (const [name, replicas] of [['micro-api', 1], ['micro-order', 2], ['micro-pay', 1]] as const) {
      const d = (await api(`/apis/apps/v1/namespaces/default/deployments/${name}`)).body;
      assert.equal(d.status.availableReplicas, replicas, `${name} available`);
      const image: string = d.spec.template.spec.containers[0].image;
      assert.ok(image.startsWith(`${registry}/${name}:`), image);
      assert.deepEqual(await tags(name), [image.split(':').at(-1)]);
      assert.deepEqual(d.spec.template.metadata.labels, { app: name, version: 'v1' });
    }
    const pay = (await api('/api/v1/namespaces/default/services/micro-pay')).body;
    assert.deepEqual(pay.spec.ports.map((p: any) => [p.name, p.port]), [['grpc', 18888]]);
    const vs = (await api('/apis/networking.istio.io/v1alpha3/namespaces/default/virtualservices/micro-api')).body;
    assert.deepEqual(vs.spec.http[0].match[0].uri, { exact: '/api/order/create' });
    assert.deepEqual(vs.spec.gateways, ['micro-gateway']);
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
  });

  it('the pushed images answer the whole chain when run as containers on loopback', async () => {
    const d = async (name: string) => (await api(`/apis/apps/v1/namespaces/default/deployments/${name}`)).body.spec.template.spec.containers[0].image;
    const [payGrpc, payHttp, orderPort, apiPort] = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
    const started: string[] = [];
    const run = async (image: string, env: Record<string, string | number>) => {
      const args = ['run', '-d', '--network', 'host', ...Object.entries(env).flatMap(([k, v]) => ['-e', `${k}=${v}`]), image];
      started.push((await docker.docker(args)).stdout.trim());
    };
    try {
      await run(await d('micro-pay'), { HOST: '127.0.0.1', GRPC_PORT: payGrpc, HTTP_PORT: payHttp });
      await run(await d('micro-order'), { HOST: '127.0.0.1', PORT: orderPort, GRPC_SERVER_HOST: '127.0.0.1', GRPC_SERVER_PORT: payGrpc });
      await run(await d('micro-api'), { HOST: '127.0.0.1', PORT: apiPort, ORDER_URL: `http://127.0.0.1:${orderPort}/order/create` });
      const url = `http://127.0.0.1:${apiPort}/api/order/create`;
      for (let i = 0; i < 50; i++) {
        if (await fetch(`http://127.0.0.1:${apiPort}/ready`).then((res) => res.ok, () => false)) break;
        await new Promise((res) => setTimeout(res, 200));
      }
      const r = await runMeshdemo(['verify', '--url', url, '--count', '3', '--json']);
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
      'Deployment/micro-api', 'Deployment/micro-order', 'Deployment/micro-pay', 'Gateway/micro-gateway',
      'Service/micro-api', 'Service/micro-order', 'Service/micro-pay', 'VirtualService/micro-api',
    ]);
    assert.ok(docs.every((d) => d.metadata.namespace === 'shop'));
    assert.ok(docs.filter((d) => d.kind === 'Deployment').every((d) => d.spec.template.spec.containers[0].image.startsWith(`${registry}/`)));
    assert.deepEqual(await snapshotCluster(cp), before);
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
