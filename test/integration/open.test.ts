// `meshdemo open` and `expose --port-forward` when the dashboard's node port cannot be reached: a local port
// forwarded through the REAL API server (pods/<pod>/portforward) to the node's kubelet, here a stand-in
// (test/support/kubelet-standin.ts, imitating v1.20.2's WebSocket port-forwarding) on 127.0.0.1 at the port the
// simulated Node advertises. Kiali's pod comes from a real Deployment rolled out by the real controller manager;
// what listens "in" it is an HTTP server on loopback.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import http from 'node:http';
import { once } from 'node:events';
import type net from 'node:net';
import { kubeJson, type ControlPlane } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import { freePort } from '../support/docker-env.js';
import { startKubeletStandin, type KubeletStandin } from '../support/kubelet-standin.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Kiali as samples/addons/kiali.yaml (1.8.4) runs it: Service kiali (http 20001) in istio-system, a ClusterIP until exposed. */
const kialiService = {
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'kiali', namespace: 'istio-system', labels: { app: 'kiali' } },
  spec: { selector: { 'app.kubernetes.io/name': 'kiali' }, ports: [{ name: 'http', protocol: 'TCP', port: 20001 }, { name: 'http-metrics', protocol: 'TCP', port: 9090 }] },
};
const kialiDeployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'kiali', namespace: 'istio-system' },
  spec: {
    replicas: 1,
    selector: { matchLabels: { 'app.kubernetes.io/name': 'kiali' } },
    template: {
      metadata: { labels: { 'app.kubernetes.io/name': 'kiali' } },
      spec: { containers: [{ name: 'kiali', image: 'quay.io/kiali/kiali:v1.26', ports: [{ name: 'api-port', containerPort: 20001 }, { name: 'http-metrics', containerPort: 9090 }] }] },
    },
  },
};

describe('open and expose --port-forward through the API server and a kubelet stand-in', { skip, timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let kubelet: KubeletStandin;
  let pod: string;
  let kiali: http.Server;
  const demo = withDemoCluster({
    name: 'open',
    node: async () => {
      kubelet = await startKubeletStandin();
      // InternalIP 127.0.0.1 and no Hostname address: the API server reaches the kubelet on loopback only
      return { nodeName: 'open-node', kubeletPort: kubelet.port, hostnameAddress: false };
    },
  });

  before(async () => {
    cp = demo.cp;
    assert.equal((await kubeJson(cp, '/api/v1/namespaces', { method: 'POST', body: { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } } })).status, 201);
    assert.equal((await kubeJson(cp, '/api/v1/namespaces/istio-system/services', { method: 'POST', body: kialiService })).status, 201);
    assert.equal((await kubeJson(cp, '/apis/apps/v1/namespaces/istio-system/deployments', { method: 'POST', body: kialiDeployment })).status, 201);
    for (let i = 0; i < 300 && !pod; i++) {
      const list = await kubeJson(cp, '/api/v1/namespaces/istio-system/pods?labelSelector=app.kubernetes.io%2Fname%3Dkiali');
      pod = list.body.items.find((p: any) => p.status?.phase === 'Running')?.metadata.name;
      if (!pod) await sleep(200);
    }
    assert.ok(pod, 'the kiali pod runs on the simulated node');
    // what listens on the pod's port 20001: Kiali's UI under /kiali
    kiali = http.createServer((req, res) => {
      if (req.url?.startsWith('/kiali')) res.writeHead(200, { 'content-type': 'text/html' }).end('<title>Kiali Console</title>');
      else res.writeHead(404).end();
    });
    kiali.listen(0, '127.0.0.1');
    await once(kiali, 'listening');
    kubelet.listen('istio-system', pod, 20001, (kiali.address() as net.AddressInfo).port);
  });
  after(async () => {
    kiali?.closeAllConnections();
    await new Promise((r) => kiali?.close(r));
    await kubelet?.close();
  });

  /** Runs a long-lived meshdemo command until it prints its URL; returns the URL, the process and its end. */
  const startForward = async (args: string[]) => {
    let child: ChildProcess | undefined;
    let out = '';
    const run = demo.meshdemo(args, { timeoutMs: 120_000, onSpawn: (c) => (child = c), onStdout: (c) => (out += c) });
    let url: string | undefined;
    for (let i = 0; i < 600 && !url; i++) {
      url = /(http:\/\/127\.0\.0\.1:\d+\/\S*)\s+\(port-forward: Ctrl-C to stop\)/.exec(out)?.[1];
      if (!url) await Promise.race([sleep(50), run]);
    }
    if (!url) {
      const r = await run;
      assert.fail(`no port-forward URL printed (exit ${r.code}):\n${r.stdout}\n${r.stderr}`);
    }
    return { url, child: child!, run };
  };

  it('open kiali --no-browser: the node port does not answer, so a local port is forwarded to the pod; Kiali\'s page comes through it; Ctrl-C ends it (exit 130)', async () => {
    const localPort = await freePort();
    const { url, child, run } = await startForward(['open', 'kiali', '--no-browser', '--local-port', String(localPort)]);
    assert.equal(url, `http://127.0.0.1:${localPort}/kiali`);
    for (let i = 0; i < 2; i++) {
      const res = await fetch(url, { signal: AbortSignal.timeout(20_000) });
      assert.equal(res.status, 200);
      assert.equal(await res.text(), '<title>Kiali Console</title>');
    }
    // through the API server to the kubelet: the pod's port 20001 (the Service's targetPort), as `port=` (PodPortForwardOptions)
    const forwards = kubelet.requests.filter((q) => q.path === `/portForward/istio-system/${pod}`);
    assert.ok(forwards.length >= 2, 'one forwarded connection per request');
    assert.ok(forwards.every((q) => q.query.port === '20001'), JSON.stringify(forwards));
    child.kill('SIGINT');
    const r = await run;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, /kiali has no node port reachable from here: forwarding a local port through the API server/);
  });

  it('expose kiali --port-forward: when nothing listens in the pod, the connection is closed at once and the kubelet\'s error is shown', async () => {
    const localPort = await freePort();
    const { url, child, run } = await startForward(['expose', 'kiali', '--port-forward', '--local-port', String(localPort)]);
    assert.equal(new URL(url).port, String(localPort));
    kubelet.listen('istio-system', pod, 20001, 0); // Kiali stopped listening (restarting, crashed)
    try {
      const err = await fetch(url, { signal: AbortSignal.timeout(20_000) }).then(
        (res) => assert.fail(`answered ${res.status}`),
        (e: Error) => e,
      );
      assert.notEqual((err as Error).name, 'TimeoutError', 'the browser is not left waiting');
    } finally {
      kubelet.listen('istio-system', pod, 20001, (kiali.address() as net.AddressInfo).port);
      child.kill('SIGINT');
    }
    const r = await run;
    assert.equal(r.code, 130, r.stderr);
    assert.match(r.stderr, new RegExp(`port-forward to ${pod}: error forwarding port 20001 to pod ${pod}, uid : failed to execute portforward in network namespace "[^"]+": failed to dial 20001: dial tcp4 127\\.0\\.0\\.1:20001: connect: connection refused`));
  });
});
