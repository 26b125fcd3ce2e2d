// `meshdemo up` with no cluster: the local kind cluster (issue 9). REAL: the API server + controller manager
// (started by the kind stand-in as its "node"), dockerd and the images built in it, the local release server
// serving both Istio and kind. Simulated: kind itself (test/support/kind-standin.ts, imitating kind v0.17.0:
// its node is the real control plane plus the node simulator, InternalIP 127.0.0.2) and istioctl.
import { after, afterEach, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import yaml from 'js-yaml';
import { apiRequest, type ControlPlane } from '../support/control-plane.js';
import { buildReleaseArchive } from '../support/release-archive.js';
import { startReleaseServer, type ReleaseServer } from '../support/release-server.js';
import { startDockerEnv, type DockerEnv } from '../support/docker-env.js';
import { errorLines, runMeshdemo } from '../support/cli.js';
import { snapshotCluster } from '../support/snapshot.js';
import { kindStandinScript, NODE_ADDRESS, runningClusters, stopStandinClusters } from '../support/kind-standin.js';
import { writeState } from '../../src/kind/state.js';
import { writeManifest } from '../../src/download/cache-files.js';
import { normalizeReference } from '../../src/images/cluster-images.js';
import { skipUnless } from '../support/requirements.js';
import { PULL_LIMIT_MESSAGE, startRateLimitedRegistry, type RateLimitedRegistry } from '../support/rate-limited-registry.js';
import type { installDockerNetworkShim } from '../support/docker-network-shim.js';
import { KIALI, kindRelease, PRELOADED, readLines, sandbox, type Sandbox } from '../support/local-sandbox.js';

const PINNED_IMAGE = 'kindest/node:v1.19.16@sha256:476cb3269232888437b61deca013832fee41f9f074f9bed79f57e4280f7c48b7';
const skip = skipUnless('control-plane', 'docker');

describe('up with no cluster creates a local kind cluster and runs the whole demo on it', { skip, timeout: 1_200_000 }, () => {
  let server: ReleaseServer;
  let docker: DockerEnv;
  let sb: Sandbox;
  let cp: Pick<ControlPlane, 'server' | 'caFile' | 'adminToken'>;
  const meshdemo = (args: string[]) =>
    runMeshdemo(['--cache-dir', sb.cache, ...args], { env: sb.env, timeoutMs: 900_000 });
  const upArgs = () => ['up', '--yes', '--json', '--istio-mirror', server.url, '--kind-mirror', server.url, '--base-image', docker.baseImage];
  const api = async (p: string) => JSON.parse((await apiRequest(cp.server, { ca: fs.readFileSync(cp.caFile), token: cp.adminToken, path: p })).body);
  const kindCalls = () => readLines(sb.kindLog).filter((argv) => argv[0] !== '__node');
  /** The tests' own requests use the control plane's admin token, which the stand-in's node keeps (never the kubeconfig). */
  /** What the stand-in's node pulled from a registry itself (its kubelet; test/support/node-simulator.ts), distinct. */
  const registryPulls = () => [...new Set(readLines(path.join(sb.kindState, 'meshdemo', 'pulls.log')).map((l) => l.pulled))].sort();
  /** The real daemon's major version: from 27 on, meshdemo makes the kind network IPv4-only before kind runs. */
  let dockerMajor: number;
  const IPV4_KIND_NETWORK = ['network', 'create', '-d=bridge', '-o', 'com.docker.network.bridge.enable_ip_masquerade=true', '-o', 'com.docker.network.driver.mtu=1500', 'kind'];
  const kindNetworkStep = (cluster: string) => JSON.parse(fs.readFileSync(path.join(sb.kindState, cluster, 'network.json'), 'utf8'));
  const nodeAdminToken = () => JSON.parse(fs.readFileSync(path.join(sb.kindState, 'meshdemo', 'node.json'), 'utf8')).adminToken;

  before(async () => {
    sb = sandbox('local');
    const archive = await buildReleaseArchive({ outDir: path.join(sb.tmp, 'release') });
    server = await startReleaseServer({ '1.8.4/istio-1.8.4-linux-amd64.tar.gz': archive.path, ...kindRelease() });
    docker = await startDockerEnv();
    sb.env.DOCKER_HOST = docker.dockerHost;
    dockerMajor = Number((await docker.docker(['version', '--format', '{{.Server.Version}}'])).stdout.split('.')[0]);
    // the host already pulled Istio's and the addons' images (nothing can be pulled here): the base image under their names
    for (const ref of PRELOADED) await docker.docker(['tag', docker.baseImage, ref]);
  });
  after(async () => {
    await stopStandinClusters(sb?.kindState);
    await docker?.stop();
    await server?.close();
    if (sb) fs.rmSync(sb.tmp, { recursive: true, force: true });
  });

  it('HOME empty, no KUBECONFIG: up --yes creates the cluster, runs every step, prints 127.0.0.1 URLs mapped by the kind config', async () => {
    const r = await meshdemo(upArgs());
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-4000));
    const events = r.events();
    const done = events.filter((e) => e.type === 'step' && e.status === 'done').map((e) => e.id);
    assert.deepEqual(done.slice(0, 3), ['local-preflight', 'kind-download', 'local-cluster']);
    // the Istio half may finish in any order (its steps run side by side); the app half starts after all of it
    assert.deepEqual([...done.slice(3, -3)].sort(), ['preflight', 'tools-preflight', 'istio-download', 'cluster-images', 'istio-namespace', 'istio-install', 'gateway-ports', 'namespace-label', 'addons', 'dashboards'].sort());
    // Istio's and the addons' images went into the node before istioctl and the addons ran, one by one with progress;
    // the node pulled from a registry only Kiali (imagePullPolicy Always), which meshdemo names
    const progress = events.filter((e) => e.type === 'log').map((e) => /^\((\d+)\/(\d+)\) loading (\S+) into kind cluster "meshdemo"$/.exec(e.message)).filter((m) => m);
    assert.deepEqual(progress.map((m) => `${m![1]}/${m![2]}`), PRELOADED.map((_, i) => `${i + 1}/${PRELOADED.length}`));
    assert.deepEqual(progress.map((m) => m![3]).sort(), [...PRELOADED].sort());
    assert.ok(events.some((e) => e.type === 'log' && e.level === 'note' && e.message.startsWith(`${KIALI} (addon kiali) has imagePullPolicy Always`)));
    assert.deepEqual(registryPulls(), [KIALI]);
    assert.deepEqual(done.slice(-3), ['images', 'app-deploy', 'gateway-url']);

    assert.match(events.find((e) => e.id === 'preflight' && e.status === 'done').message, /^v1\.19\.16 at https:\/\/127\.0\.0\.1:\d+, context "kind-meshdemo"$/);
    // kind was downloaded from the mirror, verified, and called as kind v0.17 is called
    assert.ok(server.requests.some((q) => q.path === '/v0.17.0/kind-linux-amd64.sha256sum'));
    const creates = kindCalls().filter((a) => a[0] === 'create');
    assert.equal(creates.length, 1);
    const create = creates[0] as string[];
    assert.deepEqual(create.slice(0, 6), ['create', 'cluster', '--name', 'meshdemo', '--image', PINNED_IMAGE]);
    assert.ok(!create.includes('--kubeconfig'), 'kind merges into ~/.kube/config itself');
    // the docker network kind puts the node on (stood in: test/support/docker-network-shim.ts)
    const networkCreates = sb.network.calls().filter((a) => a[1] === 'create');
    if (dockerMajor >= 27) {
      // meshdemo made it IPv4-only before kind ran, as kind does without IPv6, and kind reused it
      assert.deepEqual(networkCreates, [IPV4_KIND_NETWORK]);
      assert.equal(sb.network.networks().find((n) => n.Name === 'kind')?.EnableIPv6, false);
      assert.deepEqual(kindNetworkStep('meshdemo'), { name: 'kind', created: false });
      assert.ok(events.some((e) => e.type === 'log' && e.message.startsWith(`created docker network "kind" IPv4-only, as kind v0.17.0 creates it without IPv6`)));
    } else {
      // an older Docker: kind makes its own, with IPv6
      assert.deepEqual(networkCreates.map((a) => a.includes('--ipv6')), [true]);
      assert.deepEqual(kindNetworkStep('meshdemo'), { name: 'kind', created: true, ipv6: true });
    }

    // the kubeconfig kind merged: context kind-meshdemo, current, in $HOME/.kube/config
    const kc = yaml.load(fs.readFileSync(path.join(sb.home, '.kube', 'config'), 'utf8')) as any;
    assert.equal(kc['current-context'], 'kind-meshdemo');
    const cluster = kc.clusters.find((c: any) => c.name === 'kind-meshdemo').cluster;
    const caFile = path.join(sb.tmp, 'ca.crt');
    fs.writeFileSync(caFile, Buffer.from(cluster['certificate-authority-data'], 'base64'));
    // kind writes kubeadm's admin user: a client certificate, no token — every meshdemo run here authenticated with it
    const user = kc.users.find((u: any) => u.name === 'kind-meshdemo').user;
    assert.deepEqual(Object.keys(user).sort(), ['client-certificate-data', 'client-key-data']);
    cp = { server: cluster.server, caFile, adminToken: nodeAdminToken() };
    const nodes = (await api('/api/v1/nodes')).items;
    assert.deepEqual(nodes.map((n: any) => n.metadata.name), ['meshdemo-control-plane']);
    assert.equal(nodes[0].status.addresses.find((a: any) => a.type === 'InternalIP').address, NODE_ADDRESS);

    // the URLs: 127.0.0.1 and the mapped host port, never the node's own address
    const result = events.at(-1);
    assert.equal(result.ok, true);
    assert.equal(result.urls.gateway, 'http://127.0.0.1:31080/api/order/create');
    assert.equal(result.urls.kiali, 'http://127.0.0.1:31001/kiali');
    assert.ok(!(r.stdout + r.stderr).includes(NODE_ADDRESS), 'the node address is never printed');
    const gw = await api('/api/v1/namespaces/istio-system/services/istio-ingressgateway');
    const nodePorts = Object.fromEntries(gw.spec.ports.map((p: any) => [p.name, p.nodePort]));
    assert.deepEqual(nodePorts, { 'status-port': 31021, http2: 31080, https: 31443, tcp: 31400, tls: 31543 });

    // the config given to kind: the pinned image by digest, and exactly the printed ports mapped on 127.0.0.1
    const config = yaml.load(fs.readFileSync(path.join(sb.kindState, 'meshdemo', 'config.yaml'), 'utf8')) as any;
    assert.equal(config.nodes.length, 1);
    assert.equal(config.nodes[0].image, PINNED_IMAGE);
    const mappings: any[] = config.nodes[0].extraPortMappings;
    assert.ok(mappings.every((m) => m.listenAddress === '127.0.0.1'));
    const printedPorts = Object.values(result.urls as Record<string, string>).map((u) => Number(new URL(u).port));
    for (const [name, url] of Object.entries(result.urls as Record<string, string>)) {
      const port = Number(new URL(url).port);
      const m = mappings.find((x) => x.hostPort === port);
      assert.ok(m, `${name}: ${url} is mapped`);
      const svc = name === 'gateway' ? gw : await api(`/api/v1/namespaces/istio-system/services/${name}`);
      assert.ok(svc.spec.ports.some((p: any) => p.nodePort === m.containerPort), `${name}: host port ${port} leads to the Service's node port ${m.containerPort}`);
    }
    assert.deepEqual(
      mappings.map((m) => m.hostPort).sort(),
      [...new Set([...printedPorts, 31005])].sort(),
      'the printed ports, plus zipkin\'s (mappings cannot be added later, and meshdemo expose zipkin may need it)',
    );

    // the images went in with kind load (no registry), and meshdemo's record says it created the cluster
    const loaded = JSON.parse(fs.readFileSync(path.join(sb.kindState, 'meshdemo', 'images.json'), 'utf8'));
    assert.deepEqual(Object.keys(loaded).filter((ref) => ref.startsWith('meshdemo/')).map((ref) => ref.split(':')[0]).sort(), ['meshdemo/micro-api', 'meshdemo/micro-order', 'meshdemo/micro-pay']);
    assert.deepEqual(Object.keys(loaded).filter((ref) => !ref.startsWith('meshdemo/')).sort(), [...PRELOADED].sort());
    const d = await api('/apis/apps/v1/namespaces/default/deployments/micro-api');
    assert.ok(Object.keys(loaded).includes(d.spec.template.spec.containers[0].image));
    const state = JSON.parse(fs.readFileSync(path.join(sb.cache, 'local-clusters', 'meshdemo.json'), 'utf8'));
    assert.equal(state.context, 'kind-meshdemo');
    assert.equal(state.nodeImage, PINNED_IMAGE);
    assert.equal(state.caSha256, createHash('sha256').update(cluster['certificate-authority-data']).digest('hex'), 'what tells this cluster from one created again by hand');
    assert.equal(state.kind, path.join(sb.cache, 'kind', 'v0.17.0', 'kind'));
    assert.equal(state.kindSha256, createHash('sha256').update(kindStandinScript()).digest('hex'), 'the kind that created it, by content: down runs no other file under that name');
    assert.ok(events.some((e) => e.type === 'log' && /^kind merged context "kind-meshdemo" into .*\/home\/\.kube\/config and made it the current context$/.test(e.message)));
  });

  it('a second up creates nothing and changes nothing', async () => {
    const before = await snapshotCluster(cp as ControlPlane);
    const callsBefore = kindCalls().length;
    const r = await meshdemo(upArgs());
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-3000));
    const events = r.events();
    const done = events.filter((e) => e.type === 'step' && e.status === 'done').map((e) => e.id);
    assert.deepEqual(done, ['local-preflight', 'preflight', 'tools-preflight', 'gateway-url'], 'only read-only steps ran');
    assert.equal(events.find((e) => e.id === 'local-cluster' && e.status === 'skipped')?.message.startsWith('kind cluster "meshdemo" exists (created by meshdemo'), true);
    assert.deepEqual(kindCalls().slice(callsBefore).map((a) => a.slice(0, 2).join(' ')).filter((c) => c !== 'version' && c !== 'get clusters'), [], 'no kind create/load');
    assert.deepEqual(await snapshotCluster(cp as ControlPlane), before);
    assert.equal(events.at(-1).urls.gateway, 'http://127.0.0.1:31080/api/order/create');
  });

  it('status and plan show the local cluster', async () => {
    const s = await meshdemo(['status', '--json']);
    assert.equal(s.code, 0, s.stderr);
    const local = s.events().at(-1).status.localCluster;
    assert.equal(local.name, 'meshdemo');
    assert.equal(local.createdByMeshdemo, true);
    assert.deepEqual(local.ports.find((p: any) => p.name === 'gateway'), { name: 'gateway', nodePort: 31080, hostPort: 31080 });
    const human = await meshdemo(['status']);
    assert.match(human.stdout, /local\s+kind cluster "meshdemo", created by meshdemo .*kiali 127\.0\.0\.1:31001→31001/);
    // what the node holds (its kubelet's Node .status.images), for every image the demo's Deployments run
    const nodeImages = s.events().at(-1).status.nodeImages;
    assert.equal(nodeImages.nodes, 1);
    const refs = nodeImages.images.map((i: any) => i.ref);
    for (const ref of [...PRELOADED, KIALI]) assert.ok(refs.some((r: string) => r === ref || `docker.io/${r}` === ref), `${ref} listed: ${refs.join(', ')}`);
    assert.deepEqual(refs.filter((r: string) => r.startsWith('meshdemo/')).map((r: string) => r.split(':')[0]).sort(), ['meshdemo/micro-api', 'meshdemo/micro-order', 'meshdemo/micro-pay']);
    assert.deepEqual(nodeImages.images.filter((i: any) => i.onNodes !== 1), [], 'all on the node');
    assert.match(human.stdout, new RegExp(`^images\\s+${refs.length} of ${refs.length} the demo runs are on the node$`, 'm'));
    const p = await meshdemo(['plan', '--json']);
    assert.equal(p.code, 0, p.stderr);
    const steps = p.events().at(-1).steps;
    assert.equal(steps[0].id, 'local-preflight');
    const lc = steps.find((x: any) => x.id === 'local-cluster');
    assert.equal(lc.satisfied, true);
    assert.match(lc.detail, /ports 127\.0\.0\.1:31001/);
  });

  it('a node port the local cluster does not map: expose and up refuse it in one line, exit 2, nothing changed', async () => {
    let before = await snapshotCluster(cp as ControlPlane);
    const e = await meshdemo(['expose', 'grafana', '--node-port', '32002']);
    assert.equal(e.code, 2, e.stderr + e.stdout);
    assert.deepEqual(errorLines(e.stderr), [
      'error: node port 32002 (grafana) is not mapped to the host by the local kind cluster "meshdemo", which maps only 31001, 31002, 31003, 31004, 31005, 31080 on 127.0.0.1 (kind sets port mappings when it creates a cluster) — pass a mapped one with --node-port, or use meshdemo expose grafana --port-forward; to map it, create the cluster again: meshdemo down, then meshdemo up --node-port grafana=32002',
    ]);
    assert.deepEqual(await snapshotCluster(cp as ControlPlane), before);
    // a mapped port works: zipkin's was mapped for exactly this
    const mapped = await meshdemo(['expose', 'zipkin', '--json']);
    assert.equal(mapped.code, 0, mapped.stderr);
    assert.equal(mapped.events().at(-1).dashboards.zipkin, 'http://127.0.0.1:31005/zipkin/');
    before = await snapshotCluster(cp as ControlPlane);
    const u = await meshdemo([...upArgs(), '--node-port', 'kiali=32001']);
    assert.equal(u.code, 2, u.stderr + u.stdout.slice(-2000));
    assert.match(errorLines(u.stderr)[0], /^error: node port 32001 \(kiali\) is not mapped to the host by the local kind cluster "meshdemo", which maps only 31001, 31002, 31003, 31004, 31005, 31080 on 127\.0\.0\.1 .* — pass the ports it maps/);
    assert.deepEqual(await snapshotCluster(cp as ControlPlane), before);
    assert.equal(kindCalls().filter((a) => a[0] === 'create').length, 1, 'not created again');
  });

  it('the kubeconfig lost its context: up has kind write it again (kind export kubeconfig) and changes nothing else', async () => {
    const before = await snapshotCluster(cp as ControlPlane);
    fs.rmSync(path.join(sb.home, '.kube', 'config'));
    const r = await meshdemo(upArgs());
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-3000));
    const events = r.events();
    assert.match(events.find((e) => e.id === 'local-cluster' && e.status === 'done')?.message ?? '', /kind cluster "meshdemo" already existed; context kind-meshdemo written again into .*\/home\/\.kube\/config/);
    assert.ok(kindCalls().some((a) => a.join(' ') === 'export kubeconfig --name meshdemo'));
    assert.equal(kindCalls().filter((a) => a[0] === 'create').length, 1, 'not created again');
    const kc = yaml.load(fs.readFileSync(path.join(sb.home, '.kube', 'config'), 'utf8')) as any;
    assert.equal(kc['current-context'], 'kind-meshdemo');
    assert.deepEqual(await snapshotCluster(cp as ControlPlane), before);
  });

  it('--local reuses the cluster even when the kubeconfig\'s current context is another cluster', async () => {
    const file = path.join(sb.home, '.kube', 'config');
    const kc = yaml.load(fs.readFileSync(file, 'utf8')) as any;
    kc.clusters.push({ name: 'prod', cluster: { server: 'https://127.0.0.1:1' } });
    kc.users.push({ name: 'prod', user: { token: 'prod-token' } });
    kc.contexts.push({ name: 'prod', context: { cluster: 'prod', user: 'prod' } });
    kc['current-context'] = 'prod';
    fs.writeFileSync(file, yaml.dump(kc));
    const r = await meshdemo([...upArgs(), '--local']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-3000));
    const events = r.events();
    assert.match(events.find((e) => e.id === 'preflight' && e.status === 'done').message, /context "kind-meshdemo"$/);
    assert.match(events.find((e) => e.id === 'local-cluster' && e.status === 'skipped').message, /^kind cluster "meshdemo" exists \(created by meshdemo/);
    assert.equal(kindCalls().filter((a) => a[0] === 'create').length, 1, 'not created again');
    kc['current-context'] = 'kind-meshdemo';
    fs.writeFileSync(file, yaml.dump(kc));
  });

  it('down --keep-cluster: the gateway goes with Istio unreverted; --keep-istio keeps the cluster and reverts the gateway after the dashboards', async () => {
    // the 1-in-100 install: the gateway's random http2 node port before pinning was kiali's 31001 — as if it had been
    const invPath = '/api/v1/namespaces/default/configmaps/meshdemo-inventory';
    const cm = await api(invPath);
    const inv = JSON.parse(cm.data['inventory.json']);
    const gwChange = inv.changed.find((c: any) => c.step === 'gateway-ports');
    assert.ok(gwChange, 'gateway-ports recorded what it changed');
    gwChange.previous.ports = gwChange.previous.ports.map((p: any) => (p.name === 'http2' ? { ...p, nodePort: 31001 } : p));
    await apiRequest(cp.server, { ca: fs.readFileSync(cp.caFile), token: cp.adminToken, method: 'PATCH', path: invPath, contentType: 'application/merge-patch+json', body: { data: { 'inventory.json': JSON.stringify(inv) } } });

    // without --keep-istio, Istio is uninstalled: the gateway is not reverted first (it goes with Istio)
    const dry = await meshdemo(['down', '--keep-cluster', '--dry-run', '--json']);
    assert.equal(dry.code, 0, dry.stderr);
    const dryResult = dry.events().at(-1);
    assert.ok(!dryResult.plan.some((i: any) => i.target === 'Service/istio-system/istio-ingressgateway'), JSON.stringify(dryResult.plan));
    assert.ok(dryResult.notes.includes('Service/istio-system/istio-ingressgateway: its pinned node ports are not reverted, it goes with Istio'), JSON.stringify(dryResult.notes));

    // --keep-istio (without --keep-cluster): keeps the cluster, and reverts the gateway once kiali gave 31001 back
    const r = await meshdemo(['down', '--yes', '--keep-istio', '--json']);
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-3000));
    assert.ok(r.events().some((e) => e.type === 'log' && e.level === 'note' && /--keep-istio keeps the local kind cluster "meshdemo" too/.test(e.message)));
    assert.deepEqual(runningClusters(sb.kindState), ['meshdemo']);
    assert.equal((await api('/apis/apps/v1/namespaces/default/deployments')).items.length, 0);
    const plan: any[] = r.events().at(-1).plan;
    const gwItem = plan.findIndex((i) => i.action === 'revert' && i.target === 'Service/istio-system/istio-ingressgateway');
    assert.ok(gwItem >= 0 && /^back to node port \d+, 31001, \d+, \d+, \d+, now LoadBalancer \(node port 31021, 31080, 31443, 31400, 31543\)$/.test(plan[gwItem].detail), `the pinned gateway ports are reverted: ${JSON.stringify(plan)}`);
    assert.equal(plan[gwItem].phase, 'down-istio');
    assert.ok(gwItem > plan.findIndex((i) => i.target === 'Service/istio-system/kiali'), 'after kiali released 31001');
    const gw = await api('/api/v1/namespaces/istio-system/services/istio-ingressgateway');
    assert.equal(gw.spec.ports.find((p: any) => p.name === 'http2').nodePort, 31001);
    assert.equal((await api('/api/v1/namespaces/istio-system/services/kiali')).code, 404, 'kiali went with the addons, before the gateway took 31001 back');
    assert.ok(fs.existsSync(path.join(sb.cache, 'local-clusters', 'meshdemo.json')), 'still recorded as created by meshdemo');
    assert.ok(!kindCalls().some((a) => a[0] === 'delete'));
  });

  it('down --yes deletes the cluster meshdemo created, its context and its record', async () => {
    const dry = await meshdemo(['down', '--dry-run']);
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stdout, /delete\s+kind cluster "meshdemo" — with everything in it/);
    assert.deepEqual(runningClusters(sb.kindState), ['meshdemo']);
    const r = await meshdemo(['down', '--yes']);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.deepEqual(runningClusters(sb.kindState), []);
    assert.deepEqual(kindCalls().filter((a) => a[0] === 'delete'), [['delete', 'cluster', '--name', 'meshdemo', '--kubeconfig', path.join(sb.home, '.kube', 'config')]]);
    const kc = yaml.load(fs.readFileSync(path.join(sb.home, '.kube', 'config'), 'utf8')) as any;
    assert.equal(kc['current-context'], '');
    assert.ok(!kc.contexts.some((c: any) => c.name === 'kind-meshdemo'));
    assert.ok(!fs.existsSync(path.join(sb.cache, 'local-clusters', 'meshdemo.json')));
  });

  // the node simulator pulls only what a node could: a meshdemo/* image that kind did not load into THIS node
  // stays ErrImagePull / ImagePullBackOff (test/support/node-simulator.ts)
  const nodeImages = () => {
    const file = path.join(sb.kindState, 'meshdemo', 'images.json');
    return fs.existsSync(file) ? Object.keys(JSON.parse(fs.readFileSync(file, 'utf8'))) : [];
  };
  const useNewCluster = () => {
    const kc = yaml.load(fs.readFileSync(path.join(sb.home, '.kube', 'config'), 'utf8')) as any;
    const cluster = kc.clusters.find((c: any) => c.name === 'kind-meshdemo').cluster;
    fs.writeFileSync(path.join(sb.tmp, 'ca.crt'), Buffer.from(cluster['certificate-authority-data'], 'base64'));
    cp = { server: cluster.server, caFile: path.join(sb.tmp, 'ca.crt'), adminToken: nodeAdminToken() };
  };

  it('up again after down: a new cluster, the images (still on the host) loaded into its node, the app ready', async () => {
    const loadsBefore = kindCalls().filter((a) => a[0] === 'load').length;
    const r = await meshdemo(upArgs());
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-4000));
    const events = r.events();
    assert.equal(kindCalls().filter((a) => a[0] === 'create').length, 2);
    // the kind network outlives down (as kind leaves it): nobody creates it again, kind reuses it untouched
    assert.equal(sb.network.calls().filter((a) => a[1] === 'create').length, 1);
    assert.deepEqual(kindNetworkStep('meshdemo'), { name: 'kind', created: false });
    const imagesStep = events.find((e) => e.type === 'step' && e.id === 'images' && e.status === 'done');
    assert.equal(imagesStep?.message, '0 built, 3 unchanged', 'the host still had them: nothing rebuilt');
    assert.equal(kindCalls().filter((a) => a[0] === 'load').length - loadsBefore, 3 + PRELOADED.length, 'each loaded into the new node');
    assert.deepEqual(registryPulls(), [KIALI], 'the second cluster pulled nothing from a registry but Kiali (pull policy Always)');
    useNewCluster();
    const app = (await api('/apis/apps/v1/namespaces/default/deployments')).items.filter((d: any) => /^micro-/.test(d.metadata.name));
    assert.equal(app.length, 3);
    for (const d of app) {
      assert.ok(nodeImages().includes(d.spec.template.spec.containers[0].image), `${d.metadata.name}'s image is on the node`);
      assert.equal(d.status.availableReplicas, d.spec.replicas, `${d.metadata.name} ready`);
    }
  });

  it('an image the node does not have: the pods wait in ErrImagePull/ImagePullBackOff, and up\'s diagnosis says so (exit 4)', async () => {
    const images = SERVICES_FOR_TEST.map((s) => `${s}=meshdemo/${s}:not-loaded`);
    const r = await meshdemo(['--timeout', '20s', 'up', '--yes', '--skip-build', ...images.flatMap((i) => ['--image', i]), '--istio-mirror', server.url, '--kind-mirror', server.url]);
    assert.equal(r.code, 4, r.stderr + r.stdout.slice(-3000));
    // every Deployment waits for its new pods (the old ones still serving are no finished rollout), each new pod for its image
    for (const [deployment, container] of [['micro-api', 'micro-api'], ['micro-order-v1', 'micro-order'], ['micro-pay-v1', 'micro-pay']]) {
      assert.match(r.stderr, new RegExp(`Deployment default/${deployment}: `), deployment);
      assert.match(
        r.stderr,
        new RegExp(`pod ${deployment}-[a-z0-9-]+: Pending — container ${container}: (ErrImagePull \\(rpc error: code = Unknown desc = failed to pull and unpack image "docker\\.io/meshdemo/${container}:not-loaded": failed to resolve reference .*pull access denied|ImagePullBackOff \\(Back-off pulling image "meshdemo/${container}:not-loaded"\\))`),
      );
    }
    assert.match(r.stderr, /event Failed: Failed to pull image "meshdemo\/micro-(api|order|pay):not-loaded": rpc error/);
    const pod = (await api('/api/v1/namespaces/default/pods?labelSelector=app%3Dmicro-api')).items.find((p: any) => p.spec.containers[0].image === 'meshdemo/micro-api:not-loaded');
    assert.equal(pod.status.phase, 'Pending');
    assert.equal(pod.status.conditions.find((c: any) => c.type === 'Ready').status, 'False');
    // status names the images the node lacks (not what the host's Docker has: it has none of these either way)
    const st = await meshdemo(['status', '--json']);
    assert.equal(st.code, 0, st.stderr);
    const { nodeImages } = st.events().at(-1).status;
    assert.deepEqual(nodeImages.images.filter((i: any) => i.onNodes === 0).map((i: any) => `${i.ref} ${i.usedBy}`).sort(), ['meshdemo/micro-api:not-loaded micro-api', 'meshdemo/micro-order:not-loaded micro-order-v1', 'meshdemo/micro-pay:not-loaded micro-pay-v1']);
    const human = await meshdemo(['status']);
    assert.match(human.stdout, /^images\s+\d+ of \d+ the demo runs are on the node; not on it: meshdemo\/micro-api:not-loaded \(micro-api\), meshdemo\/micro-order:not-loaded \(micro-order-v1\), meshdemo\/micro-pay:not-loaded \(micro-pay-v1\)$/m);
  });

  it('images removed from the node between runs: up loads them again and the app is ready', async () => {
    fs.rmSync(path.join(sb.kindState, 'meshdemo', 'images.json')); // as `crictl rmi` on the node would
    // the kubelet reports its runtime's images with the node status (here: on the simulator's next resync)
    const listed = async () => (await api('/api/v1/nodes/meshdemo-control-plane')).status.images.flatMap((i: any) => i.names).filter((n: string) => n.startsWith('docker.io/meshdemo/'));
    for (let i = 0; i < 60 && (await listed()).length; i++) await new Promise((res) => setTimeout(res, 500));
    assert.deepEqual(await listed(), []);
    // for a minute after a load, meshdemo trusts its record over the kubelet's list (which lags by up to 40 s):
    // this happens later than that
    const record = JSON.parse((await api('/api/v1/namespaces/default/configmaps/meshdemo-inventory')).data['inventory.json']);
    const lastLoad = Math.max(...Object.values(record.nodesLoaded as Record<string, { at: string }>).map((l) => Date.parse(l.at)));
    await new Promise((res) => setTimeout(res, Math.max(0, lastLoad + 61_000 - Date.now())));
    const plan = await meshdemo(['plan', '--json']);
    assert.equal(plan.code, 0, plan.stderr);
    const step = plan.events().at(-1).steps.find((x: any) => x.id === 'images');
    assert.equal(step.satisfied, false);
    assert.match(step.detail, /not on the node\(s\) of kind cluster "meshdemo"/);
    const r = await meshdemo(upArgs());
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-4000));
    assert.equal(nodeImages().length, 3 + PRELOADED.length, "the app's and the pre-loaded images are back on the node");
    for (const name of ['micro-api', 'micro-order-v1', 'micro-pay-v1']) {
      const d = await api(`/apis/apps/v1/namespaces/default/deployments/${name}`);
      assert.equal(d.status.availableReplicas, d.spec.replicas, `${name} ready`);
    }
    const d = await meshdemo(['down', '--yes']);
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(runningClusters(sb.kindState), []);
  });
});

const SERVICES_FOR_TEST = ['micro-api', 'micro-order', 'micro-pay'];

/**
 * What cannot run here (an arm64 engine, Docker 25.0.0, Podman's shim) stands in front of the real docker CLI: a
 * `docker` script first on PATH that answers one case itself ("$REAL" is the real CLI) and passes the rest on.
 */
function withDockerShim(sb: Sandbox, oneCase: string): Record<string, string | undefined> {
  const bin = path.join(sb.tmp, 'docker-shim');
  fs.mkdirSync(bin, { recursive: true });
  // "$REAL" is the docker the sandbox has first on PATH: the network stand-in in front of the real CLI
  const real = path.join(sb.network.bin, 'docker');
  fs.writeFileSync(path.join(bin, 'docker'), `#!/bin/sh\nREAL='${real}'\n${oneCase}\nexec "$REAL" "$@"\n`, { mode: 0o755 });
  return { ...sb.env, PATH: `${bin}${path.delimiter}${sb.env.PATH}` };
}

describe('local cluster: refusals before anything is created', { skip, timeout: 600_000 }, () => {
  let docker: DockerEnv;
  const servers: ReleaseServer[] = [];
  const sandboxes: Sandbox[] = [];
  const box = (extra: Record<string, string | undefined> = {}, network?: Parameters<typeof installDockerNetworkShim>[1]) => {
    const sb = sandbox('local-refuse', { DOCKER_HOST: docker.dockerHost, ...extra }, network);
    sandboxes.push(sb);
    return sb;
  };
  const serve = async (files: Record<string, Buffer>) => {
    const s = await startReleaseServer(files);
    servers.push(s);
    return s;
  };

  before(async () => {
    docker = await startDockerEnv();
  });
  // a cluster a test created holds the mapped ports on 127.0.0.1: the next test's cluster needs them
  afterEach(async () => {
    for (const sb of sandboxes) await stopStandinClusters(sb.kindState);
  });
  after(async () => {
    for (const sb of sandboxes) {
      await stopStandinClusters(sb.kindState);
      fs.rmSync(sb.tmp, { recursive: true, force: true });
    }
    for (const s of servers) await s.close();
    await docker?.stop();
  });

  it('a wrong kind checksum: exit 5, nothing executed, nothing created', async () => {
    const server = await serve(kindRelease(`${'0'.repeat(64)}  kind-linux-amd64\n`));
    const sb = box();
    const r = await runMeshdemo(['--cache-dir', sb.cache, 'up', '--yes', '--no-app', '--kind-mirror', server.url], { env: sb.env });
    assert.equal(r.code, 5, r.stderr);
    const [line] = errorLines(r.stderr);
    assert.match(line, /kind-linux-amd64 served a file with sha256 [0-9a-f]{64}, but 0{64} was expected/);
    assert.ok(!fs.existsSync(sb.kindLog), 'the downloaded kind never ran');
    assert.deepEqual(fs.readdirSync(path.join(sb.cache, 'kind', 'v0.17.0')), [], 'nothing executable left in the cache');
    assert.ok(!fs.existsSync(path.join(sb.home, '.kube')));
  });

  it('--kind-sha256 that does not match: exit 5, nothing executed', async () => {
    const server = await serve(kindRelease());
    const sb = box();
    const r = await runMeshdemo(['--cache-dir', sb.cache, 'up', '--yes', '--no-app', '--kind-mirror', server.url, '--kind-sha256', 'a'.repeat(64)], { env: sb.env });
    assert.equal(r.code, 5, r.stderr);
    assert.ok(!fs.existsSync(sb.kindLog));
    assert.ok(!server.requests.some((q) => q.path.endsWith('.sha256sum')), 'the pinned sum is used, not the mirror\'s');
  });

  it('Docker not reachable: exit 3 before anything (no download, no kind)', async () => {
    const server = await serve(kindRelease());
    const sb = box({ DOCKER_HOST: `unix://${path.join(os.tmpdir(), 'meshdemo-no-docker.sock')}` });
    const r = await runMeshdemo(['--cache-dir', sb.cache, 'up', '--yes', '--no-app', '--kind-mirror', server.url], { env: sb.env });
    assert.equal(r.code, 3, r.stderr);
    const lines = errorLines(r.stderr);
    assert.equal(lines.length, 1, r.stderr);
    assert.match(lines[0], /Docker daemon at DOCKER_HOST=.* is not reachable; meshdemo creates its local kind cluster in Docker — start Docker/);
    assert.deepEqual(server.requests, []);
    assert.ok(!fs.existsSync(sb.kindLog));
    assert.ok(!fs.existsSync(path.join(sb.cache, 'local-clusters')));
  });

  it('no --yes and no terminal: exit 2 naming --yes after saying a local cluster would be created; --dry-run changes nothing', async () => {
    const server = await serve(kindRelease());
    const sb = box();
    const r = await runMeshdemo(['--cache-dir', sb.cache, 'up', '--no-app', '--kind-mirror', server.url], { env: sb.env });
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /working on the local kind cluster "meshdemo" \(context kind-meshdemo\): no cluster given: no kubeconfig at .*\/home\/\.kube\/config/);
    assert.match(errorLines(r.stderr)[0], /confirmation needs an answer, but there is no terminal to ask on — pass --yes/);
    const dry = await runMeshdemo(['--cache-dir', sb.cache, 'up', '--no-app', '--dry-run', '--kind-mirror', server.url], { env: sb.env });
    assert.equal(dry.code, 0, dry.stderr);
    assert.match(dry.stderr, /Create the local kind cluster — would run: no cluster given: no kubeconfig at .*: kind create cluster --name meshdemo \(kindest\/node:v1\.19\.16@sha256:[0-9a-f]{64}\), context kind-meshdemo/);
    assert.match(dry.stderr, /Preflight: cluster, version and permissions — would run: after kind cluster "meshdemo" is created/);
    assert.deepEqual(server.requests, [], 'nothing downloaded');
    assert.ok(!fs.existsSync(sb.kindLog));
    assert.ok(!fs.existsSync(path.join(sb.home, '.kube')));
  });

  it('kind on PATH is used when it is v0.17.0, and not when it is another version', async () => {
    const server = await serve(kindRelease());
    const sb = box();
    const bin = path.join(sb.tmp, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'kind'), kindStandinScript(), { mode: 0o755 });
    const plan = (env: Record<string, string> = {}) =>
      runMeshdemo(['--cache-dir', sb.cache, 'plan', '--json', '--no-app', '--kind-mirror', server.url], { env: { ...sb.env, PATH: `${bin}${path.delimiter}${sb.env.PATH}`, ...env } });
    const same = await plan();
    assert.equal(same.code, 0, same.stderr);
    const step = (r: Awaited<ReturnType<typeof plan>>) => r.events().at(-1).steps.find((x: any) => x.id === 'kind-download');
    assert.deepEqual({ satisfied: step(same).satisfied, detail: step(same).detail }, { satisfied: true, detail: `kind v0.17.0 at ${path.join(bin, 'kind')}` });
    const other = await plan({ STANDIN_KIND_VERSION: '0.20.0' });
    assert.equal(other.code, 0, other.stderr);
    assert.equal(step(other).satisfied, false);
    assert.match(step(other).detail, /download .*\/v0\.17\.0\/kind-linux-amd64/);
    assert.ok(other.events().some((e: any) => e.type === 'log' && /is kind v0\.20\.0, not v0\.17\.0 whose node image meshdemo pins/.test(e.message)));
    assert.deepEqual(server.requests, [], 'plan downloads nothing');
  });

  it('status on the local cluster meshdemo created that kind no longer lists: says it is absent (exit 0); down forgets it', async () => {
    const sb = box();
    const bin = path.join(sb.tmp, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'kind'), kindStandinScript(), { mode: 0o755 });
    // what up recorded when it created the cluster, which was then deleted by hand (kind delete cluster --name meshdemo)
    const mappings = [{ name: 'kiali', containerPort: 31001, hostPort: 31001 }, { name: 'gateway', containerPort: 31080, hostPort: 31080 }];
    writeState(sb.cache, { version: 1, name: 'meshdemo', context: 'kind-meshdemo', createdAt: '2026-11-30T10:00:00.000Z', kindVersion: '0.17.0', kind: path.join(bin, 'kind'), nodeImage: PINNED_IMAGE, kubeconfig: path.join(sb.home, '.kube', 'config'), configFile: path.join(sb.cache, 'local-clusters', 'meshdemo.kind.yaml'), mappings });
    const s = await runMeshdemo(['--cache-dir', sb.cache, 'status'], { env: sb.env });
    assert.equal(s.code, 0, s.stderr);
    assert.match(s.stdout, /local\s+kind cluster "meshdemo" is absent: meshdemo created it 2026-11-30T10:00:00\.000Z, but kind get clusters does not list it — meshdemo up creates it again; meshdemo down forgets it/);
    const j = await runMeshdemo(['--cache-dir', sb.cache, 'status', '--json'], { env: sb.env });
    assert.equal(j.code, 0, j.stderr);
    assert.deepEqual(j.events().at(-1).status.localCluster, { name: 'meshdemo', exists: false, createdByMeshdemo: true, createdAt: '2026-11-30T10:00:00.000Z', nodeImage: PINNED_IMAGE, ports: [{ name: 'kiali', nodePort: 31001, hostPort: 31001 }, { name: 'gateway', nodePort: 31080, hostPort: 31080 }] });
    const d = await runMeshdemo(['--cache-dir', sb.cache, 'down', '--yes'], { env: sb.env });
    assert.equal(d.code, 0, d.stderr);
    assert.match(d.stdout + d.stderr, /kind cluster "meshdemo" was already gone; removed meshdemo's record of it/);
    assert.ok(!fs.existsSync(path.join(sb.cache, 'local-clusters', 'meshdemo.json')));
    assert.ok(!readLines(sb.kindLog).some((a) => a[0] === 'delete'), 'nothing to delete');
  });

  it('a cluster of the same name created again outside meshdemo (another certificate authority) is never deleted by down', async () => {
    const sb = box();
    const bin = path.join(sb.tmp, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'kind'), kindStandinScript(), { mode: 0o755 });
    // the user deleted meshdemo's cluster by hand and made their own "meshdemo" with kind
    await promisify(execFile)(path.join(bin, 'kind'), ['create', 'cluster', '--name', 'meshdemo', '--image', PINNED_IMAGE, '--wait', '60s'], { env: { ...process.env, ...sb.env } as NodeJS.ProcessEnv });
    assert.deepEqual(runningClusters(sb.kindState), ['meshdemo']);
    // meshdemo's record of the cluster it had created, with that cluster's certificate authority
    writeState(sb.cache, { version: 1, name: 'meshdemo', context: 'kind-meshdemo', createdAt: '2026-11-30T10:00:00.000Z', kindVersion: '0.17.0', kind: path.join(bin, 'kind'), nodeImage: PINNED_IMAGE, kubeconfig: path.join(sb.home, '.kube', 'config'), configFile: path.join(sb.cache, 'local-clusters', 'meshdemo.kind.yaml'), mappings: [], caSha256: 'f'.repeat(64) });
    const d = await runMeshdemo(['--cache-dir', sb.cache, 'down', '--yes', '--json'], { env: sb.env });
    assert.equal(d.code, 0, d.stderr);
    assert.ok(
      d.events().some((e) => e.type === 'log' && e.level === 'note' && /^kind cluster "meshdemo" is not the one meshdemo created at 2026-11-30T10:00:00\.000Z \(its certificate authority differs/.test(e.message)),
      d.stdout,
    );
    assert.deepEqual(runningClusters(sb.kindState), ['meshdemo'], 'still there');
    assert.deepEqual(readLines(sb.kindLog).filter((a) => a[0] === 'delete'), []);
  });

  it('the kind that created the cluster has changed since (its sha256 is in the state file): down never runs it — exit 3 without a verified kind, else the cached one', async () => {
    const sb = box();
    const bin = path.join(sb.tmp, 'bin');
    fs.mkdirSync(bin);
    const kindOnPath = path.join(bin, 'kind');
    fs.writeFileSync(kindOnPath, kindStandinScript(), { mode: 0o755 });
    // what up recorded when kind v0.17.0 from PATH created the cluster (since deleted by hand)
    const recorded = createHash('sha256').update(kindStandinScript()).digest('hex');
    writeState(sb.cache, { version: 1, name: 'meshdemo', context: 'kind-meshdemo', createdAt: '2026-11-30T10:00:00.000Z', kindVersion: '0.17.0', kind: kindOnPath, kindSha256: recorded, nodeImage: PINNED_IMAGE, kubeconfig: path.join(sb.home, '.kube', 'config'), configFile: path.join(sb.cache, 'local-clusters', 'meshdemo.kind.yaml'), mappings: [] });
    // then someone who could write to that directory put another program there
    const ran = path.join(sb.tmp, 'planted-ran');
    fs.writeFileSync(kindOnPath, `#!/bin/sh\necho "$@" >> ${ran}\n`, { mode: 0o755 });
    const withBin = { ...sb.env, PATH: `${bin}${path.delimiter}${sb.env.PATH}` };

    const refused = await runMeshdemo(['--cache-dir', sb.cache, 'down', '--yes'], { env: withBin });
    assert.equal(refused.code, 3, refused.stderr);
    const lines = errorLines(refused.stderr);
    assert.equal(lines.length, 1, refused.stderr);
    assert.equal(
      lines[0],
      `error: no kind binary meshdemo may run for kind cluster "meshdemo": ${kindOnPath} is no longer the kind that created the cluster (sha256 ${createHash('sha256').update(fs.readFileSync(kindOnPath)).digest('hex')}, recorded ${recorded}), and there is no verified kind in the cache — put kind v0.17.0 on PATH, or run meshdemo download --kind to fetch the verified one, then run the command again`,
    );
    assert.ok(!fs.existsSync(ran), 'the changed kind never ran (not even as PATH\'s kind)');
    assert.ok(fs.existsSync(path.join(sb.cache, 'local-clusters', 'meshdemo.json')), 'the record is kept');

    // a verified kind in the cache, as meshdemo's kind-download step leaves it: down uses it, and says why
    const cached = path.join(sb.cache, 'kind', 'v0.17.0', 'kind');
    fs.mkdirSync(path.dirname(cached), { recursive: true });
    fs.writeFileSync(cached, kindStandinScript(), { mode: 0o755 });
    await writeManifest(`${cached}.manifest.json`, { source: recorded, files: { kind: recorded } });
    const d = await runMeshdemo(['--cache-dir', sb.cache, 'down', '--yes', '--json'], { env: withBin });
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(
      d.events().filter((e) => e.type === 'log' && e.level === 'warn').map((e) => e.message),
      [`not running the kind that created kind cluster "meshdemo": ${kindOnPath} is no longer the kind that created the cluster (sha256 ${createHash('sha256').update(fs.readFileSync(kindOnPath)).digest('hex')}, recorded ${recorded}); using ${cached}`],
    );
    assert.match(d.stdout, /kind cluster \\"meshdemo\\" was already gone; removed meshdemo's record of it/);
    assert.ok(!fs.existsSync(ran), 'the changed kind never ran');
    assert.ok(readLines(sb.kindLog).some((a) => a[0] === 'get' && a[1] === 'clusters'), 'the cached kind was asked');
    assert.ok(!fs.existsSync(path.join(sb.cache, 'local-clusters', 'meshdemo.json')));
  });

  it('kind creates the cluster but cannot write the kubeconfig (a held lock): exit 6, the cluster stays recorded, down deletes it', async () => {
    const server = await serve(kindRelease());
    const sb = box();
    fs.mkdirSync(path.join(sb.home, '.kube'));
    fs.writeFileSync(path.join(sb.home, '.kube', 'config.lock'), ''); // as kubectl or client-go leave it while writing
    const r = await runMeshdemo(['--cache-dir', sb.cache, 'up', '--yes', '--no-app', '--kind-mirror', server.url], { env: sb.env });
    assert.equal(r.code, 6, r.stderr);
    assert.match(errorLines(r.stderr)[0], /^error: .*kind.* failed with exit code 1, after it created cluster "meshdemo" — fix what kind reports, then run meshdemo up again/);
    assert.match(r.stderr, /ERROR: failed to create cluster: failed to lock config file: open .*\/home\/\.kube\/config\.lock: file exists/);
    assert.deepEqual(runningClusters(sb.kindState), ['meshdemo'], 'kind does not delete a cluster whose kubeconfig export failed');
    assert.ok(fs.existsSync(path.join(sb.cache, 'local-clusters', 'meshdemo.json')), 'meshdemo created it: recorded');
    fs.rmSync(path.join(sb.home, '.kube', 'config.lock'));
    const d = await runMeshdemo(['--cache-dir', sb.cache, 'down', '--yes'], { env: sb.env });
    assert.equal(d.code, 0, d.stderr);
    assert.deepEqual(runningClusters(sb.kindState), []);
    assert.ok(!fs.existsSync(path.join(sb.cache, 'local-clusters', 'meshdemo.json')));
  });

  it('kind get clusters fails (Docker gone): an error naming it, never "no cluster"; the record of meshdemo\'s cluster is kept', async () => {
    const sb = box();
    const bin = path.join(sb.tmp, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'kind'), kindStandinScript(), { mode: 0o755 });
    // the cluster meshdemo created (its record), running
    await promisify(execFile)(path.join(bin, 'kind'), ['create', 'cluster', '--name', 'meshdemo', '--image', PINNED_IMAGE], { env: { ...process.env, ...sb.env } as NodeJS.ProcessEnv });
    writeState(sb.cache, { version: 1, name: 'meshdemo', context: 'kind-meshdemo', createdAt: '2026-11-30T10:00:00.000Z', kindVersion: '0.17.0', kind: path.join(bin, 'kind'), nodeImage: PINNED_IMAGE, kubeconfig: path.join(sb.home, '.kube', 'config'), configFile: path.join(sb.cache, 'local-clusters', 'meshdemo.kind.yaml'), mappings: [] });
    const record = path.join(sb.cache, 'local-clusters', 'meshdemo.json');
    // Docker stops answering: kind (like kind v0.17.0's docker ps) cannot list the clusters
    const gone = { ...sb.env, DOCKER_HOST: `unix://${path.join(sb.tmp, 'no-docker.sock')}` };
    const d = await runMeshdemo(['--cache-dir', sb.cache, 'down', '--yes'], { env: gone });
    assert.equal(d.code, 6, d.stderr);
    assert.match(errorLines(d.stderr)[0], /^error: kind get clusters failed: failed to list clusters: command "docker ps -a --filter label=io\.x-k8s\.kind\.cluster --format '\{\{\.Label "io\.x-k8s\.kind\.cluster"\}\}'" failed with error: exit status 1, so meshdemo cannot tell which kind clusters exist — check that Docker answers/);
    assert.ok(fs.existsSync(record), 'never forgotten');
    assert.deepEqual(runningClusters(sb.kindState), ['meshdemo']);
    assert.ok(!readLines(sb.kindLog).some((a) => a[0] === 'delete'));
    const s = await runMeshdemo(['--cache-dir', sb.cache, 'status'], { env: gone });
    assert.doesNotMatch(s.stdout, /is absent/, 'status never calls it absent when kind cannot tell');
    assert.ok(fs.existsSync(record));
  });

  it('kind\'s --wait times out and kind exits 0 (a warning only): meshdemo checks the node itself — exit 4 naming it and why, the cluster recorded', async () => {
    const server = await serve(kindRelease());
    const sb = box({ STANDIN_KIND_NODE_NOT_READY: '1' });
    const r = await runMeshdemo(['--cache-dir', sb.cache, '--timeout', '5s', 'up', '--yes', '--no-app', '--kind-mirror', server.url], { env: sb.env });
    assert.equal(r.code, 4, r.stderr);
    assert.equal(errorLines(r.stderr)[0], 'error: the node(s) of kind cluster "meshdemo" are not Ready: meshdemo-control-plane — see why below (kubectl describe node --context kind-meshdemo); raise --timeout, or meshdemo down and up again to create it afresh');
    assert.match(r.stderr, /node meshdemo-control-plane: Ready=False KubeletNotReady \(runtime network not ready: NetworkReady=false/);
    const creates = readLines(sb.kindLog).filter((a) => a[0] === 'create');
    assert.equal(creates.length, 1);
    assert.deepEqual(creates[0].slice(-2), ['--wait', '5s']);
    assert.ok(fs.existsSync(path.join(sb.cache, 'local-clusters', 'meshdemo.json')), 'meshdemo created it: recorded, so down deletes it');
    // kind exited 0 after its warning (else this would be exit 6 naming kind); nothing after the cluster ran
    assert.ok(!r.stderr.includes('failed with exit code'), r.stderr);
    assert.deepEqual(server.requests.map((q) => q.path).filter((p) => !p.startsWith('/v0.17.0/')), []);
  });

  /** A Docker of that version for meshdemo and kind (`docker version` answered), networks stood in, the rest real. */
  const dockerOfVersion = (sb: Sandbox, version: string) => withDockerShim(sb, `if [ "$1" = version ]; then echo '${version}|${version}'; exit 0; fi`);
  /** up until kind has created the cluster: its node never Ready, so meshdemo stops there (exit 4) — the rest is the main flow's. */
  const upToKindCreate = (sb: Sandbox, env: Record<string, string | undefined>, server: ReleaseServer) =>
    runMeshdemo(['--cache-dir', sb.cache, '--timeout', '5s', 'up', '--yes', '--no-app', '--json', '--kind-mirror', server.url], { env });
  const networkStep = (sb: Sandbox) => JSON.parse(fs.readFileSync(path.join(sb.kindState, 'meshdemo', 'network.json'), 'utf8'));
  const createdNetworkLog = /^created docker network "kind" IPv4-only/;

  it('Docker 28 without ip6tables NAT: kind v0.17.0 alone fails on its IPv6 network; up first creates "kind" IPv4-only as kind would, and kind reuses it', async () => {
    const server = await serve(kindRelease());
    const sb = box({ STANDIN_KIND_NODE_NOT_READY: '1' }, { ip6tablesNat: false });
    const env = dockerOfVersion(sb, '28.2.2');
    // kind v0.17.0 by itself on such a host (kubernetes-sigs/kind#3748): exit 1, no network, no cluster
    const bin = path.join(sb.tmp, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'kind'), kindStandinScript(), { mode: 0o755 });
    const alone = await promisify(execFile)(path.join(bin, 'kind'), ['create', 'cluster', '--name', 'alone', '--image', PINNED_IMAGE], { env: { ...process.env, ...env } as NodeJS.ProcessEnv }).then(
      () => ({ code: 0, stderr: '' }),
      (e) => ({ code: e.code as number, stderr: e.stderr as string }),
    );
    assert.equal(alone.code, 1, alone.stderr);
    assert.match(
      alone.stderr,
      /^ERROR: failed to create cluster: failed to ensure docker network: command "docker network create -d=bridge -o com\.docker\.network\.bridge\.enable_ip_masquerade=true -o com\.docker\.network\.driver\.mtu=1500 --ipv6 --subnet fc00:f853:ccd:e793::\/64 kind" failed with error: exit status 1\n\nCommand Output: Error response from daemon: Failed to Setup IP tables: Unable to enable NAT rule: .*ip6tables --wait -t nat -I POSTROUTING -s fc00:f853:ccd:e793::\/64 /m,
    );
    assert.ok(!sb.network.networks().some((n) => n.Name === 'kind'));
    assert.deepEqual(runningClusters(sb.kindState), []);

    const r = await upToKindCreate(sb, env, server);
    assert.equal(r.code, 4, r.stderr);
    // kind's failed IPv6 attempt above, then meshdemo's; kind itself created none for this cluster
    assert.deepEqual(sb.network.calls().filter((a) => a[1] === 'create'), [
      ['network', 'create', '-d=bridge', '-o', 'com.docker.network.bridge.enable_ip_masquerade=true', '-o', 'com.docker.network.driver.mtu=1500', '--ipv6', '--subnet', 'fc00:f853:ccd:e793::/64', 'kind'],
      ['network', 'create', '-d=bridge', '-o', 'com.docker.network.bridge.enable_ip_masquerade=true', '-o', 'com.docker.network.driver.mtu=1500', 'kind'],
    ]);
    const made = sb.network.networks().find((n) => n.Name === 'kind')!;
    assert.equal(made.EnableIPv6, false);
    assert.deepEqual(made.IPAM.Config, []);
    assert.deepEqual(made.Options, { 'com.docker.network.bridge.enable_ip_masquerade': 'true', 'com.docker.network.driver.mtu': '1500' });
    assert.deepEqual(networkStep(sb), { name: 'kind', created: false }, 'kind found it and reused it');
    assert.ok(r.events().some((e) => e.type === 'log' && e.level === 'info' && createdNetworkLog.test(e.message) && e.message.includes('Docker 28.2.2')));
    assert.deepEqual(runningClusters(sb.kindState), ['meshdemo'], 'kind created the cluster on it');
  });

  it('a "kind" network that exists (kind made it earlier, with IPv6) is reused untouched; before Docker 27 up leaves the network to kind', async () => {
    const server = await serve(kindRelease());
    const existing = box({ STANDIN_KIND_NODE_NOT_READY: '1' }, { ip6tablesNat: false, existing: [{ name: 'kind', ipv6Subnet: 'fc00:f853:ccd:e793::/64' }] });
    const networks = existing.network.networks();
    const r = await upToKindCreate(existing, dockerOfVersion(existing, '28.2.2'), server);
    assert.equal(r.code, 4, r.stderr);
    assert.deepEqual(existing.network.calls().filter((a) => a[1] !== 'ls' && a[1] !== 'inspect'), [], 'nothing but reads');
    assert.deepEqual(existing.network.networks(), networks, 'untouched');
    assert.deepEqual(networkStep(existing), { name: 'kind', created: false });
    assert.ok(!r.events().some((e) => e.type === 'log' && createdNetworkLog.test(e.message)));
    await stopStandinClusters(existing.kindState); // its node holds the mapped ports

    const older = box({ STANDIN_KIND_NODE_NOT_READY: '1' }, { ip6tablesNat: true });
    const o = await upToKindCreate(older, dockerOfVersion(older, '26.1.5'), server);
    assert.equal(o.code, 4, o.stderr);
    // meshdemo asked nothing about networks; kind v0.17.0 listed, read the bridge's MTU, and made its IPv6 network
    assert.deepEqual(older.network.calls(), [
      ['network', 'ls', '--filter=name=^kind$', '--format={{.ID}}'],
      ['network', 'inspect', 'bridge', '-f', '{{ index .Options "com.docker.network.driver.mtu" }}'],
      ['network', 'create', '-d=bridge', '-o', 'com.docker.network.bridge.enable_ip_masquerade=true', '-o', 'com.docker.network.driver.mtu=1500', '--ipv6', '--subnet', 'fc00:f853:ccd:e793::/64', 'kind'],
    ]);
    assert.deepEqual(networkStep(older), { name: 'kind', created: true, ipv6: true });
  });

  it('an arm64 Docker engine: exit 3 before any download or kind call, naming what works', async () => {
    const server = await serve(kindRelease());
    const sb = box();
    // an arm64 engine cannot run here: the real daemon's `docker info`, reported as aarch64
    const r = await runMeshdemo(['--cache-dir', sb.cache, 'up', '--yes', '--no-app', '--kind-mirror', server.url], {
      env: withDockerShim(sb, `if [ "$1" = info ]; then "$REAL" "$@" | sed 's/"Architecture":"[^"]*"/"Architecture":"aarch64"/'; exit 0; fi`),
    });
    assert.equal(r.code, 3, r.stderr);
    assert.deepEqual(errorLines(r.stderr), [
      'error: Docker runs on aarch64: Istio 1.8.4\'s images exist for amd64 only, and kind v0.17.0 cannot run an amd64 node under emulation — run meshdemo on an amd64 machine, or pass --context for an existing Kubernetes 1.16–1.19 cluster with amd64 nodes',
    ]);
    assert.deepEqual(server.requests, [], 'nothing downloaded');
    assert.ok(!fs.existsSync(sb.kindLog), 'kind never ran');
    assert.ok(!fs.existsSync(path.join(sb.cache, 'local-clusters')));
  });

  it('Docker 25.0.0 (its docker save breaks kind load): exit 3 with the upgrade hint, before anything', async () => {
    const server = await serve(kindRelease());
    const sb = box();
    const r = await runMeshdemo(['--cache-dir', sb.cache, 'up', '--yes', '--no-app', '--kind-mirror', server.url], {
      env: withDockerShim(sb, `if [ "$1" = version ]; then echo '25.0.0|25.0.0'; exit 0; fi`),
    });
    assert.equal(r.code, 3, r.stderr);
    assert.deepEqual(errorLines(r.stderr), ["error: Docker 25.0.0's docker save breaks kind load docker-image (moby/moby#47150) — upgrade Docker to 25.0.1 or later (or pass --context for an existing cluster)"]);
    assert.deepEqual(server.requests, []);
    assert.ok(!fs.existsSync(sb.kindLog));
  });

  it('Podman\'s docker shim: exit 3 saying kind would switch to its Podman provider, before anything', async () => {
    const server = await serve(kindRelease());
    const sb = box();
    const r = await runMeshdemo(['--cache-dir', sb.cache, 'up', '--yes', '--no-app', '--kind-mirror', server.url], {
      env: withDockerShim(sb, `if [ "$1" = -v ]; then echo 'podman version 4.9.3'; exit 0; fi`),
    });
    assert.equal(r.code, 3, r.stderr);
    assert.match(errorLines(r.stderr)[0], /^error: `docker` is not Docker \(docker -v: "podman version 4\.9\.3"\), so kind v0\.17\.0 would use its experimental Podman provider instead, which meshdemo does not support — install Docker Engine/);
    assert.deepEqual(server.requests, []);
    assert.ok(!fs.existsSync(sb.kindLog));
  });

  it('an unwritable --cache-dir (under /proc, or a file): exit 2 naming it, before anything', async () => {
    const server = await serve(kindRelease());
    const sb = box();
    const file = path.join(sb.tmp, 'a-file');
    fs.writeFileSync(file, '');
    for (const [dir, why] of [['/proc/meshdemo-cache', 'mkdir: ENOENT'], [file, 'not a directory']]) {
      const r = await runMeshdemo(['--cache-dir', dir, 'up', '--yes', '--no-app', '--kind-mirror', server.url], { env: sb.env });
      assert.equal(r.code, 2, r.stderr);
      assert.deepEqual(errorLines(r.stderr), [`error: the cache dir ${dir} is not writable (${why}) — pass a writable directory with --cache-dir (or MESHDEMO_CACHE_DIR)`]);
    }
    assert.deepEqual(server.requests, [], 'nothing downloaded');
    assert.ok(!fs.existsSync(sb.kindLog), 'kind never ran');
    assert.ok(!fs.existsSync(path.join(sb.home, '.kube')));
  });

  it('a cluster with no amd64 node: exit 3 in preflight, nothing changed', async () => {
    const server = await serve(kindRelease());
    const sb = box({ STANDIN_KIND_NODE_ARCH: 'arm64' });
    const bin = path.join(sb.tmp, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'kind'), kindStandinScript(), { mode: 0o755 });
    await promisify(execFile)(path.join(bin, 'kind'), ['create', 'cluster', '--name', 'arm', '--image', PINNED_IMAGE], { env: { ...process.env, ...sb.env } as NodeJS.ProcessEnv });
    const node = JSON.parse(fs.readFileSync(path.join(sb.kindState, 'arm', 'node.json'), 'utf8'));
    const target = { server: node.server, caFile: node.caFile, adminToken: node.adminToken } as ControlPlane;
    const before = await snapshotCluster(target);
    const r = await runMeshdemo(['--cache-dir', sb.cache, '--context', 'kind-arm', 'up', '--yes', '--no-app', '--istio-mirror', server.url], { env: sb.env });
    assert.equal(r.code, 3, r.stderr);
    assert.deepEqual(errorLines(r.stderr), [
      'error: the cluster has no amd64 node (1× arm64): Istio 1.8.4\'s images exist for amd64 only (Istio publishes arm64 images from 1.15 on) — use a cluster with amd64 nodes (--context)',
    ]);
    assert.deepEqual(await snapshotCluster(target), before);
    assert.deepEqual(server.requests, [], 'nothing downloaded');
  });

  it('a kubeconfig whose server is unreachable: exit 3 with a hint naming --local, no cluster created', async () => {
    const server = await serve(kindRelease());
    const sb = box();
    fs.mkdirSync(path.join(sb.home, '.kube'));
    fs.writeFileSync(
      path.join(sb.home, '.kube', 'config'),
      yaml.dump({ apiVersion: 'v1', kind: 'Config', clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }], users: [{ name: 'u', user: { token: 'x' } }], contexts: [{ name: 'prod', context: { cluster: 'c', user: 'u' } }], 'current-context': 'prod' }),
    );
    const r = await runMeshdemo(['--cache-dir', sb.cache, 'up', '--yes', '--no-app', '--kind-mirror', server.url], { env: sb.env });
    assert.equal(r.code, 3, r.stderr);
    const [line] = errorLines(r.stderr);
    assert.match(line, /cannot reach the API server at https:\/\/127\.0\.0\.1:1/);
    assert.match(line, /meshdemo up --local/);
    assert.deepEqual(server.requests, []);
    assert.ok(!fs.existsSync(sb.kindLog));
  });
});

describe('pre-loading images into a kind cluster: Docker Hub\'s pull limit, kind load on the containerd image store', { skip, timeout: 900_000 }, () => {
  let docker: DockerEnv;
  let server: ReleaseServer;
  let hub: RateLimitedRegistry;
  let sb: Sandbox;
  let target: ControlPlane;
  let env: Record<string, string | undefined>;

  before(async () => {
    sb = sandbox('local-preload');
    docker = await startDockerEnv();
    sb.env.DOCKER_HOST = docker.dockerHost;
    const archive = await buildReleaseArchive({ outDir: path.join(sb.tmp, 'release') });
    server = await startReleaseServer({ '1.8.4/istio-1.8.4-linux-amd64.tar.gz': archive.path });
    hub = await startRateLimitedRegistry();
    const bin = path.join(sb.tmp, 'bin');
    fs.mkdirSync(bin);
    fs.writeFileSync(path.join(bin, 'kind'), kindStandinScript(), { mode: 0o755 });
    env = { ...sb.env, PATH: `${bin}${path.delimiter}${sb.env.PATH}` };
    // a kind cluster made outside meshdemo (context kind-preload), as `kind create cluster` leaves it
    await promisify(execFile)(path.join(bin, 'kind'), ['create', 'cluster', '--name', 'preload', '--image', PINNED_IMAGE], { env: { ...process.env, ...env } as NodeJS.ProcessEnv });
    const node = JSON.parse(fs.readFileSync(path.join(sb.kindState, 'preload', 'node.json'), 'utf8'));
    target = { server: node.server, caFile: node.caFile, adminToken: node.adminToken } as ControlPlane;
  });
  after(async () => {
    await stopStandinClusters(sb?.kindState);
    await hub?.close();
    await server?.close();
    await docker?.stop();
    if (sb) fs.rmSync(sb.tmp, { recursive: true, force: true });
  });

  it('the registry answers toomanyrequests (429, Docker Hub\'s body): exit 6 naming docker login, nothing loaded, Istio not installed', async () => {
    const r = await runMeshdemo(['--cache-dir', sb.cache, '--context', 'kind-preload', 'up', '--yes', '--no-app', '--istio-mirror', server.url, '--istio-set', `hub=${hub.host}/istio`], { env, timeoutMs: 600_000 });
    assert.equal(r.code, 6, r.stderr);
    assert.equal(
      errorLines(r.stderr)[0],
      `error: docker pull ${hub.host}/istio/pilot:1.8.4 was refused by the registry's pull rate limit (toomanyrequests) — run \`docker login\` (an account gets a higher limit than anonymous pulls), or wait for the limit to reset, then re-run meshdemo up`,
    );
    // docker's own words stay below the line: the registry's message, as Docker Hub sends it
    assert.ok(r.stderr.includes(`toomanyrequests: ${PULL_LIMIT_MESSAGE}`), r.stderr);
    // the real dockerd asked the stand-in registry for the manifest (after the anonymous token), and got 429
    assert.ok(hub.requests.some((q) => q.path === '/token'), JSON.stringify(hub.requests));
    assert.ok(hub.requests.some((q) => q.path === '/v2/istio/pilot/manifests/1.8.4'), JSON.stringify(hub.requests));
    assert.ok(!fs.existsSync(path.join(sb.kindState, 'preload', 'images.json')), 'nothing loaded into the node');
    assert.ok(!readLines(sb.kindLog).some((a) => a[0] === 'load'), 'kind load never ran');
    // istioctl never ran (the pre-load comes first): no Istio object in the cluster
    const istio = (await apiRequest(target.server, { ca: fs.readFileSync(target.caFile), token: target.adminToken, path: '/apis/apps/v1/namespaces/istio-system/deployments' })).body;
    assert.deepEqual(JSON.parse(istio).items ?? [], []);
  });

  it('kind load docker-image fails on a content digest missing from docker save\'s archive: meshdemo loads the nodes\' platform alone (docker save --platform, kind load image-archive)', async () => {
    // one image id each (a tag of one image would be re-tagged on the node, not loaded): the base image plus a label
    for (const ref of PRELOADED) {
      execFileSync('docker', ['build', '--pull=false', '-t', ref, '-'], { input: `FROM ${docker.baseImage}\nLABEL io.meshdemo.test.ref=${ref}\n`, env: { ...process.env, DOCKER_HOST: docker.dockerHost }, stdio: ['pipe', 'ignore', 'pipe'] });
    }
    const shim = withContainerdStoreShim({ ...sb, env });
    // kind v0.17.0's own words for it (the stand-in's import, as ctr's): exit 1, nothing loaded
    const kind = await promisify(execFile)('kind', ['load', 'docker-image', PRELOADED[0], '--name', 'preload'], { env: { ...process.env, ...shim.env } as NodeJS.ProcessEnv }).then(
      () => ({ code: 0, stderr: '' }),
      (e) => ({ code: e.code as number, stderr: e.stderr as string }),
    );
    assert.equal(kind.code, 1);
    assert.match(
      kind.stderr,
      /^Image: "docker\.io\/istio\/pilot:1\.8\.4" with ID "sha256:[0-9a-f]{64}" not yet present on node "preload-control-plane", loading\.\.\.\nERROR: failed to load image: command "docker exec --privileged -i preload-control-plane ctr --namespace=k8s\.io images import --all-platforms --digests --snapshotter=overlayfs -" failed with error: exit status 1\n\nCommand Output: ctr: content digest sha256:[0-9a-f]{64}: not found\n$/,
    );
    assert.ok(!fs.existsSync(path.join(sb.kindState, 'preload', 'images.json')));

    const tmpBefore = fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('meshdemo-image-'));
    const kindCallsBefore = readLines(sb.kindLog).length;
    const r = await runMeshdemo(['--cache-dir', sb.cache, '--context', 'kind-preload', 'up', '--yes', '--no-app', '--json', '--istio-mirror', server.url], { env: shim.env, timeoutMs: 600_000 });
    assert.equal(r.code, 0, r.stderr + r.stdout.slice(-3000));
    const events = r.events();
    assert.equal(events.find((e) => e.type === 'step' && e.id === 'cluster-images' && e.status === 'done')?.message, `${PRELOADED.length} loaded into kind cluster "preload" (0 pulled first)`);
    const loads = readLines(sb.kindLog).slice(kindCallsBefore).filter((a) => a[0] === 'load');
    const saves = shim.calls().filter((a) => a[0] === 'save' && a[1] === '--platform');
    for (const ref of PRELOADED) {
      // kind load docker-image failed, then that image's linux/amd64 alone was saved and loaded as an archive
      const at = loads.findIndex((a) => a.join(' ') === `load docker-image ${ref} --name preload`);
      assert.ok(at >= 0, `${ref}: ${JSON.stringify(loads)}`);
      const save = saves.find((a) => a.at(-1) === ref);
      assert.deepEqual(save?.slice(0, 3), ['save', '--platform', 'linux/amd64'], ref);
      assert.deepEqual(loads[at + 1], ['load', 'image-archive', save![4], '--name', 'preload']);
      assert.ok(events.some((e) => e.type === 'log' && e.level === 'note' && e.message.startsWith(`${ref}: kind load docker-image failed on a content digest missing from docker save's archive`) && e.message.endsWith('loaded linux/amd64 alone instead (docker save --platform linux/amd64, kind load image-archive)')));
    }
    // every image is on the node (its kubelet lists them), and the archives are gone
    const nodeImages = async () =>
      new Set<string>(JSON.parse((await apiRequest(target.server, { ca: fs.readFileSync(target.caFile), token: target.adminToken, path: '/api/v1/nodes/preload-control-plane' })).body).status.images.flatMap((i: any) => i.names));
    let listed = await nodeImages();
    // the kubelet reports its runtime's images with the node status (the simulator's next resync)
    for (let i = 0; i < 60 && !PRELOADED.every((ref) => listed.has(normalizeReference(ref))); i++) {
      await new Promise((res) => setTimeout(res, 500));
      listed = await nodeImages();
    }
    for (const ref of PRELOADED) assert.ok(listed.has(normalizeReference(ref)), `${ref} on the node: ${[...listed].join(', ')}`);
    assert.deepEqual(fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith('meshdemo-image-') && !tmpBefore.includes(n)), []);
  });

  it('the fallback fails too (a Docker whose API has no docker save --platform): exit 6 in one line naming the fix, the image not loaded', async () => {
    const tag = '1.8.4-fallback';
    for (const ref of [`docker.io/istio/pilot:${tag}`, `docker.io/istio/proxyv2:${tag}`]) {
      execFileSync('docker', ['build', '--pull=false', '-t', ref, '-'], { input: `FROM ${docker.baseImage}\nLABEL io.meshdemo.test.ref=${ref}\n`, env: { ...process.env, DOCKER_HOST: docker.dockerHost }, stdio: ['pipe', 'ignore', 'pipe'] });
    }
    const shim = withContainerdStoreShim({ ...sb, env }, { platformSave: 'real-cli' });
    const r = await runMeshdemo(['--cache-dir', sb.cache, '--context', 'kind-preload', 'up', '--yes', '--no-app', '--istio-mirror', server.url, '--istio-set', `tag=${tag}`], { env: shim.env, timeoutMs: 600_000 });
    assert.equal(r.code, 6, r.stderr);
    const lines = errorLines(r.stderr);
    assert.match(
      lines[0],
      new RegExp(
        `^error: kind load docker-image docker\\.io/istio/pilot:${tag} failed: docker save's archive lacks content digest sha256:[0-9a-f]{64} \\(Docker's containerd image store, kubernetes-sigs/kind#3795\\), and loading linux/amd64 alone failed too \\(.*docker.* failed with exit code \\d+\\) — Docker 28 or later saves one platform \\(docker save --platform\\); or switch off the containerd image store`,
      ),
    );
    // docker's own reason stays below the line: the CLI refuses --platform against the daemon's older API
    assert.match(r.stderr.split('\n').slice(1).join('\n'), /"--platform" requires API version 1\.48/, r.stderr);
    const images = path.join(sb.kindState, 'preload', 'images.json');
    const onNode = fs.existsSync(images) ? Object.keys(JSON.parse(fs.readFileSync(images, 'utf8'))) : [];
    assert.ok(!onNode.some((ref) => ref.endsWith(`:${tag}`)), 'not on the node');
  });
});

/**
 * Docker's containerd image store (Docker Desktop, new Docker 29 installs) cannot run here — the tests' dockerd uses the
 * classic store and nothing can be pulled — so a `docker` first on PATH stands for what it changes: `docker save` without
 * --platform writes an archive whose index.json also names an attestation manifest the store never held (as a pulled
 * or buildx-built image's index does, kubernetes-sigs/kind#3795, #4236); with --platform it writes that platform alone,
 * which the real daemon (one platform per image) does without the flag — or, with platformSave 'real-cli', the flag goes
 * to the real CLI, which refuses it against this daemon's older API as it does against Docker 24–27. Everything else goes
 * to the real CLI. Each
 * call is logged (JSON argv) to `<dir>/docker.log`.
 */
function withContainerdStoreShim(sb: Sandbox, opts: { platformSave: 'one-platform' | 'real-cli' } = { platformSave: 'one-platform' }): { env: Record<string, string | undefined>; calls(): string[][] } {
  const bin = path.join(sb.tmp, 'containerd-store-shim');
  fs.mkdirSync(bin, { recursive: true });
  const real = path.join(sb.network.bin, 'docker');
  const log = path.join(bin, 'docker.log');
  const attestation = JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.manifest.v1+json', artifactType: 'application/vnd.docker.attestation.manifest.v1+json' });
  const digest = `sha256:${createHash('sha256').update(attestation).digest('hex')}`;
  const index = JSON.stringify({
    schemaVersion: 2,
    mediaType: 'application/vnd.oci.image.index.v1+json',
    manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest, size: attestation.length, annotations: { 'vnd.docker.reference.type': 'attestation-manifest' }, platform: { architecture: 'unknown', os: 'unknown' } }],
  });
  const script = `#!${process.execPath}
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const args = process.argv.slice(2);
fs.appendFileSync(${JSON.stringify(log)}, JSON.stringify(args) + '\\n');
const real = (a) => spawnSync(${JSON.stringify(real)}, a, { stdio: 'inherit' }).status ?? 1;
if (args[0] !== 'save') process.exit(real(args));
const p = args.findIndex((a) => a === '--platform' || a.startsWith('--platform='));
if (p >= 0) {
  if (${JSON.stringify(opts.platformSave)} === 'one-platform') args.splice(p, args[p].includes('=') ? 1 : 2);
  process.exit(real(args));
}
const code = real(args);
if (code !== 0) process.exit(code);
const out = args[args.indexOf('-o') + 1];
const dir = fs.mkdtempSync(path.join(path.dirname(out), 'index-'));
fs.writeFileSync(path.join(dir, 'index.json'), ${JSON.stringify(index)});
const tar = spawnSync('tar', ['-rf', out, '-C', dir, 'index.json'], { stdio: 'inherit' });
fs.rmSync(dir, { recursive: true, force: true });
process.exit(tar.status ?? 1);
`;
  fs.writeFileSync(path.join(bin, 'docker'), script, { mode: 0o755 });
  return { env: { ...sb.env, PATH: `${bin}${path.delimiter}${sb.env.PATH ?? process.env.PATH}` }, calls: () => readLines(log) };
}
