import http from 'node:http';
import https from 'node:https';
import { ExternalCommandError, PreflightError, UsageError } from '../core/errors.js';
import type { CheckResult, Context, Step } from '../core/step.js';
import * as docker from '../exec/docker.js';
import { planContext, prepareContext } from '../images/context.js';
import { parseRegistry, SERVICES, type ServiceName, type UpSettings } from './settings.js';

/**
 * Where the demo images go:
 * - registry: --registry (or the answer to the prompt): `<registry>/<service>:<hash>`, docker push
 * - kind:     context "kind-<name>": `meshdemo/<service>:<hash>`, kind load docker-image --name <name>
 * - minikube: context "minikube": `meshdemo/<service>:<hash>`, minikube image load
 * - prebuilt: --skip-build with --image for every service
 */
export type ImageTarget =
  | { kind: 'registry'; registry: string }
  | { kind: 'kind'; cluster: string }
  | { kind: 'minikube'; profile: string }
  | { kind: 'prebuilt' };

/** Local name of every built image, whatever the target (so a registry change re-tags instead of rebuilding). */
export const LOCAL_REPO = 'meshdemo';

/** Registries typed at the prompt, per settings object: asked once per run, reused by app-deploy. */
const answered = new WeakMap<object, string>();

function registryValidator(v: string): true | string {
  try {
    parseRegistry(v.trim());
    return true;
  } catch (err) {
    return err instanceof UsageError ? `${err.message} — ${err.hint ?? ''}` : String(err);
  }
}

/**
 * Works out the target. With `ask`, a missing registry is asked for (ctx.prompt throws UsageError naming
 * --registry when there is no terminal); without, undefined is returned instead of asking.
 */
export async function resolveTarget(ctx: Context<UpSettings>, opts: { ask: boolean }): Promise<ImageTarget | undefined> {
  const s = ctx.settings;
  if (s.skipBuild) return { kind: 'prebuilt' };
  if (s.registry) return { kind: 'registry', registry: s.registry };
  const typed = answered.get(s);
  if (typed) return { kind: 'registry', registry: typed };
  const contextName = (await ctx.kube()).contextName;
  if (contextName.startsWith('kind-') && contextName.length > 'kind-'.length) return { kind: 'kind', cluster: contextName.slice('kind-'.length) };
  if (contextName === 'minikube') return { kind: 'minikube', profile: contextName };
  if (!opts.ask) return undefined;
  const value = await ctx.prompt.input(
    `Context "${contextName}" is neither kind nor minikube: which registry should the demo images be pushed to (host[:port][/path])?`,
    '--registry',
    registryValidator,
  );
  const registry = parseRegistry(value.trim());
  answered.set(s, registry);
  return { kind: 'registry', registry };
}

function refFor(target: Exclude<ImageTarget, { kind: 'prebuilt' }>, service: ServiceName, tag: string): string {
  return target.kind === 'registry' ? `${target.registry}/${service}:${tag}` : `${LOCAL_REPO}/${service}:${tag}`;
}

function describeTarget(target: ImageTarget): string {
  switch (target.kind) {
    case 'registry':
      return `registry ${target.registry}`;
    case 'kind':
      return `kind cluster "${target.cluster}"`;
    case 'minikube':
      return 'minikube';
    case 'prebuilt':
      return 'prebuilt images (--skip-build)';
  }
}

/**
 * The image reference of every service, computed from the sources without building anything (app-deploy
 * uses these). --skip-build: the --image values.
 */
export async function resolveImages(ctx: Context<UpSettings>): Promise<Record<ServiceName, string>> {
  const target = await resolveTarget(ctx, { ask: true });
  const out = {} as Record<ServiceName, string>;
  for (const service of SERVICES) {
    if (!target || target.kind === 'prebuilt') {
      const ref = ctx.settings.images[service];
      if (!ref) throw new UsageError(`--skip-build needs an --image for ${service}`, { hint: 'pass --image SERVICE=IMAGE for each service' });
      out[service] = ref;
    } else {
      out[service] = refFor(target, service, (await planContext(service, ctx.settings.baseImage, ctx.settings.sources)).tag);
    }
  }
  return out;
}

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
  if (target?.kind === 'kind' || target?.kind === 'minikube') {
    if (!(await docker.toolAnswers(target.kind, { signal: ctx.signal }))) {
      throw new PreflightError(`${target.kind} is not installed or not on PATH; it loads the demo images into ${describeTarget(target)}`, {
        hint: `install ${target.kind}, or pass --registry to push the images to a registry instead`,
      });
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

interface Planned {
  service: ServiceName;
  tag: string;
  ref: string;
}

async function planAll(ctx: Context<UpSettings>, target: Exclude<ImageTarget, { kind: 'prebuilt' }>): Promise<Planned[]> {
  const out: Planned[] = [];
  for (const service of SERVICES) {
    const { tag } = await planContext(service, ctx.settings.baseImage, ctx.settings.sources);
    out.push({ service, tag, ref: refFor(target, service, tag) });
  }
  return out;
}

/** Read-only: in the registry (HTTP API), or in the local daemon for kind / minikube (best effort). */
async function published(ctx: Context<UpSettings>, target: Exclude<ImageTarget, { kind: 'prebuilt' }>, p: Planned): Promise<Presence> {
  if (target.kind === 'registry') return registryHas(p.ref, { signal: ctx.signal });
  try {
    return (await docker.imageExists(p.ref, { signal: ctx.signal, timeoutMs: 15_000 })) ? 'present' : 'absent';
  } catch {
    return 'unknown';
  }
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
    const planned = await planAll(ctx, target);
    const presence = await Promise.all(planned.map((p) => published(ctx, target, p)));
    const missing = planned.filter((_, i) => presence[i] !== 'present');
    if (!missing.length) {
      return { satisfied: true, detail: `all ${planned.length} images are in ${describeTarget(target)}: ${planned.map((p) => p.ref).join(', ')}` };
    }
    return {
      satisfied: false,
      detail: `to build and publish to ${describeTarget(target)}: ${missing.map((p) => `${p.service} (${p.tag}${presence[planned.indexOf(p)] === 'unknown' ? ', registry state unknown' : ''})`).join(', ')}`,
    };
  },

  async run(ctx) {
    const s = ctx.settings;
    const target = await resolveTarget(ctx, { ask: true });
    if (!target || target.kind === 'prebuilt') {
      for (const service of SERVICES) ctx.log.info(`${service}: using prebuilt ${s.images[service]}`);
      return `using ${SERVICES.length} prebuilt images`;
    }
    ctx.log.info(`images go to ${describeTarget(target)}, built on base image ${s.baseImage}`);
    let built = 0;
    let unchanged = 0;
    let pushedOnly = 0;
    const recorded: string[] = [];
    for (const service of SERVICES) {
      const callOpts: docker.DockerCallOptions = { signal: ctx.signal, onLine: (line) => ctx.log.debug(`${service}: ${line}`) };
      const plan = await planContext(service, s.baseImage, s.sources);
      const ref = refFor(target, service, plan.tag);
      const local = `${LOCAL_REPO}/${service}:${plan.tag}`;

      if (target.kind === 'registry' && (await registryHas(ref, { signal: ctx.signal })) === 'present') {
        unchanged++;
        recorded.push(ref);
        ctx.log.info(`${service}: ${ref} unchanged (already in the registry)`);
        continue;
      }

      let how: 'built' | 'present' | 'retagged';
      if (await docker.imageExists(ref, callOpts)) {
        how = 'present';
      } else if (ref !== local && (await docker.imageExists(local, callOpts))) {
        await docker.tag(local, ref, callOpts);
        how = 'retagged';
      } else {
        await buildOne(ctx, service, ref, local, callOpts);
        how = 'built';
        built++;
      }

      if (target.kind === 'registry') {
        ctx.log.debug(`docker push ${ref}`);
        await wrap(`pushing ${ref} failed`, 'check `docker login` for that registry and that it accepts pushes; --verbose shows docker\'s output', () =>
          docker.push(ref, callOpts),
        );
        if (how !== 'built') pushedOnly++;
        ctx.log.info(`${service}: ${ref} ${how === 'built' ? 'built and pushed' : 'pushed (already built)'}`);
      } else if (target.kind === 'kind') {
        ctx.log.info(`${service}: loading ${ref} into kind cluster "${target.cluster}" (kind load docker-image ${ref} --name ${target.cluster})`);
        await wrap(`kind load docker-image ${ref} failed`, `check that kind cluster "${target.cluster}" is running (kind get clusters)`, () =>
          docker.kindLoad(ref, target.cluster, callOpts),
        );
        if (how !== 'built') unchanged++;
        ctx.log.info(`${service}: ${ref} ${how === 'built' ? 'built and loaded' : 'unchanged, loaded'}`);
      } else {
        if (how === 'built' || !(await docker.minikubeHasImage(ref, { signal: ctx.signal, profile: target.profile }))) {
          ctx.log.info(`${service}: loading ${ref} into minikube (minikube image load ${ref})`);
          await wrap(`minikube image load ${ref} failed`, 'check that minikube is running (minikube status)', () => docker.minikubeLoad(ref, { ...callOpts, profile: target.profile }));
        }
        if (how !== 'built') unchanged++;
        ctx.log.info(`${service}: ${ref} ${how === 'built' ? 'built and loaded' : 'unchanged'}`);
      }
      recorded.push(ref);
    }
    await (await ctx.inventory()).recordImages(recorded);
    return `${built} built, ${unchanged} unchanged${pushedOnly ? `, ${pushedOnly} pushed without rebuilding` : ''}`;
  },
};

async function buildOne(ctx: Context<UpSettings>, service: ServiceName, ref: string, local: string, callOpts: docker.DockerCallOptions): Promise<void> {
  const started = Date.now();
  const prepared = await prepareContext(service, ctx.settings.baseImage, { dirs: ctx.settings.sources });
  try {
    ctx.log.debug(`${service}: build context ${prepared.dir}: ${prepared.plan.entries.length} files, ${(prepared.plan.bytes / 1e6).toFixed(1)} MB; ${prepared.plan.packages.length ? `packages ${prepared.plan.packages.join(' ')}` : 'no npm packages'}`);
    const tags = ref === local ? [ref] : [local, ref];
    await wrap(
      `building the ${service} image ${ref} failed`,
      `is the base image ${ctx.settings.baseImage} available (docker image inspect ${ctx.settings.baseImage}) or pullable? pass another with --base-image`,
      () =>
        docker.build(
          {
            contextDir: prepared.dir,
            tags,
            buildArgs: { BASE_IMAGE: ctx.settings.baseImage },
            labels: { 'io.meshdemo.service': service, 'io.meshdemo.content-hash': prepared.plan.hash },
          },
          callOpts,
        ),
    );
    ctx.log.debug(`${service}: built ${ref} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  } finally {
    await prepared.cleanup();
  }
}

/** Keeps docker's last lines (ExternalCommandError from runCommand) under a message that names the service. */
async function wrap<T>(message: string, hint: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof ExternalCommandError) {
      const code = /exit code (\d+)/.exec(err.message)?.[1];
      throw new ExternalCommandError(code ? `${message} (exit code ${code})` : `${message}: ${err.message}`, { details: err.details, hint, cause: err });
    }
    throw err;
  }
}
