import http from 'node:http';
import https from 'node:https';
import { ExternalCommandError, InterruptedError, PreflightError } from '../core/errors.js';
import type { CheckResult, Context, Step } from '../record/context.js';
import * as docker from '../exec/docker.js';
import { contextArchive, type ContextPlan } from '../images/context.js';
import { imagesOnEveryNode, normalizeReference } from '../images/cluster-images.js';
import { kindBinaryFor } from '../kind/state.js';
import { SERVICES, type ServiceName, type UpSettings } from '../settings.js';
import { describeTarget, LOCAL_REPO, nodePlatforms, planFor, refFor, resolveTarget, type ImageTarget } from '../demo/image-target.js';

/**
 * Before any cluster change: the Docker CLI and daemon answer (and kind / minikube when images are loaded
 * that way). Nothing to check for --no-app, --skip-build or --render. Throws PreflightError (exit 3).
 */
export async function dockerPreflight(ctx: Context<UpSettings>): Promise<docker.DockerVersion | undefined> {
  const s = ctx.settings;
  if (!s.app || s.skipBuild || s.render) return undefined;
  const version = await docker.dockerVersion({ signal: ctx.signal });
  ctx.log.debug(`docker client ${version.client}, daemon ${version.server}`);
  const target = await resolveTarget(ctx, { ask: false });
  const breaking = target?.kind === 'kind' ? docker.kindLoadBreakingDocker(version.server) : undefined;
  if (breaking) throw new PreflightError(breaking, { hint: 'upgrade Docker to 25.0.1 or later, or pass --registry to push the images to a registry instead' });
  if (target?.kind === 'kind' || target?.kind === 'minikube') {
    const binary = target.kind === 'kind' ? kindBinaryFor(ctx.options.cacheDir, target.cluster, ctx.settings.local) : undefined;
    if (!(await docker.toolAnswers(target.kind, { signal: ctx.signal, binary }))) {
      throw new PreflightError(`${target.kind} is not installed or not on PATH; it loads the demo images into ${describeTarget(target)}`, {
        hint: `install ${target.kind}, or pass --registry to push the images to a registry instead`,
      });
    }
    if (target.kind === 'minikube') {
      // `minikube image load` came with v1.18.0 (kubernetes/minikube cmd/minikube/cmd/image.go), `image ls` with v1.19.0
      const [major, minor, patch] = await docker.minikubeVersion({ signal: ctx.signal });
      if (major < 1 || (major === 1 && minor < 18)) {
        throw new PreflightError(`minikube v${major}.${minor}.${patch} cannot load images into the cluster: \`minikube image load\` needs minikube v1.18.0 or later`, {
          hint: 'upgrade minikube (https://minikube.sigs.k8s.io/docs/start/), or pass --registry to push the images to a registry instead',
        });
      }
    }
  }
  return version;
}

// ---------------------------------------------------------------------------------------------------------
// registry HTTP API (read-only)

const MANIFEST_TYPES = [
  'application/vnd.docker.distribution.manifest.v2+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.oci.image.index.v1+json',
].join(', ');

export type Presence = 'present' | 'absent' | 'unknown';

/** Splits `<registry>/<repo>:<tag>` like the Docker CLI does (no host part means Docker Hub). */
export function splitReference(ref: string): { host: string; repository: string; tag: string } {
  const at = ref.lastIndexOf(':');
  const slash = ref.lastIndexOf('/');
  const name = at > slash ? ref.slice(0, at) : ref;
  const tag = at > slash ? ref.slice(at + 1) : 'latest';
  const first = name.split('/')[0];
  if (name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    const host = first === 'docker.io' ? 'registry-1.docker.io' : first;
    return { host, repository: name.slice(first.length + 1), tag };
  }
  return { host: 'registry-1.docker.io', repository: name.includes('/') ? name : `library/${name}`, tag };
}

function isLoopback(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\./.test(h);
}

function head(url: URL, timeoutMs: number, signal?: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const lib = url.protocol === 'https:' ? https : http;
    const req = lib.request(url, { method: 'HEAD', headers: { accept: MANIFEST_TYPES }, timeout: timeoutMs, signal, agent: false }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error(`no answer from ${url.host} within ${timeoutMs} ms`)));
    req.on('error', reject);
    req.end();
  });
}

/**
 * Is `ref` in its registry? `HEAD /v2/<repo>/manifests/<tag>`: 200 present, 404 absent; anything else
 * (authentication required, unreachable) is unknown. Loopback registries are spoken to over http, others
 * over https with an http fallback (an insecure registry). No credentials are sent.
 */
export async function registryHas(ref: string, opts: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Presence> {
  const { host, repository, tag } = splitReference(ref);
  const pathPart = `/v2/${repository}/manifests/${encodeURIComponent(tag)}`;
  const schemes = isLoopback(host) ? ['http:'] : ['https:', 'http:'];
  for (const scheme of schemes) {
    try {
      const status = await head(new URL(`${scheme}//${host}${pathPart}`), opts.timeoutMs ?? 5000, opts.signal);
      if (status === 200) return 'present';
      if (status === 404) return 'absent';
      return 'unknown';
    } catch {
      // try the next scheme
    }
  }
  return 'unknown';
}

// ---------------------------------------------------------------------------------------------------------
// the step

/** Where built images go: a registry, or the nodes of a kind or minikube cluster. */
type PublishTarget = Exclude<ImageTarget, { kind: 'prebuilt' }>;

interface Planned {
  service: ServiceName;
  tag: string;
  ref: string;
}

async function planAll(ctx: Context<UpSettings>, target: PublishTarget, platform: string | undefined): Promise<Planned[]> {
  const out: Planned[] = [];
  for (const service of SERVICES) {
    const { tag } = await planFor(ctx, service, platform);
    out.push({ service, tag, ref: refFor(target, service, tag) });
  }
  return out;
}

/** Read-only: in the registry (HTTP API); for kind and minikube, on the cluster's node(s) (best effort). */
async function published(ctx: Context<UpSettings>, target: PublishTarget, planned: Planned[]): Promise<Presence[]> {
  if (target.kind === 'registry') return Promise.all(planned.map((p) => registryHas(p.ref, { signal: ctx.signal })));
  if (target.kind === 'minikube') {
    const listed = await docker.minikubeImages({ signal: ctx.signal, profile: target.profile });
    const held = new Set(listed?.map(normalizeReference));
    return planned.map((p) => (listed === undefined ? 'unknown' : held.has(normalizeReference(p.ref)) ? 'present' : 'absent'));
  }
  // what was loaded moments ago, before the kubelet lists it, is known from the record
  const nodes = await imagesOnEveryNode(await ctx.kube());
  const inventory = await ctx.inventory();
  return planned.map((p) => (nodes.has(p.ref) || inventory.loadedRecentlyIntoAll(p.ref, nodes.uids) ? 'present' : 'absent'));
}

export const images: Step<UpSettings> = {
  id: 'images',
  title: 'Build and publish the demo images',

  async check(ctx): Promise<CheckResult> {
    const s = ctx.settings;
    if (s.skipBuild) {
      return { satisfied: true, detail: `prebuilt images: ${SERVICES.map((sv) => s.images[sv]).join(', ')}` };
    }
    const target = await resolveTarget(ctx, { ask: false });
    if (!target) {
      const contextName = (await ctx.kube()).contextName;
      return {
        satisfied: false,
        detail: ctx.prompt.interactive
          ? `context "${contextName}" is neither kind nor minikube: will ask for a registry (or pass --registry)`
          : `context "${contextName}" is neither kind nor minikube: needs --registry`,
      };
    }
    if (target.kind === 'prebuilt') return { satisfied: true };
    const planned = await planAll(ctx, target, (await nodePlatforms(ctx)).platform);
    const presence = await published(ctx, target, planned);
    const missing = planned.filter((_, i) => presence[i] !== 'present');
    const where = target.kind === 'registry' ? `in ${describeTarget(target)}` : `on the node(s) of ${describeTarget(target)}`;
    if (!missing.length) {
      return { satisfied: true, detail: `all ${planned.length} images are ${where}: ${planned.map((p) => p.ref).join(', ')}` };
    }
    const unknown = target.kind === 'registry' ? 'registry state unknown' : 'node state unknown';
    return {
      satisfied: false,
      detail: `to build and ${target.kind === 'registry' ? 'publish to' : 'load into'} ${describeTarget(target)} (not ${where}): ${missing.map((p) => `${p.service} (${p.tag}${presence[planned.indexOf(p)] === 'unknown' ? `, ${unknown}` : ''})`).join(', ')}`,
    };
  },

  async run(ctx) {
    const s = ctx.settings;
    const target = await resolveTarget(ctx, { ask: true });
    if (!target || target.kind === 'prebuilt') {
      for (const service of SERVICES) ctx.log.info(`${service}: using prebuilt ${s.images[service]}`);
      return `using ${SERVICES.length} prebuilt images`;
    }
    const { platform, mixed } = await nodePlatforms(ctx);
    if (mixed) ctx.log.warn(`the nodes have several architectures (${mixed}): building for ${platform}`);
    ctx.log.info(`images go to ${describeTarget(target)}, built on base image ${s.baseImage}${platform ? ` for ${platform} (the nodes' platform)` : ''}`);
    // kind load puts an image into every node the cluster has when it runs: these, at least
    const loadedInto = target.kind === 'kind' ? (await imagesOnEveryNode(await ctx.kube())).uids : undefined;
    const done = await publishAll(ctx, target, platform);
    const inventory = await ctx.inventory();
    await inventory.recordImages(done.map((d) => d.ref));
    if (loadedInto) await inventory.recordLoaded(done.map((d) => d.ref), loadedInto);
    const built = done.filter((d) => d.how === 'built').length;
    const pushedOnly = target.kind === 'registry' ? done.filter((d) => d.how === 'present' || d.how === 'retagged').length : 0;
    const unchanged = done.length - built - pushedOnly;
    return `${built} built, ${unchanged} unchanged${pushedOnly ? `, ${pushedOnly} pushed without rebuilding` : ''}`;
  },
};

/** How a service's image came to be where it goes. */
type ImageOutcome = 'built' | 'present' | 'retagged' | 'unchanged';

interface Published {
  ref: string;
  how: ImageOutcome;
}

/** What the publishing of every service shares in one run of the step. */
interface PublishRun {
  ctx: Context<UpSettings>;
  target: PublishTarget;
  platform: string | undefined;
  /** Aborted on Ctrl-C and by the first failure among the services. */
  signal: AbortSignal;
  /** For kind and minikube loads. */
  oneAtATime: <T>(fn: () => Promise<T>) => Promise<T>;
  /** For pushes. */
  firstAlone: <T>(fn: () => Promise<T>) => Promise<T>;
}

/** A service's image, in the local Docker daemon under the reference it is published as. */
interface LocalImage {
  service: ServiceName;
  ref: string;
  how: Exclude<ImageOutcome, 'unchanged'>;
  callOpts: docker.DockerCallOptions;
}

/**
 * The three services are built at the same time (the daemon overlaps one build's COPY with another's commit).
 * The first push goes alone: pushes at once would each upload the shared base layers (the daemon dedups uploads
 * per repository only), while after it the others mount them from the first, so they then go together. kind and
 * minikube loads stay sequential. The first failure stops the others, and is the one thrown.
 */
async function publishAll(ctx: Context<UpSettings>, target: PublishTarget, platform: string | undefined): Promise<Published[]> {
  const siblings = new AbortController();
  const stopSiblings = () => siblings.abort();
  ctx.signal.addEventListener('abort', stopSiblings, { once: true });
  const run: PublishRun = { ctx, target, platform, signal: siblings.signal, oneAtATime: oneAfterAnother(), firstAlone: firstAlone() };
  let results: Array<PromiseSettledResult<Published>>;
  try {
    results = await Promise.allSettled(
      SERVICES.map((service) =>
        publishOne(run, service).catch((err) => {
          siblings.abort();
          throw err;
        }),
      ),
    );
  } finally {
    ctx.signal.removeEventListener('abort', stopSiblings);
  }
  const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected').map((r) => r.reason);
  if (failures.length) {
    // the first real failure, not the interruptions it caused in the other builds
    throw ctx.signal.aborted ? failures[0] : (failures.find((e) => !(e instanceof InterruptedError)) ?? failures[0]);
  }
  return results.map((r) => (r as PromiseFulfilledResult<Published>).value);
}

/** Runs the functions given to it one after the other, in the order given; a failure does not stop the later ones. */
function oneAfterAnother(): <T>(fn: () => Promise<T>) => Promise<T> {
  let queue: Promise<unknown> = Promise.resolve();
  return <T>(fn: () => Promise<T>): Promise<T> => {
    const turn = queue.then(fn);
    queue = turn.catch(() => undefined);
    return turn;
  };
}

/** Runs the first function given to it alone; the later ones wait until it has settled, then run at the same time. */
function firstAlone(): <T>(fn: () => Promise<T>) => Promise<T> {
  let first: Promise<unknown> | undefined;
  return <T>(fn: () => Promise<T>): Promise<T> => {
    if (!first) {
      const turn = fn();
      first = turn.catch(() => undefined);
      return turn;
    }
    return first.then(fn);
  };
}

async function publishOne(run: PublishRun, service: ServiceName): Promise<Published> {
  const { ctx, target, signal } = run;
  const callOpts: docker.DockerCallOptions = { signal, onLine: (line) => ctx.log.debug(`${service}: ${line}`) };
  const plan = await planFor(ctx, service, run.platform);
  const ref = refFor(target, service, plan.tag);
  if (target.kind === 'registry' && (await registryHas(ref, { signal })) === 'present') {
    ctx.log.info(`${service}: ${ref} unchanged (already in the registry)`);
    return { ref, how: 'unchanged' };
  }
  const how = await ensureInDocker(ctx, service, ref, plan, callOpts);
  const image: LocalImage = { service, ref, how, callOpts };
  if (target.kind === 'registry') await pushToRegistry(run, image);
  else if (target.kind === 'kind') await loadIntoKind(run, target.cluster, image);
  else await loadIntoMinikube(run, target.profile, image);
  return { ref, how };
}

/** The image under `ref` in the local daemon: already there, re-tagged from its local name, or built. */
async function ensureInDocker(ctx: Context<UpSettings>, service: ServiceName, ref: string, plan: ContextPlan, callOpts: docker.DockerCallOptions): Promise<LocalImage['how']> {
  const local = `${LOCAL_REPO}/${service}:${plan.tag}`;
  if (await docker.imageExists(ref, callOpts)) return 'present';
  if (ref !== local && (await docker.imageExists(local, callOpts))) {
    await docker.tag(local, ref, callOpts);
    return 'retagged';
  }
  await buildOne(ctx, service, ref, local, plan, callOpts);
  return 'built';
}

async function pushToRegistry({ ctx, firstAlone }: PublishRun, { service, ref, how, callOpts }: LocalImage): Promise<void> {
  ctx.log.debug(`docker push ${ref}`);
  await firstAlone(() =>
    wrap(`pushing ${ref} failed`, 'check `docker login` for that registry and that it accepts pushes; --verbose shows docker\'s output', () => docker.push(ref, callOpts)),
  );
  ctx.log.info(`${service}: ${ref} ${how === 'built' ? 'built and pushed' : 'pushed (already built)'}`);
}

async function loadIntoKind({ ctx, oneAtATime, platform }: PublishRun, cluster: string, { service, ref, how, callOpts }: LocalImage): Promise<void> {
  // always: kind asks each node for the image id and loads it only into nodes that lack it
  // (pkg/cmd/kind/load/docker-image/docker-image.go), so a node made since the last run gets it too
  await oneAtATime(async () => {
    ctx.log.info(`${service}: loading ${ref} into kind cluster "${cluster}" (kind load docker-image ${ref} --name ${cluster})`);
    const way = await wrap(`kind load docker-image ${ref} failed`, `check that kind cluster "${cluster}" is running (kind get clusters)`, () =>
      docker.kindLoad(ref, cluster, { ...callOpts, kind: kindBinaryFor(ctx.options.cacheDir, cluster, ctx.settings.local), platform }),
    );
    if (way === 'image-archive') ctx.log.note(`${service}: kind load docker-image failed on a content digest missing from docker save's archive (Docker's containerd image store); loaded ${platform} alone instead (docker save --platform, kind load image-archive)`);
  });
  ctx.log.info(`${service}: ${ref} ${how === 'built' ? 'built and loaded' : 'unchanged, loaded'}`);
}

async function loadIntoMinikube({ ctx, oneAtATime, signal }: PublishRun, profile: string, { service, ref, how, callOpts }: LocalImage): Promise<void> {
  await oneAtATime(async () => {
    const held = how === 'built' ? undefined : await docker.minikubeImages({ signal, profile });
    if (!held?.some((listed) => normalizeReference(listed) === normalizeReference(ref))) {
      ctx.log.info(`${service}: loading ${ref} into minikube (minikube image load ${ref} -p ${profile})`);
      await wrap(`minikube image load ${ref} failed`, `check that minikube is running (minikube status -p ${profile})`, () => docker.minikubeLoad(ref, { ...callOpts, profile }));
    }
  });
  ctx.log.info(`${service}: ${ref} ${how === 'built' ? 'built and loaded' : 'unchanged'}`);
}

async function buildOne(ctx: Context<UpSettings>, service: ServiceName, ref: string, local: string, planned: ContextPlan, callOpts: docker.DockerCallOptions): Promise<void> {
  const started = Date.now();
  const { plan, tar } = await contextArchive(service, ctx.settings.baseImage, {
    dirs: ctx.settings.sources,
    plan: planned,
    labels: (p) => ({ 'io.meshdemo.service': service, 'io.meshdemo.content-hash': p.hash }),
  });
  ctx.log.debug(`${service}: build context: ${plan.entries.length} files, ${(plan.bytes / 1e6).toFixed(1)} MB; ${plan.packages.length ? `packages ${plan.packages.join(' ')}` : 'no npm packages'}`);
  const tags = ref === local ? [ref] : [local, ref];
  await wrap(
    `building the ${service} image ${ref} failed`,
    `is the base image ${ctx.settings.baseImage} available (docker image inspect ${ctx.settings.baseImage}) or pullable? pass another with --base-image`,
    () => docker.build({ contextTar: tar, tags, buildArgs: { BASE_IMAGE: ctx.settings.baseImage }, platform: plan.platform }, callOpts),
  );
  ctx.log.debug(`${service}: built ${ref} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
}

/** Keeps docker's last lines (ExternalCommandError from runCommand) under a message that names the service. */
async function wrap<T>(message: string, hint: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ExternalCommandError && !docker.kindLoadFallbackFailed(err)) {
      const code = /exit code (\d+)/.exec(err.message)?.[1];
      throw new ExternalCommandError(code ? `${message} (exit code ${code})` : `${message}: ${err.message}`, { details: err.details, hint, cause: err });
    }
    throw err;
  }
}
