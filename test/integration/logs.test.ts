// `meshdemo logs` end to end: the REAL API server serves pods/<pod>/log by calling the node's kubelet, here a
// stand-in (test/support/kubelet-standin.ts, imitating pkg/kubelet/server/server.go's containerLogs) on
// 127.0.0.1 at the port the simulated Node advertises. Pods come from a real Deployment rolled out by the real
// controller manager onto the simulated node, shaped as the sidecar injector leaves them (app + istio-proxy).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { kubeJson, type ControlPlane } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import { startKubeletStandin, type KubeletStandin } from '../support/kubelet-standin.js';
import { errorLines, runMeshdemo } from '../support/cli.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** micro-order-v1 as `up` deploys it, after injection: the app container and the istio-proxy sidecar. */
const deployment = {
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name: 'micro-order-v1', namespace: 'default', labels: { app: 'micro-order', version: 'v1' } },
  spec: {
    replicas: 2,
    selector: { matchLabels: { app: 'micro-order', version: 'v1' } },
    template: {
      metadata: { labels: { app: 'micro-order', version: 'v1' } },
      spec: {
        containers: [
          { name: 'micro-order', image: 'registry.local/micro-service/micro-order:1', ports: [{ name: 'http', containerPort: 9091 }] },
          { name: 'istio-proxy', image: 'docker.io/istio/proxyv2:1.8.4', args: ['proxy', 'sidecar'] },
        ],
      },
    },
  },
};

/** An Envoy access-log line as the tutorial's section 4 reads it (Istio 1.8 default TEXT format). */
const accessLog = (n: number, pod: string) =>
  `[2021-04-08T07:${String(10 + n).padStart(2, '0')}:00.000Z] "POST /order/create HTTP/1.1" 200 - via_upstream - "-" 52 86 ${10 + n} ${9 + n} "-" "curl/7.64.1" "req-${pod}-${n}" "micro-order" "127.0.0.1:9091" inbound|80|| 127.0.0.6:0 127.0.0.1:9091 127.0.0.1:0 outbound_.80_._.micro-order.default.svc.cluster.local default`;

describe('meshdemo logs through the API server and a kubelet stand-in', { skip, timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let kubelet: KubeletStandin;
  let pods: string[] = [];
  const demo = withDemoCluster({
    name: 'logs',
    node: async () => {
      kubelet = await startKubeletStandin();
      // no Hostname address: the API server prefers it (--kubelet-preferred-address-types starts with Hostname) and
      // would resolve the node name through DNS; InternalIP 127.0.0.1 keeps every byte on this machine
      return { nodeName: 'logs-node', kubeletPort: kubelet.port, hostnameAddress: false };
    },
  });
  const meshdemo = (args: string[], opts: Parameters<typeof runMeshdemo>[1] = {}) => demo.meshdemo(args, { timeoutMs: 60_000, ...opts });

  before(async () => {
    cp = demo.cp;
    const created = await kubeJson(cp, '/apis/apps/v1/namespaces/default/deployments', { method: 'POST', body: deployment });
    assert.equal(created.status, 201, JSON.stringify(created.body));
    for (let i = 0; i < 300 && pods.length < 2; i++) {
      const list = await kubeJson(cp, '/api/v1/namespaces/default/pods?labelSelector=app%3Dmicro-order');
      pods = list.body.items.filter((p: any) => p.status?.phase === 'Running' && p.spec.nodeName === 'logs-node').map((p: any) => p.metadata.name).sort();
      if (pods.length < 2) await sleep(200);
    }
    assert.equal(pods.length, 2, 'two micro-order-v1 pods running on the simulated node');
    for (const pod of pods) {
      kubelet.addPod('default', pod, {
        'micro-order': [`{"level":"info","svc":"micro-order","msg":"listening","servedBy":"${pod}/v1"}`],
        'istio-proxy': [accessLog(1, pod), accessLog(2, pod)],
      });
    }
  });
  after(() => kubelet?.close());

  it('logs micro-order --proxy prints both pods\' sidecar lines, each prefixed with its pod', async () => {
    const r = await meshdemo(['logs', 'micro-order', '--proxy']);
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.equal(lines.length, 4, r.stdout);
    for (const pod of pods) {
      for (const n of [1, 2]) assert.ok(lines.includes(`[pod/${pod}/istio-proxy] ${accessLog(n, pod)}`), `${pod} line ${n} in\n${r.stdout}`);
    }
    // the API server asked the node's kubelet for each pod's istio-proxy container
    const asked = kubelet.requests.map((q) => q.path);
    for (const pod of pods) assert.ok(asked.includes(`/containerLogs/default/${pod}/istio-proxy`), asked.join('\n'));
  });

  it("without --proxy: the app container's log; --since 10m asks the kubelet for sinceSeconds=600 and old lines stay out", async () => {
    const r = await meshdemo(['logs', 'micro-order']);
    assert.equal(r.code, 0, r.stderr);
    for (const pod of pods) assert.match(r.stdout, new RegExp(`^\\[pod/${pod}/micro-order\\] .*"msg":"listening","servedBy":"${pod}/v1"`, 'm'));
    assert.doesNotMatch(r.stdout, /istio-proxy/);

    // an hour-old pod log, then a fresh line: only the fresh one is newer than 10 minutes
    kubelet.addPod('default', pods[0], { 'micro-order': ['written an hour ago'], 'istio-proxy': [] }, { ageSeconds: 3600 });
    kubelet.write('default', pods[0], 'micro-order', 'written just now');
    const before = kubelet.requests.length;
    const s = await meshdemo(['logs', 'micro-order', '--since', '10m']);
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, new RegExp(`^\\[pod/${pods[0]}/micro-order\\] written just now$`, 'm'));
    assert.doesNotMatch(s.stdout, /an hour ago/);
    const sent = kubelet.requests.slice(before);
    assert.equal(sent.length, 2);
    assert.ok(sent.every((q) => q.query.sinceSeconds === '600'), JSON.stringify(sent));
  });

  it('-f follows: lines written later arrive prefixed, Ctrl-C ends it with exit 130', async () => {
    let child: ChildProcess | undefined;
    let out = '';
    const run = meshdemo(['logs', 'micro-order', '--proxy', '-f'], { onSpawn: (c) => (child = c), onStdout: (c) => (out += c) });
    for (let i = 0; i < 300 && kubelet.followers() < 2; i++) await sleep(50);
    assert.equal(kubelet.followers(), 2, 'one follow stream per pod reached the kubelet');
    assert.ok(kubelet.requests.filter((q) => q.query.follow === 'true').length >= 2);
    kubelet.write('default', pods[1], 'istio-proxy', accessLog(3, pods[1]));
    kubelet.write('default', pods[0], 'istio-proxy', accessLog(4, pods[0]));
    const want = [`[pod/${pods[1]}/istio-proxy] ${accessLog(3, pods[1])}`, `[pod/${pods[0]}/istio-proxy] ${accessLog(4, pods[0])}`];
    for (let i = 0; i < 300 && !want.every((w) => out.includes(w)); i++) await sleep(50);
    for (const w of want) assert.ok(out.includes(w), `followed line missing: ${w}\n${out}`);
    child!.kill('SIGINT');
    const r = await run;
    assert.equal(r.code, 130, r.stderr);
    assert.deepEqual(errorLines(r.stderr), ['error: interrupted']);
  });

  it('no pods of a service, or a service meshdemo does not know: one line, exit 3 and 2', async () => {
    const none = await meshdemo(['logs', 'micro-pay']);
    assert.equal(none.code, 3, none.stderr);
    assert.deepEqual(errorLines(none.stderr), ['error: no micro-pay pods are running in namespace default (label app=micro-pay) — is the demo app deployed there? run meshdemo up, or pass --namespace']);
    const unknown = await meshdemo(['logs', 'micro-shop']);
    assert.equal(unknown.code, 2, unknown.stderr);
    assert.deepEqual(errorLines(unknown.stderr), ['error: unknown service "micro-shop" — choose one of micro-api, micro-order, micro-pay, gateway']);
  });
});
