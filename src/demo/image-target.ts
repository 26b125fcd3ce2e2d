// Where the demo images go and what they are called: the target (a registry, the kind or minikube cluster's
// node, or prebuilt images) and each service's reference, computed from its sources without building anything.
// The images step builds and publishes them; app-deploy and up --render deploy from the same references.
import { UsageError } from '../core/errors.js';
import type { Context } from '../record/context.js';
import { planContext } from '../images/context.js';
import { parseRegistry, SERVICES, type ServiceName, type UpSettings } from '../settings.js';

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
  const contextName = (await ctx.kube()).contextName;
  if (contextName.startsWith('kind-') && contextName.length > 'kind-'.length) return { kind: 'kind', cluster: contextName.slice('kind-'.length) };
  // minikube names the context after the profile; every profile's cluster entry carries its extension
  if (contextName === 'minikube' || (await ctx.kube()).clusterProvider === MINIKUBE_PROVIDER) return { kind: 'minikube', profile: contextName };
  if (!opts.ask) return undefined;
  const value = await ctx.prompt.input(
    `Context "${contextName}" is neither kind nor minikube: which registry should the demo images be pushed to (host[:port][/path])?`,
    '--registry',
    registryValidator,
  );
  // the answer stands for --registry from now on: asked once per run, app-deploy deploys from it
  s.registry = parseRegistry(value.trim());
  return { kind: 'registry', registry: s.registry };
}

export function refFor(target: Exclude<ImageTarget, { kind: 'prebuilt' }>, service: ServiceName, tag: string): string {
  return target.kind === 'registry' ? `${target.registry}/${service}:${tag}` : `${LOCAL_REPO}/${service}:${tag}`;
}

export function describeTarget(target: ImageTarget): string {
  switch (target.kind) {
    case 'registry':
      return `registry ${target.registry}`;
    case 'kind':
      return `kind cluster "${target.cluster}"`;
    case 'minikube':
      return `minikube profile "${target.profile}"`;
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
  const platform = !target || target.kind === 'prebuilt' ? undefined : (await nodePlatforms(ctx)).platform;
  for (const service of SERVICES) {
    if (!target || target.kind === 'prebuilt') {
      const ref = ctx.settings.images[service];
      if (!ref) throw new UsageError(`--skip-build needs an --image for ${service}`, { hint: 'pass --image SERVICE=IMAGE for each service' });
      out[service] = ref;
    } else {
      out[service] = refFor(target, service, (await planFor(ctx, service, platform)).tag);
    }
  }
  return out;
}

export const MINIKUBE_PROVIDER = 'minikube.sigs.k8s.io';

/**
 * `linux/<arch>` of the cluster's nodes (.status.nodeInfo.architecture), so an image built on an arm64 laptop
 * runs on amd64 nodes (Istio 1.8.4's proxy is amd64-only) and the other way round; undefined when the nodes do
 * not say (the build machine's own platform is used then). `mixed` names the architectures when there are several.
 */
export async function nodePlatforms(ctx: Context<UpSettings>): Promise<{ platform?: string; mixed?: string }> {
  const nodes = await (await ctx.kube()).list('v1', 'Node');
  const counts = new Map<string, number>();
  for (const n of nodes) {
    const arch = n.status?.nodeInfo?.architecture;
    if (arch) counts.set(arch, (counts.get(arch) ?? 0) + 1);
  }
  const ranked = [...counts].sort((a, b) => b[1] - a[1]);
  if (!ranked.length) return {};
  return { platform: `linux/${ranked[0][0]}`, mixed: ranked.length > 1 ? ranked.map(([a, c]) => `${c}× ${a}`).join(', ') : undefined };
}

export function planFor(ctx: Context<UpSettings>, service: ServiceName, platform: string | undefined) {
  return planContext(service, ctx.settings.baseImage, ctx.settings.sources, platform);
}
