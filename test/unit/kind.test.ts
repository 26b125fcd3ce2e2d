import { after, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import yaml from 'js-yaml';
import { GATEWAY_NODE_PORTS, kindConfigYaml, localPortMappings } from '../../src/kind/config.js';
import { kindAssetName, kindDownloadUrl, NODE_IMAGE, parseClusterName } from '../../src/kind/pins.js';
import { decideLocalCluster } from '../../src/kind/decide.js';
import { hostEndpoint, requireMapped, sameClusterAsRecorded, stateForContext, writeState } from '../../src/kind/state.js';
import { clusterCaSha256, kubeconfigKindWrites } from '../../src/kube/kubeconfig.js';
import { allDashboardNodePorts, parseUpSettings } from '../../src/settings.js';
import { oneLine, UsageError } from '../../src/core/errors.js';
import type { GlobalOptions } from '../../src/core/options.js';

const mappingsFor = (o: Record<string, any> = {}) => {
  const s = parseUpSettings(o);
  return localPortMappings({ dashboardNodePorts: allDashboardNodePorts(s.nodePorts), gatewayHttp2NodePort: s.gatewayNodePort });
};

describe('kind config for the local cluster', () => {
  it('one control-plane node on the pinned 1.19 image by digest, every printed port mapped on 127.0.0.1 only', () => {
    const doc = yaml.load(kindConfigYaml({ name: 'meshdemo', image: NODE_IMAGE, mappings: mappingsFor() })) as any;
    assert.equal(doc.kind, 'Cluster');
    assert.equal(doc.apiVersion, 'kind.x-k8s.io/v1alpha4');
    assert.equal(doc.name, 'meshdemo');
    assert.equal(doc.nodes.length, 1);
    const [node] = doc.nodes;
    assert.equal(node.role, 'control-plane');
    assert.match(node.image, /^kindest\/node:v1\.19\.\d+@sha256:[0-9a-f]{64}$/);
    assert.equal(node.image, 'kindest/node:v1.19.16@sha256:476cb3269232888437b61deca013832fee41f9f074f9bed79f57e4280f7c48b7');
    assert.deepEqual(
      node.extraPortMappings,
      [31001, 31002, 31003, 31004, 31005, 31080].map((p) => ({ containerPort: p, hostPort: p, listenAddress: '127.0.0.1', protocol: 'TCP' })),
    );
  });

  it('follows --node-port and --gateway-node-port', () => {
    const m = mappingsFor({ nodePort: ['kiali=32001,grafana=32002'], gatewayNodePort: '30080' });
    assert.deepEqual(
      m.map((x) => [x.name, x.containerPort, x.hostPort]),
      [['kiali', 32001, 32001], ['grafana', 32002, 32002], ['prometheus', 31003, 31003], ['tracing', 31004, 31004], ['zipkin', 31005, 31005], ['gateway', 30080, 30080]],
    );
  });

  it('no pinned gateway port may be a dashboard port', () => {
    assert.throws(() => parseUpSettings({ gatewayNodePort: '31001' }), (e: unknown) => e instanceof UsageError && /31001 is both the kiali dashboard's and the ingress gateway's http2/.test(e.message));
    assert.throws(() => parseUpSettings({ nodePort: ['grafana=31443'] }), (e: unknown) => e instanceof UsageError && /https/.test(e.message) && /--node-port grafana/.test(e.hint ?? ''));
    assert.throws(() => parseUpSettings({ gatewayNodePort: 'x' }), UsageError);
    const pinned = Object.values(GATEWAY_NODE_PORTS);
    assert.equal(new Set(pinned).size, pinned.length);
    for (const p of pinned) assert.ok(p >= 30000 && p <= 32767 && (p < 31001 || p > 31005), String(p));
  });

  it('kind release assets and names', () => {
    assert.equal(kindAssetName('linux', 'x64'), 'kind-linux-amd64');
    assert.equal(kindAssetName('darwin', 'arm64'), 'kind-darwin-arm64');
    assert.equal(kindAssetName('linux', 'arm64'), 'kind-linux-arm64');
    assert.throws(() => kindAssetName('linux', 'ppc64'), UsageError, 'kind builds ppc64le, but there is no node image for it');
    assert.throws(() => kindAssetName('win32', 'x64'), UsageError);
    assert.equal(kindDownloadUrl('http://127.0.0.1:9/mirror/', 'kind-linux-amd64'), 'http://127.0.0.1:9/mirror/v0.17.0/kind-linux-amd64');
    assert.equal(parseClusterName('meshdemo'), 'meshdemo');
    assert.throws(() => parseClusterName('Mesh_Demo'), UsageError);
    assert.throws(() => parseUpSettings({ kindSha256: 'abc' }), (e: unknown) => e instanceof UsageError && /--kind-sha256/.test(e.message));
    assert.throws(() => parseUpSettings({ kindMirror: 'ftp://x' }), (e: unknown) => e instanceof UsageError && /--kind-mirror/.test(e.message));
  });
});

describe('when up uses the local cluster', () => {
  const made: string[] = [];
  const temp = (prefix: string) => {
    const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
    made.push(d);
    return d;
  };
  after(() => made.forEach((d) => fs.rmSync(d, { recursive: true, force: true })));
  const global = (o: Partial<GlobalOptions> = {}): GlobalOptions => ({ namespace: 'default', yes: true, json: false, verbose: false, cacheDir: temp('md-cache-'), timeoutMs: 1000, ...o });
  const home = () => temp('md-home-');

  it('no kubeconfig at all: local, on the context kind-<name> — a value: the global options stay as given', () => {
    const g = global();
    const d = decideLocalCluster(parseUpSettings({}), g, { HOME: home() });
    assert.equal(d?.name, 'meshdemo');
    assert.equal(d?.context, 'kind-meshdemo');
    assert.match(d!.reason, /no kubeconfig at .*\.kube\/config/);
    assert.equal(g.context, undefined);
  });

  it('a kubeconfig without current context: local; with one: not local; --local forces it', () => {
    const h = home();
    fs.mkdirSync(path.join(h, '.kube'));
    fs.writeFileSync(path.join(h, '.kube', 'config'), 'apiVersion: v1\nkind: Config\nclusters: []\ncontexts: []\nusers: []\n');
    assert.match(decideLocalCluster(parseUpSettings({}), global(), { HOME: h })!.reason, /has no current context/);
    fs.writeFileSync(path.join(h, '.kube', 'config'), 'apiVersion: v1\nkind: Config\ncurrent-context: prod\n');
    const g = global();
    assert.equal(decideLocalCluster(parseUpSettings({}), g, { HOME: h }), undefined);
    assert.equal(g.context, undefined);
    assert.equal(decideLocalCluster(parseUpSettings({ local: true, clusterName: 'demo' }), global(), { HOME: h })?.context, 'kind-demo');
  });

  it('--kubeconfig, --context or KUBECONFIG given: never local unless --local', () => {
    const h = home();
    assert.equal(decideLocalCluster(parseUpSettings({}), global({ kubeconfig: '/nonexistent' }), { HOME: h }), undefined);
    assert.equal(decideLocalCluster(parseUpSettings({}), global({ context: 'x' }), { HOME: h }), undefined);
    assert.equal(decideLocalCluster(parseUpSettings({}), global(), { HOME: h, KUBECONFIG: '/nonexistent' }), undefined);
    assert.throws(() => decideLocalCluster(parseUpSettings({ local: true }), global({ context: 'prod' }), { HOME: h }), UsageError);
  });

  it('the current context is meshdemo\'s own local cluster: local (so plan and status show it)', () => {
    const h = home();
    const g = global();
    fs.mkdirSync(path.join(h, '.kube'));
    fs.writeFileSync(path.join(h, '.kube', 'config'), 'current-context: kind-meshdemo\n');
    assert.equal(decideLocalCluster(parseUpSettings({}), g, { HOME: h }), undefined, 'a kind cluster meshdemo did not create is used as any cluster');
    writeState(g.cacheDir, { version: 1, name: 'meshdemo', context: 'kind-meshdemo', createdAt: 'now', kindVersion: '0.17.0', kind: '/k', nodeImage: NODE_IMAGE, kubeconfig: 'k', configFile: 'c', mappings: [{ name: 'kiali', containerPort: 31001, hostPort: 41001 }] });
    assert.match(decideLocalCluster(parseUpSettings({}), g, { HOME: h })!.reason, /meshdemo's local cluster/);
    const state = stateForContext(g.cacheDir, 'kind-meshdemo')!;
    assert.deepEqual(hostEndpoint(state, 31001), { address: '127.0.0.1', port: 41001 });
    assert.equal(hostEndpoint(state, 31002), undefined);
    assert.equal(stateForContext(g.cacheDir, 'kind-other'), undefined);
  });

  it('a cluster created again under the same name is told apart by its certificate authority', () => {
    const dir = temp('md-ca-');
    const kc = path.join(dir, 'config');
    fs.writeFileSync(kc, yaml.dump({ clusters: [{ name: 'kind-meshdemo', cluster: { server: 'https://127.0.0.1:1', 'certificate-authority-data': 'Q0EtMQ==' } }], contexts: [{ name: 'kind-meshdemo', context: { cluster: 'kind-meshdemo', user: 'u' } }] }));
    const sha = clusterCaSha256([path.join(dir, 'missing'), kc], 'kind-meshdemo')!;
    assert.match(sha, /^[0-9a-f]{64}$/);
    assert.equal(clusterCaSha256([kc], 'kind-other'), undefined);
    const state = { version: 1 as const, name: 'meshdemo', context: 'kind-meshdemo', createdAt: 'now', kindVersion: '0.17.0', kind: '/k', nodeImage: NODE_IMAGE, kubeconfig: kc, configFile: 'c', mappings: [] };
    assert.equal(sameClusterAsRecorded({ ...state, caSha256: sha }, [kc]), true);
    assert.equal(sameClusterAsRecorded({ ...state, caSha256: 'f'.repeat(64) }, [kc]), false);
    assert.equal(sameClusterAsRecorded(state, [kc]), true, 'an interrupted creation recorded no CA: the record is trusted');
    assert.equal(sameClusterAsRecorded({ ...state, caSha256: 'f'.repeat(64) }, [path.join(dir, 'missing')]), true, 'no context to compare with (kind removed it): the record is trusted');
  });

  it('a node port the local cluster does not map is refused with one line naming it and the fix: exit 2', () => {
    const state = { version: 1 as const, name: 'meshdemo', context: 'kind-meshdemo', createdAt: 'now', kindVersion: '0.17.0', kind: '/k', nodeImage: NODE_IMAGE, kubeconfig: 'k', configFile: 'c', mappings: mappingsFor() };
    assert.doesNotThrow(() => requireMapped(state, mappingsFor(), () => 'fix'));
    assert.throws(
      () => requireMapped(state, [{ name: 'grafana', containerPort: 32002 }, { name: 'kiali', containerPort: 31001 }], (m) => `fix ${m.name}=${m.containerPort}`),
      (e: unknown) =>
        e instanceof UsageError &&
        e.exitCode === 2 &&
        e.message === 'node port 32002 (grafana) is not mapped to the host by the local kind cluster "meshdemo", which maps only 31001, 31002, 31003, 31004, 31005, 31080 on 127.0.0.1 (kind sets port mappings when it creates a cluster)' &&
        e.hint === 'fix grafana=32002' &&
        !oneLine(e).includes('\n'),
    );
  });

  it('the kubeconfig kind merges into (kind pathForMerge)', () => {
    const dir = temp('md-kc-');
    const a = path.join(dir, 'a');
    const b = path.join(dir, 'b');
    assert.equal(kubeconfigKindWrites('/explicit', { KUBECONFIG: a }), '/explicit');
    assert.equal(kubeconfigKindWrites(undefined, { HOME: '/h' }), '/h/.kube/config');
    assert.equal(kubeconfigKindWrites(undefined, { KUBECONFIG: `${a}${path.delimiter}${b}` }), b, 'none exists: the last');
    fs.writeFileSync(b, '');
    assert.equal(kubeconfigKindWrites(undefined, { KUBECONFIG: `${a}${path.delimiter}${b}` }), b, 'the first that exists');
    fs.writeFileSync(a, '');
    assert.equal(kubeconfigKindWrites(undefined, { KUBECONFIG: `${a}${path.delimiter}${b}` }), a);
  });
});

describe('local-preflight: the Docker kind v0.17 can run Kubernetes 1.19 on', () => {
  // What `docker info` reports cannot be changed on the real daemon here (rootless, Windows containers), so these
  // cases use a `docker` script on PATH that answers `docker -v`, `docker version` and `docker info` as Docker 24 does
  // (or as another version, or Podman's docker shim, does).
  const withDocker = async (info: object, fn: () => Promise<void>, cli: { version?: string; banner?: string } = {}) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'md-fake-docker-'));
    const version = cli.version ?? '24.0.7';
    fs.writeFileSync(
      path.join(dir, 'docker'),
      `#!/bin/sh\ncase "$1" in\n  -v) echo '${cli.banner ?? `Docker version ${version}, build afdd53b`}' ;;\n  version) echo '${version}|${version}' ;;\n  info) echo '${JSON.stringify(info)}' ;;\n  *) exit 1 ;;\nesac\n`,
      { mode: 0o755 },
    );
    const saved = process.env.PATH;
    process.env.PATH = `${dir}${path.delimiter}${saved}`;
    try {
      await fn();
    } finally {
      process.env.PATH = saved;
      fs.rmSync(dir, { recursive: true, force: true });
    }
  };
  const run = async () => {
    const { localPreflight } = await import('../../src/steps/local-cluster.js');
    const events: any[] = [];
    const { stepLog } = await import('../../src/core/events.js');
    const sink = { emit: (e: any) => events.push(e) };
    const ctx: any = { options: { cacheDir: os.tmpdir() }, settings: {}, events: sink, log: stepLog(sink, 'local-preflight'), signal: new AbortController().signal, dryRun: false };
    const message = await localPreflight.run(ctx);
    return { message, events };
  };
  const linux = { OSType: 'linux', OperatingSystem: 'Debian GNU/Linux 13 (trixie)', Architecture: 'x86_64', CgroupVersion: '2', SecurityOptions: ['name=seccomp,profile=builtin', 'name=cgroupns'] };

  it('a rootful Linux daemon on cgroup v2 is fine', async () => {
    await withDocker(linux, async () => assert.match(String((await run()).message), /docker 24\.0\.7 \(Debian GNU\/Linux 13 \(trixie\), cgroup v2, x86_64\)/));
  });
  it('rootless Docker is refused (kind v0.17 runs rootless only for Kubernetes ≥ 1.22): exit 3', async () => {
    await withDocker({ ...linux, SecurityOptions: ['name=seccomp,profile=builtin', 'name=rootless', 'name=cgroupns'] }, async () =>
      assert.rejects(run(), (e: any) => e.exitCode === 3 && /rootless Docker cannot run Kubernetes v1\.19\.16 with kind v0\.17\.0/.test(e.message)),
    );
  });
  it('Windows containers are refused', async () => {
    await withDocker({ ...linux, OSType: 'windows' }, async () => assert.rejects(run(), (e: any) => e.exitCode === 3 && /windows containers; kind needs Linux containers/.test(e.message)));
  });
  it('an arm64 engine (Apple silicon, arm64 Linux) is refused: exit 3 naming what works', async () => {
    for (const Architecture of ['aarch64', 'arm64']) {
      await withDocker({ ...linux, Architecture }, async () =>
        assert.rejects(run(), (e: any) => e.exitCode === 3 && e.message.startsWith(`Docker runs on ${Architecture}: Istio 1.8.4's images exist for amd64 only`) && /amd64 machine, or pass --context/.test(e.hint)),
      );
    }
  });
  it('Docker 25.0.0 is refused with the upgrade hint; 25.0.1 is fine', async () => {
    await withDocker(linux, async () => assert.rejects(run(), (e: any) => e.exitCode === 3 && /moby\/moby#47150/.test(e.message) && /upgrade Docker to 25\.0\.1 or later/.test(e.hint)), { version: '25.0.0' });
    await withDocker(linux, async () => assert.match(String((await run()).message), /^docker 25\.0\.1 /), { version: '25.0.1' });
  });
  it('Podman\'s docker shim is refused: kind would switch to its experimental Podman provider', async () => {
    await withDocker(linux, async () => assert.rejects(run(), (e: any) => e.exitCode === 3 && /docker -v: "podman version 4\.9\.3"\), so kind v0\.17\.0 would use its experimental Podman provider/.test(e.message)), {
      banner: 'podman version 4.9.3',
    });
  });
  it('Docker Desktop: says that URLs go through 127.0.0.1 port mappings', async () => {
    await withDocker({ ...linux, OperatingSystem: 'Docker Desktop' }, async () => {
      const { events } = await run();
      assert.ok(events.some((e) => e.type === 'log' && /Docker Desktop: the node container is not reachable by its IP; URLs use 127\.0\.0\.1/.test(e.message)));
    });
  });
});
