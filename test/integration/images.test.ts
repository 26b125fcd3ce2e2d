// The `images` step against REAL software, on loopback only: a private dockerd (its own socket and data root),
// a real registry (Debian's docker-registry on 127.0.0.1), and a real Node base image imported from this
// machine's node binary. Real `docker build` / `docker push` / `docker run`; nothing is pulled from any
// remote registry. Skipped (with the reason) only when docker, dockerd or docker-registry is not installed.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createContext } from '../../src/commands/context.js';
import { ExitCode, ExternalCommandError, PreflightError, UsageError } from '../../src/core/errors.js';
import type { EventSink, MeshEvent } from '../../src/core/events.js';
import { Inventory } from '../../src/record/inventory.js';
import type { GlobalOptions } from '../../src/core/options.js';
import { createPrompter, type Prompter } from '../../src/core/prompt.js';
import type { Context } from '../../src/record/context.js';
import { defaultSourceDirs } from '../../src/images/context.js';
import type { KubeClient, KubeObject } from '../../src/kube/client.js';
import { dockerPreflight, images } from '../../src/steps/images.js';
import { resolveImages } from '../../src/demo/image-target.js';
import { parseUpSettings, SERVICES, type ServiceName, type UpSettings } from '../../src/settings.js';
import { freePort, startDockerEnv, type DockerEnv } from '../support/docker-env.js';
import { kindStandinOnPath } from '../support/kind-standin.js';
import { skipUnless } from '../support/requirements.js';
import { recordToolCalls, type ToolCalls } from '../support/tool-calls.js';

const skip = skipUnless('docker');

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Harness {
  ctx: Context<UpSettings>;
  events: MeshEvent[];
  /** The images the record (meshdemo's inventory) lists. */
  recorded(): Promise<string[]>;
}

/** Where the steps under test read the services from: a copy of templates/services (the tests edit it). */
let servicesDir: string | undefined;

/**
 * A Context for the step alone. No cluster is involved in these tests: kube() names the current context and lists
 * the nodes, and the inventory is the real one over an in-memory ConfigMap.
 */
function harness(opts: Record<string, unknown>, extra: { contextName?: string; prompt?: Prompter; nodeArchitectures?: string[]; nodeImages?: () => string[]; nodeUid?: () => string } = {}): Harness {
  const events: MeshEvent[] = [];
  const sink: EventSink = { emit: (e) => events.push(e) };
  const options: GlobalOptions = {
    namespace: 'default',
    yes: true,
    json: false,
    verbose: true,
    cacheDir: path.join(os.tmpdir(), 'meshdemo-images-test-cache'),
    timeoutMs: 600_000,
  };
  const ctx = createContext<UpSettings>({
    options,
    settings: parseUpSettings({ servicesDir, ...opts }),
    events: sink,
    signal: new AbortController().signal,
    prompt: extra.prompt ?? createPrompter({ json: false, isTTY: false }),
    secrets: new Set(),
  });
  // Nodes: none unless a test names their architectures (then images are built for linux/<arch>), each listing
  // in .status.images what nodeImages() says its runtime holds (as a kubelet reports it); nodeUid() tells one
  // node from the node of a cluster created again
  const nodes = () =>
    (extra.nodeArchitectures ?? []).map((architecture, i) => ({
      metadata: { name: `node-${i}`, uid: extra.nodeUid ? `${extra.nodeUid()}-${i}` : undefined },
      status: { nodeInfo: { architecture }, images: (extra.nodeImages?.() ?? []).map((name) => ({ names: [name], sizeBytes: 1 })) },
    }));
  // the real Inventory over an in-memory ConfigMap (the namespace exists)
  const configMaps = new Map<string, KubeObject>();
  const kube = {
    contextName: extra.contextName ?? 'prod-cluster',
    server: 'https://127.0.0.1:1',
    list: async () => nodes(),
    get: async (ref: { kind: string; name: string }) => (ref.kind === 'Namespace' ? { metadata: { name: ref.name } } : configMaps.get(ref.name)),
    apply: async (o: KubeObject) => void configMaps.set(o.metadata.name, o),
  };
  const inventory = Inventory.load(kube as unknown as KubeClient, options.namespace);
  ctx.kube = async () => kube as unknown as KubeClient;
  ctx.inventory = () => inventory;
  return { ctx, events, recorded: async () => [...(await inventory).data.images] };
}

function infoLines(events: MeshEvent[]): string[] {
  return events.filter((e): e is Extract<MeshEvent, { type: 'log' }> => e.type === 'log' && e.level === 'info').map((e) => e.message);
}

async function registryTags(registry: string, repo: string): Promise<string[]> {
  const res = await fetch(`http://${registry}/v2/${repo}/tags/list`);
  if (res.status === 404) return [];
  assert.equal(res.status, 200, `tags/list of ${repo}`);
  return ((await res.json()) as { tags: string[] | null }).tags ?? [];
}

const tagOf = (ref: string) => ref.slice(ref.lastIndexOf(':') + 1);

describe('images step with a real dockerd and registry', { skip, timeout: 900_000 }, () => {
  let env: DockerEnv;
  let registry: string;
  let tools: ToolCalls | undefined;
  let servicesCopy: string;
  const savedDockerHost = process.env.DOCKER_HOST;
  const savedPath = process.env.PATH;
  let firstRefs: Record<ServiceName, string>;

  const settings = (more: Record<string, unknown> = {}) => ({ registry, baseImage: env.baseImage, ...more });

  before(async () => {
    env = await startDockerEnv();
    process.env.DOCKER_HOST = env.dockerHost; // what a user's environment would say; runCommand passes it on
    registry = `${env.registry}/meshdemo`;
    console.log(
      `dockerd up in ${(env.timings.dockerdMs / 1000).toFixed(1)} s, registry in ${(env.timings.registryMs / 1000).toFixed(1)} s, ` +
        `base image ${env.baseImage} imported in ${(env.timings.baseImageMs / 1000).toFixed(1)} s`,
    );
    // the tests edit service sources: work on a copy of templates/services, never on the real one
    servicesCopy = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-services-'));
    fs.cpSync(defaultSourceDirs().servicesDir, servicesCopy, { recursive: true });
    servicesDir = servicesCopy;
    tools = recordToolCalls();
  });

  after(async () => {
    tools?.restore();
    if (savedDockerHost === undefined) delete process.env.DOCKER_HOST;
    else process.env.DOCKER_HOST = savedDockerHost;
    process.env.PATH = savedPath;
    await env?.stop();
    if (servicesCopy) fs.rmSync(servicesCopy, { recursive: true, force: true });
  });

  it('dockerPreflight passes against the running daemon and is a PreflightError (exit 3) without one', async () => {
    const { ctx } = harness(settings());
    const version = await dockerPreflight(ctx);
    assert.ok(version?.server, 'daemon version');
    const saved = process.env.DOCKER_HOST;
    process.env.DOCKER_HOST = `unix://${path.join(env.dir, 'no-such.sock')}`;
    try {
      await assert.rejects(dockerPreflight(ctx), (err: unknown) => {
        assert.ok(err instanceof PreflightError, String(err));
        assert.equal(err.exitCode, ExitCode.preflight);
        assert.match(err.message, /Docker daemon/);
        return true;
      });
    } finally {
      process.env.DOCKER_HOST = saved;
    }
    // nothing to check when no image is built
    assert.equal(await dockerPreflight(harness({ skipBuild: true, image: SERVICES.map((s) => `${s}=example.org/${s}:1`) }).ctx), undefined);
  });

  it('first run builds and pushes three images; the registry has the tags', async () => {
    const { ctx, events, recorded } = harness(settings());
    const before = await images.check(ctx);
    assert.equal(before.satisfied, false);
    tools!.reset();
    const t0 = Date.now();
    const message = await images.run(ctx);
    console.log(`first run (3 builds + 3 pushes) took ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.equal(message, '3 built, 0 unchanged');
    assert.equal(tools!.counts().build, 3);
    assert.equal(tools!.counts().push, 3);

    firstRefs = await resolveImages(ctx);
    for (const service of SERVICES) {
      const ref = firstRefs[service];
      assert.match(ref, new RegExp(`^${registry.replace(/[.]/g, '\\.')}/${service}:[0-9a-f]{12}$`));
      assert.deepEqual(await registryTags(env.registry, `meshdemo/${service}`), [tagOf(ref)], `${service} in the registry`);
      assert.ok(infoLines(events).some((l) => l.includes(service) && l.includes('built and pushed')), `summary line for ${service}`);
    }
    assert.deepEqual((await recorded()).sort(), Object.values(firstRefs).sort());
    // the labels are on the images, and cost one LABEL instruction in all (the legacy builder makes one per --label)
    for (const service of SERVICES) {
      const { stdout: labels } = await env.docker(['image', 'inspect', '--format', '{{json .Config.Labels}}', firstRefs[service]]);
      const parsed = JSON.parse(labels) as Record<string, string>;
      assert.equal(parsed['io.meshdemo.service'], service);
      assert.match(parsed['io.meshdemo.content-hash'], new RegExp(`^${tagOf(firstRefs[service])}[0-9a-f]{52}$`));
      const { stdout: history } = await env.docker(['history', '--no-trunc', '--format', '{{.CreatedBy}}', firstRefs[service]]);
      assert.equal(history.split('\n').filter((l) => /LABEL/.test(l)).length, 1, history);
    }
    // docker's own output went to the debug log (--verbose)
    assert.ok(events.some((e) => e.type === 'log' && e.level === 'debug' && /Successfully (built|tagged)|naming to/.test(e.message)));
  });

  it('check() is then satisfied, and a second run builds and pushes nothing', async () => {
    const { ctx } = harness(settings());
    const check = await images.check(ctx);
    assert.equal(check.satisfied, true, check.detail);
    tools!.reset();
    assert.equal(await images.run(ctx), '0 built, 3 unchanged');
    assert.deepEqual(tools!.counts(), { build: 0, tag: 0, push: 0, kindLoad: 0, minikubeLoad: 0 });
  });

  it('changing one service source changes only that tag (and the base image changes all)', async () => {
    const file = path.join(servicesCopy, 'micro-order', 'server.mjs');
    const original = fs.readFileSync(file, 'utf8');
    try {
      fs.appendFileSync(file, '\n// a change\n');
      const { ctx } = harness(settings());
      const refs = await resolveImages(ctx);
      assert.notEqual(refs['micro-order'], firstRefs['micro-order']);
      assert.equal(refs['micro-api'], firstRefs['micro-api']);
      assert.equal(refs['micro-pay'], firstRefs['micro-pay']);
      assert.equal((await images.check(ctx)).satisfied, false);
      tools!.reset();
      assert.equal(await images.run(ctx), '1 built, 2 unchanged');
      assert.equal(tools!.counts().build, 1);
      assert.equal(tools!.counts().push, 1);
      assert.deepEqual((await registryTags(env.registry, 'meshdemo/micro-order')).sort(), [tagOf(firstRefs['micro-order']), tagOf(refs['micro-order'])].sort());

      const other = await resolveImages(harness(settings({ baseImage: `${env.baseImage}-other` })).ctx);
      for (const s of SERVICES) assert.notEqual(tagOf(other[s]), tagOf(refs[s]), `${s} tag depends on the base image`);
    } finally {
      fs.writeFileSync(file, original);
    }
    assert.deepEqual(await resolveImages(harness(settings()).ctx), firstRefs, 'restoring the source restores the tag');
  });

  it('the pushed images run with --network host and answer the chain end to end', async () => {
    // pull back from the registry what was pushed (drop the registry name locally first)
    for (const s of SERVICES) {
      await env.docker(['rmi', firstRefs[s]]);
      await env.docker(['pull', firstRefs[s]]);
    }
    const [payGrpc, payHttp, orderPort, apiPort] = [await freePort(), await freePort(), await freePort(), await freePort()];
    const run = async (name: string, ref: string, vars: Record<string, string | number>) => {
      const args = ['run', '-d', '--name', name, '--network', 'host', '-e', 'HOST=127.0.0.1', '-e', 'SHUTDOWN_DELAY_MS=0'];
      for (const [k, v] of Object.entries(vars)) args.push('-e', `${k}=${v}`);
      await env.docker([...args, ref]);
    };
    await run('md-pay', firstRefs['micro-pay'], { GRPC_PORT: payGrpc, HTTP_PORT: payHttp });
    await run('md-order', firstRefs['micro-order'], { PORT: orderPort, GRPC_SERVER_HOST: '127.0.0.1', GRPC_SERVER_PORT: payGrpc });
    await run('md-api', firstRefs['micro-api'], { PORT: apiPort, ORDER_URL: `http://127.0.0.1:${orderPort}/order/create` });
    try {
      for (const port of [payHttp, orderPort, apiPort]) {
        const deadline = Date.now() + 30_000;
        for (;;) {
          const ok = await fetch(`http://127.0.0.1:${port}/ready`, { signal: AbortSignal.timeout(2000) })
            .then((r) => r.status === 200)
            .catch(() => false);
          if (ok) break;
          if (Date.now() > deadline) {
            const logs = await Promise.all(['md-pay', 'md-order', 'md-api'].map((n) => env.docker(['logs', n]).then((l) => `${n}: ${l.stdout}${l.stderr}`).catch(() => '')));
            assert.fail(`port ${port} not ready:\n${logs.join('\n')}`);
          }
          await sleep(250);
        }
      }
      const res = await fetch(`http://127.0.0.1:${apiPort}/api/order/create`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-request-id': 'images-test-1' },
        body: JSON.stringify({ businessId: 'images-test', amount: 100, channel: 1 }),
      });
      const body = (await res.json()) as { code: number; data: { orderId: string; status: number } };
      assert.equal(res.status, 200, JSON.stringify(body));
      assert.equal(body.code, 0);
      assert.equal(body.data.status, 2);
      assert.match(body.data.orderId, /^\d{23}$/);
      // the containers run as uid 1000 from the base image built here
      const { stdout } = await env.docker(['inspect', '--format', '{{.Config.User}} {{.Config.Image}}', 'md-api']);
      assert.equal(stdout.trim(), `1000:1000 ${firstRefs['micro-api']}`);
    } finally {
      await env.docker(['rm', '-f', 'md-pay', 'md-order', 'md-api']).catch(() => {});
    }
  });

  it('kind context: loads meshdemo/<service>:<hash> with kind load (no rebuild when present locally); the check asks the node, not the host', async () => {
    // the kind stand-in (test/support/kind-standin.ts, as strict as kind v0.17.0) on PATH, with a cluster "mesh"
    const kind = kindStandinOnPath('mesh', { log: true });
    const { bin, state } = kind;
    // the node's runtime: what kind load put into it (the stand-in's images.json), named as containerd names it
    const loadedFile = path.join(state, 'mesh', 'images.json');
    const onNode = () => (fs.existsSync(loadedFile) ? Object.keys(JSON.parse(fs.readFileSync(loadedFile, 'utf8'))).map((ref) => `docker.io/${ref}`) : []);
    const loads = () => fs.readFileSync(path.join(bin, 'calls.log'), 'utf8').trim().split('\n').map((l) => JSON.parse(l)).filter((c) => c[0] === 'load').map((c) => c.join(' '));
    try {
      // a kubelet lists a loaded image only once its image cache refreshes (every 30 s): until then, nothing
      let kubeletListed = true;
      let cluster = 1;
      const { ctx, events, recorded } = harness(
        { baseImage: env.baseImage },
        { contextName: 'kind-mesh', nodeArchitectures: ['amd64'], nodeImages: () => (kubeletListed ? onNode() : []), nodeUid: () => `cluster-${cluster}` },
      );
      await dockerPreflight(ctx);
      const refs = await resolveImages(ctx);
      for (const s of SERVICES) assert.match(refs[s], new RegExp(`^meshdemo/${s}:[0-9a-f]+$`));
      // the host's Docker has them (built for linux/amd64 earlier or now), the node does not: not satisfied
      const before = await images.check(ctx);
      assert.equal(before.satisfied, false);
      assert.match(before.detail ?? '', /not on the node\(s\) of kind cluster "mesh"/);
      tools!.reset();
      assert.match(String(await images.run(ctx)), /^\d built, \d unchanged$/);
      assert.equal(tools!.counts().push, 0);
      assert.deepEqual(
        // one load per service (one at a time, in the order their checks finish)
        loads().sort(),
        SERVICES.map((s) => `load docker-image ${refs[s]} --name mesh`).sort(),
      );
      assert.ok(infoLines(events).some((l) => l.includes('kind load docker-image') && l.includes('--name mesh')));
      assert.deepEqual((await recorded()).sort(), Object.values(refs).sort());
      kubeletListed = false;
      assert.equal((await images.check(ctx)).satisfied, true, 'loaded into this very node moments ago: the record says so before its kubelet does');
      kubeletListed = true;
      assert.equal((await images.check(ctx)).satisfied, true, 'the node lists them now');

      // a new node (the cluster deleted and created again): the host still has every image, the node none
      fs.rmSync(loadedFile);
      cluster++;
      kubeletListed = false;
      const again = await images.check(ctx);
      assert.equal(again.satisfied, false, 'the host\'s images do not count, nor what went into the node of the cluster before');
      kubeletListed = true;
      tools!.reset();
      assert.equal(await images.run(ctx), '0 built, 3 unchanged');
      assert.equal(tools!.counts().build, 0, 'nothing rebuilt');
      assert.equal(loads().length, 6, 'loaded into the new node');
      assert.equal((await images.check(ctx)).satisfied, true);
    } finally {
      await kind.restore();
    }
  });

  it('--skip-build uses the --image values and builds nothing', async () => {
    const image = SERVICES.map((s) => `${s}=${firstRefs[s]}`);
    const { ctx } = harness({ skipBuild: true, image });
    assert.equal((await images.check(ctx)).satisfied, true);
    assert.deepEqual(await resolveImages(ctx), firstRefs);
    tools!.reset();
    await images.run(ctx);
    assert.equal(tools!.counts().build + tools!.counts().push, 0);
  });

  it('no --registry, no terminal and a context that is neither kind nor minikube: UsageError (exit 2) naming --registry', async () => {
    const { ctx } = harness({ baseImage: env.baseImage }, { contextName: 'prod-cluster' });
    const check = await images.check(ctx);
    assert.equal(check.satisfied, false);
    assert.match(check.detail ?? '', /--registry/);
    tools!.reset();
    await assert.rejects(images.run(ctx), (err: unknown) => {
      assert.ok(err instanceof UsageError, String(err));
      assert.equal(err.exitCode, ExitCode.usage);
      assert.match(`${err.message} ${err.hint}`, /--registry/);
      return true;
    });
    await assert.rejects(resolveImages(ctx), UsageError);
    assert.equal(tools!.counts().build, 0);
  });

  it('a registry typed at the prompt is used for the push and by resolveImages', async () => {
    let asked = 0;
    const prompt: Prompter = {
      interactive: true,
      async confirm() {
        return true;
      },
      async input(_message, flag, validate) {
        asked++;
        assert.equal(flag, '--registry');
        assert.notEqual(validate?.('http://nope'), true, 'a scheme is refused');
        return registry;
      },
    };
    const { ctx } = harness({ baseImage: env.baseImage }, { contextName: 'prod-cluster', prompt });
    assert.equal(await images.run(ctx), '0 built, 3 unchanged');
    assert.deepEqual(await resolveImages(ctx), firstRefs);
    assert.equal(asked, 1, 'asked once');
  });

  it('a bad base image: ExternalCommandError (exit 6) with docker\'s last lines', async () => {
    // a base image that exists nowhere: the local registry answers "not found" (no remote registry is asked)
    const { ctx } = harness(settings({ baseImage: `${env.registry}/no-such/base:0` }));
    tools!.reset();
    await assert.rejects(images.run(ctx), (err: unknown) => {
      assert.ok(err instanceof ExternalCommandError, String(err));
      assert.equal(err.exitCode, ExitCode.externalCommand);
      // the three build at once: the error names whichever failed first
      assert.match(err.message, /building the micro-(api|order|pay) image/);
      assert.ok(err.details.length > 0, 'carries docker output');
      assert.match(err.details.join('\n'), /not found|manifest unknown|no such/i);
      assert.match(err.hint ?? '', /--base-image/);
      return true;
    });
    assert.ok(tools!.counts().build >= 1 && tools!.counts().build <= 3, String(tools!.counts().build));
    assert.equal(tools!.counts().push, 0);
  });
});
