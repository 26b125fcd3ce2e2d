// The images step as the real tools see it (issue 10), with a REAL private dockerd and registry on loopback:
// images are built for the nodes' platform (`--platform linux/<arch>`, part of the tag), and minikube is used
// the way its real CLI allows per version (test/support/minikube-standin.ts: `image load` from v1.18, `-p`).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createContext } from '../../src/commands/context.js';
import { ExitCode, ExternalCommandError, PreflightError } from '../../src/core/errors.js';
import type { EventSink, MeshEvent } from '../../src/core/events.js';
import type { Inventory } from '../../src/record/inventory.js';
import type { GlobalOptions } from '../../src/core/options.js';
import { createPrompter } from '../../src/core/prompt.js';
import type { KubeClient } from '../../src/kube/client.js';
import { dockerPreflight, images } from '../../src/steps/images.js';
import { resolveImages } from '../../src/demo/image-target.js';
import { parseUpSettings, SERVICES } from '../../src/settings.js';
import { startDockerEnv, type DockerEnv } from '../support/docker-env.js';
import { kindStandinOnPath } from '../support/kind-standin.js';
import { installMinikubeStandin } from '../support/minikube-standin.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('docker');

/** A Context for the images step alone: kube() names the context and lists Nodes of the given architectures. */
function harness(opts: Record<string, unknown>, cluster: { contextName: string; clusterProvider?: string; architectures: string[] }) {
  const events: MeshEvent[] = [];
  const sink: EventSink = { emit: (e) => events.push(e) };
  const options: GlobalOptions = { namespace: 'default', yes: true, json: false, verbose: true, cacheDir: path.join(os.tmpdir(), 'meshdemo-real-tools-images-cache'), timeoutMs: 600_000 };
  const ctx = createContext({ options, settings: parseUpSettings(opts), events: sink, signal: new AbortController().signal, prompt: createPrompter({ json: false, isTTY: false }), secrets: new Set() });
  const nodes = cluster.architectures.map((architecture, i) => ({ metadata: { name: `node-${i}` }, status: { nodeInfo: { architecture, operatingSystem: 'linux' } } }));
  ctx.kube = async () => ({ contextName: cluster.contextName, clusterProvider: cluster.clusterProvider, server: 'https://127.0.0.1:1', list: async () => nodes }) as unknown as KubeClient;
  ctx.inventory = async () => ({ async recordImages() {} }) as unknown as Inventory;
  return { ctx, events };
}

/** A `docker load` archive of a one-file image whose config says linux/arm64. */
async function arm64ImageTar(dir: string, tag: string): Promise<string> {
  const { createHash } = await import('node:crypto');
  const { execFileSync } = await import('node:child_process');
  const root = fs.mkdtempSync(path.join(dir, 'arm64-'));
  fs.mkdirSync(path.join(root, 'rootfs'));
  fs.mkdirSync(path.join(root, 'image', 'layer'), { recursive: true });
  fs.writeFileSync(path.join(root, 'rootfs', 'README'), 'arm64 base for meshdemo tests\n');
  const layerTar = path.join(root, 'image', 'layer', 'layer.tar');
  execFileSync('tar', ['-cf', layerTar, '-C', path.join(root, 'rootfs'), 'README']);
  const diffId = `sha256:${createHash('sha256').update(fs.readFileSync(layerTar)).digest('hex')}`;
  const config = JSON.stringify({ architecture: 'arm64', os: 'linux', config: {}, rootfs: { type: 'layers', diff_ids: [diffId] }, history: [{ created_by: 'meshdemo test' }] });
  const configName = `${createHash('sha256').update(config).digest('hex')}.json`;
  fs.writeFileSync(path.join(root, 'image', configName), config);
  fs.writeFileSync(path.join(root, 'image', 'manifest.json'), JSON.stringify([{ Config: configName, RepoTags: [tag], Layers: ['layer/layer.tar'] }]));
  const out = path.join(root, 'image.tar');
  execFileSync('tar', ['-cf', out, '-C', path.join(root, 'image'), '.']);
  return out;
}

const infoLines = (events: MeshEvent[]) => events.filter((e): e is Extract<MeshEvent, { type: 'log' }> => e.type === 'log' && e.level === 'info').map((e) => e.message);

describe('images for the real cluster: platform and minikube', { skip, timeout: 900_000 }, () => {
  let env: DockerEnv;
  let bin: string;
  let state: string;
  const saved = { DOCKER_HOST: process.env.DOCKER_HOST, PATH: process.env.PATH };
  const ARM64_BASE = 'meshdemo-test/base-arm64:1';

  before(async () => {
    env = await startDockerEnv();
    process.env.DOCKER_HOST = env.dockerHost;
    // an arm64 base image, made the way `docker save` lays one out (docker import records the daemon's own
    // platform whatever --platform says); nothing in it runs here: the demo Dockerfiles have no RUN step
    await env.docker(['load', '-i', await arm64ImageTar(env.dir, ARM64_BASE)], { timeoutMs: 120_000 });
    bin = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-minikube-bin-'));
    state = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-minikube-state-'));
    installMinikubeStandin(bin);
    process.env.PATH = `${bin}${path.delimiter}${process.env.PATH}`;
  });

  after(async () => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
    delete process.env.STANDIN_MINIKUBE_VERSION;
    delete process.env.STANDIN_MINIKUBE_PROFILES;
    delete process.env.STANDIN_MINIKUBE_STATE;
    await env?.stop();
    for (const d of [bin, state]) if (d) fs.rmSync(d, { recursive: true, force: true });
  });

  it('arm64 nodes: the build is asked for linux/arm64 and its tag differs from the amd64 one', async () => {
    const registry = `${env.registry}/meshdemo`;
    const arm = harness({ registry, baseImage: ARM64_BASE }, { contextName: 'prod', architectures: ['arm64'] });
    const amd = harness({ registry, baseImage: ARM64_BASE }, { contextName: 'prod', architectures: ['amd64'] });
    const armRefs = await resolveImages(arm.ctx);
    const amdRefs = await resolveImages(amd.ctx);
    for (const s of SERVICES) assert.notEqual(armRefs[s], amdRefs[s], `${s}: same sources, another platform, another tag`);

    assert.equal(await images.run(arm.ctx), '3 built, 0 unchanged');
    assert.ok(infoLines(arm.events).some((l) => l.includes('for linux/arm64')), infoLines(arm.events).join('\n'));
    for (const s of SERVICES) {
      const { stdout } = await env.docker(['image', 'inspect', '--format', '{{.Os}}/{{.Architecture}}', armRefs[s]]);
      assert.equal(stdout.trim(), 'linux/arm64', s);
    }
    // the daemon was really asked for linux/arm64: on the amd64-only Node base it refuses, rather than making an
    // amd64 image that would die with "exec format error" on the arm64 nodes
    const onAmd64Base = harness({ registry, baseImage: env.baseImage }, { contextName: 'prod', architectures: ['arm64'] });
    await assert.rejects(images.run(onAmd64Base.ctx), (err: unknown) => {
      assert.ok(err instanceof ExternalCommandError, String(err));
      assert.match(err.message, /^building the micro-api image .* failed/);
      assert.match(err.details.join('\n'), /does not match the specified platform: wanted linux\/arm64, actual: linux\/amd64/);
      return true;
    });
  });

  it('minikube 1.17 (no `image load`) is refused before anything changes: exit 3 with the upgrade hint', async () => {
    process.env.STANDIN_MINIKUBE_VERSION = '1.17.1';
    process.env.STANDIN_MINIKUBE_STATE = state;
    const { ctx } = harness({ baseImage: env.baseImage }, { contextName: 'minikube', architectures: ['amd64'] });
    await assert.rejects(dockerPreflight(ctx), (err: unknown) => {
      assert.ok(err instanceof PreflightError, String(err));
      assert.equal(err.exitCode, ExitCode.preflight);
      assert.match(err.message, /^minikube v1\.17\.1 cannot load images into the cluster: `minikube image load` needs minikube v1\.18\.0 or later$/);
      assert.match(err.hint ?? '', /upgrade minikube/);
      return true;
    });
  });

  it('minikube 1.25 with profile "demo" (context "demo"): recognised by its kubeconfig extension, images loaded with -p demo', async () => {
    process.env.STANDIN_MINIKUBE_VERSION = '1.25.0';
    process.env.STANDIN_MINIKUBE_PROFILES = 'minikube,demo';
    process.env.STANDIN_MINIKUBE_STATE = state;
    const { ctx } = harness({ baseImage: env.baseImage }, { contextName: 'demo', clusterProvider: 'minikube.sigs.k8s.io', architectures: ['amd64'] });
    await dockerPreflight(ctx);
    const refs = await resolveImages(ctx);
    for (const s of SERVICES) assert.match(refs[s], new RegExp(`^meshdemo/${s}:[0-9a-f]{12}$`));
    const first = await images.check(ctx);
    assert.equal(first.satisfied, false, 'the profile holds none of them (minikube image ls -p demo), whatever the host has');
    assert.match(first.detail ?? '', /not on the node\(s\) of minikube profile "demo"/);
    await images.run(ctx);
    const calls = fs.readFileSync(path.join(state, 'calls.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    const loads = calls.filter((c) => c[0] === 'image' && c[1] === 'load');
    // one load per service, one at a time in the order their builds finish
    assert.deepEqual(loads.map((c) => c.join(' ')).sort(), SERVICES.map((s) => `image load ${refs[s]} -p demo`).sort());
    assert.deepEqual(fs.readFileSync(path.join(state, 'images-demo.txt'), 'utf8').trim().split('\n').sort(), SERVICES.map((s) => `docker.io/${refs[s]}`).sort());

    // a second run finds them in the profile (minikube image ls -p demo) and loads nothing
    const again = harness({ baseImage: env.baseImage }, { contextName: 'demo', clusterProvider: 'minikube.sigs.k8s.io', architectures: ['amd64'] });
    await images.run(again.ctx);
    const after = fs.readFileSync(path.join(state, 'calls.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(after.filter((c) => c[0] === 'image' && c[1] === 'load').length, 3, 'no second load');
    assert.ok(after.some((c) => c.join(' ') === 'image ls -p demo'));
    assert.equal((await images.check(again.ctx)).satisfied, true, 'plan and status see them in the profile');
  });

  it('kind (stand-in as strict as kind v0.17.0): a cluster that does not exist is an error naming it, with kind\'s own line', async () => {
    const kind = kindStandinOnPath('kind');
    try {
      const { ctx } = harness({ baseImage: env.baseImage }, { contextName: 'kind-mesh', architectures: ['amd64'] });
      await dockerPreflight(ctx);
      await assert.rejects(images.run(ctx), (err: unknown) => {
        assert.ok(err instanceof ExternalCommandError, String(err));
        assert.match(err.message, /^kind load docker-image meshdemo\/micro-api:[0-9a-f]{12} failed/);
        assert.match(err.hint ?? '', /kind get clusters/);
        assert.ok(err.details.includes('ERROR: no nodes found for cluster "mesh"'), err.details.join('\n'));
        return true;
      });
    } finally {
      await kind.restore();
    }
  });
});
