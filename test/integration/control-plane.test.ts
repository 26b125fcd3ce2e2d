// Self-test of the test support code: a real control plane, the node simulator and the version proxy.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import {
  ApiException,
  AppsV1Api,
  CoreV1Api,
  KubeConfig,
  PatchStrategy,
  setHeaderOptions,
  VersionApi,
  type V1Pod,
} from '@kubernetes/client-node';
import { startControlPlane, type ControlPlane } from '../support/control-plane.js';
import { startNodeSimulator, type NodeSimulator } from '../support/node-simulator.js';
import { startVersionProxy } from '../support/version-proxy.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function eventually<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 60_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(250);
  }
}

function kubeConfig(path: string, context?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  if (context) kc.setCurrentContext(context);
  return kc;
}

const readiness = (pod: V1Pod) => {
  const mode = pod.metadata?.labels?.['sim-readiness'];
  return mode === 'false' ? false : mode === 'pending' ? 'pending' : true;
};

describe('test control plane', { skip, timeout: 300_000 }, () => {
  let cp: ControlPlane;
  let sim: NodeSimulator;
  let core: CoreV1Api;
  let apps: AppsV1Api;

  before(async () => {
    const t0 = Date.now();
    cp = await startControlPlane();
    const t1 = Date.now();
    sim = await startNodeSimulator(cp.kubeconfigPath, { ready: readiness });
    console.log(`# control plane ready in ${((t1 - t0) / 1000).toFixed(1)} s, node simulator in ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    const kc = kubeConfig(cp.kubeconfigPath);
    core = kc.makeApiClient(CoreV1Api);
    apps = kc.makeApiClient(AppsV1Api);
  });

  after(async () => {
    await sim?.stop();
    await cp?.stop();
  });

  /** A pod in default with one container; its label sim-readiness tells the simulator how to treat it (readiness above). */
  const createPod = (name: string, simReadiness: 'false' | 'pending', image: string) =>
    core.createNamespacedPod({
      namespace: 'default',
      body: {
        metadata: { name, labels: { 'sim-readiness': simReadiness } },
        spec: { containers: [{ name: 'app', image }] },
      },
    });

  it('listens on loopback only, with a loopback service range', async () => {
    assert.match(cp.server, /^https:\/\/127\.0\.0\.1:\d+$/);
    const svc = await core.readNamespacedService({ name: 'kubernetes', namespace: 'default' });
    assert.match(svc.spec?.clusterIP ?? '', /^127\.96\./);
    const node = await core.readNode({ name: sim.nodeName });
    assert.deepEqual(
      node.status?.addresses?.filter((a) => a.type === 'InternalIP').map((a) => a.address),
      ['127.0.0.1'],
    );
    assert.equal(node.status?.addresses?.some((a) => a.type === 'ExternalIP'), false);
    assert.equal(node.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
  });

  it('rolls out a Deployment through the real controller manager', async () => {
    await apps.createNamespacedDeployment({
      namespace: 'default',
      body: {
        metadata: { name: 'hello' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'hello' } },
          template: {
            metadata: { labels: { app: 'hello' } },
            spec: {
              initContainers: [{ name: 'init', image: 'busybox:1.33' }],
              containers: [{ name: 'web', image: 'nginx:1.19', ports: [{ containerPort: 80 }] }],
            },
          },
        },
      },
    });
    const d = await eventually('deployment hello available', async () => {
      const d = await apps.readNamespacedDeployment({ name: 'hello', namespace: 'default' });
      const available = d.status?.conditions?.find((c) => c.type === 'Available')?.status === 'True';
      return available && d.status?.availableReplicas === 2 && d.status?.updatedReplicas === 2 ? d : undefined;
    });
    assert.equal(d.status?.readyReplicas, 2);
    const pods = await core.listNamespacedPod({ namespace: 'default', labelSelector: 'app=hello' });
    assert.equal(pods.items.length, 2);
    for (const p of pods.items) {
      assert.equal(p.spec?.nodeName, sim.nodeName);
      assert.equal(p.status?.phase, 'Running');
      assert.equal(p.status?.hostIP, '127.0.0.1');
      assert.equal(p.status?.podIP ?? '', sim.podIP);
      assert.equal(p.status?.containerStatuses?.[0]?.ready, true);
      assert.equal(p.status?.containerStatuses?.[0]?.image, 'nginx:1.19');
      assert.ok(p.status?.containerStatuses?.[0]?.state?.running);
      assert.equal(p.status?.initContainerStatuses?.[0]?.state?.terminated?.reason, 'Completed');
    }
  });

  it('keeps a pod unready under readiness=false, and can make it ready at runtime', async () => {
    await createPod('broken', 'false', 'does-not-exist:1');
    await eventually('pod broken running', async () => {
      const p = await core.readNamespacedPod({ name: 'broken', namespace: 'default' });
      return p.status?.phase === 'Running' && p.spec?.nodeName === sim.nodeName;
    });
    await sleep(1500);
    const p = await core.readNamespacedPod({ name: 'broken', namespace: 'default' });
    assert.equal(p.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
    assert.equal(p.status?.containerStatuses?.[0]?.ready, false);
    assert.equal(p.status?.containerStatuses?.[0]?.state?.waiting?.reason, 'ImagePullBackOff');

    sim.setPodReadiness(() => true);
    await eventually('pod broken ready', async () => {
      const p = await core.readNamespacedPod({ name: 'broken', namespace: 'default' });
      return p.status?.conditions?.find((c) => c.type === 'Ready')?.status === 'True';
    }, 15_000);
    sim.setPodReadiness(readiness);
  });

  it("leaves a pod unscheduled under readiness='pending'", async () => {
    await createPod('waiting', 'pending', 'nginx:1.19');
    const p = await eventually('pod waiting unschedulable', async () => {
      const p = await core.readNamespacedPod({ name: 'waiting', namespace: 'default' });
      return p.status?.conditions?.find((c) => c.type === 'PodScheduled')?.reason === 'Unschedulable' ? p : undefined;
    });
    assert.equal(p.spec?.nodeName, undefined);
    assert.equal(p.status?.phase, 'Pending');
    assert.equal(p.status?.conditions?.[0]?.message, '0/1 nodes are available: 1 Insufficient cpu.');
  });

  it('force-deletes terminating pods (no kubelet to confirm)', async () => {
    await core.deleteNamespacedPod({ name: 'broken', namespace: 'default' });
    await eventually('pod broken gone', async () => {
      try {
        await core.readNamespacedPod({ name: 'broken', namespace: 'default' });
        return false;
      } catch (e) {
        return e instanceof ApiException && e.code === 404;
      }
    }, 15_000);
  });

  it('gives the viewer read-only access', async () => {
    const viewer = kubeConfig(cp.kubeconfigPath, 'viewer').makeApiClient(CoreV1Api);
    const pods = await viewer.listNamespacedPod({ namespace: 'default' });
    assert.ok(pods.items.length >= 2);
    await assert.rejects(
      viewer.createNamespace({ body: { metadata: { name: 'viewer-was-here' } } }),
      (e: unknown) => e instanceof ApiException && e.code === 403,
    );
  });

  it('survives an API server restart (and so does the node simulator)', async () => {
    const t0 = Date.now();
    await cp.stopApiServer();
    await assert.rejects(core.listNamespace());
    await cp.startApiServer();
    console.log(`# API server restarted in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    const ns = await core.listNamespace();
    assert.ok(ns.items.some((n) => n.metadata?.name === 'kube-system'));
    // the simulator and the controller manager carry on against the restarted server
    await apps.patchNamespacedDeploymentScale(
      { name: 'hello', namespace: 'default', body: { spec: { replicas: 3 } } },
      // merge patch: @kubernetes/client-node 1.x needs the content type spelt out
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
    await eventually('deployment hello scaled to 3', async () => {
      const d = await apps.readNamespacedDeployment({ name: 'hello', namespace: 'default' });
      return d.status?.availableReplicas === 3;
    });
  });

  it('serves another version through the version proxy, and everything else unchanged', async () => {
    const proxy = await startVersionProxy(cp, 'v1.22.3');
    try {
      assert.match(proxy.server, /^https:\/\/127\.0\.0\.1:\d+$/);
      const kc = kubeConfig(proxy.kubeconfigPath);
      const v = await kc.makeApiClient(VersionApi).getCode();
      assert.equal(v.gitVersion, 'v1.22.3');
      assert.equal(v.major, '1');
      assert.equal(v.minor, '22');
      const direct = await kubeConfig(cp.kubeconfigPath).makeApiClient(VersionApi).getCode();
      assert.equal(direct.gitVersion, 'v1.20.2');
      const pods = await kc.makeApiClient(CoreV1Api).listNamespacedPod({ namespace: 'default', labelSelector: 'app=hello' });
      assert.equal(pods.items.length, 3);
      const viewer = kubeConfig(proxy.kubeconfigPath, 'viewer').makeApiClient(CoreV1Api);
      await assert.rejects(
        viewer.createNamespace({ body: { metadata: { name: 'nope' } } }),
        (e: unknown) => e instanceof ApiException && e.code === 403,
      );
    } finally {
      await proxy.close();
    }
  });
});
