import path from 'node:path';
import { ExternalCommandError } from '../core/errors.js';
import type { Context, Step } from '../record/context.js';
import * as docker from '../exec/docker.js';
import { imagesOnEveryNode, istioImages, uniqueImages, workloadImages, type ClusterImage } from '../images/cluster-images.js';
import { parsedManifestsDir, releaseDir } from '../core/cache-layout.js';
import { readManifestsCached } from '../kube/manifests.js';
import { kindBinaryFor } from '../kind/state.js';
import type { UpSettings } from '../settings.js';

type Settings = Pick<UpSettings, 'istioVersion' | 'istioSet' | 'addons' | 'local'>;

/** Where each addon's YAML lies in the release (samples/addons; the two extras below it). */
const addonFile = (addon: string) => (addon === 'zipkin' || addon === 'prometheus-operator' ? `extras/${addon}.yaml` : `${addon}.yaml`);

/** The kind cluster behind the context: the local cluster, or `kind-<name>`. */
async function kindCluster(ctx: Context<Settings>): Promise<string | undefined> {
  if (ctx.settings.local) return ctx.settings.local.name;
  const name = (await ctx.kube()).contextName;
  return name.startsWith('kind-') && name.length > 'kind-'.length ? name.slice('kind-'.length) : undefined;
}

/** Every image Istio's demo profile and the chosen addons run (the app's own are the images step's). */
function wanted(ctx: Context<Settings>): ClusterImage[] {
  const s = ctx.settings;
  const { cacheDir } = ctx.options;
  const addons = s.addons.flatMap((a) => workloadImages(readManifestsCached(path.join(releaseDir(cacheDir, s.istioVersion), 'samples', 'addons', addonFile(a)), parsedManifestsDir(cacheDir)), `addon ${a}`));
  return uniqueImages([...istioImages(s.istioVersion, s.istioSet), ...addons]);
}

/**
 * On a kind cluster, the images Istio and the addons run are pulled once on the host (for the nodes' platform; the
 * host's `docker login` applies) and loaded into the nodes before istioctl and the addons need them, so a cluster
 * created again pulls nothing from a registry (Docker Hub allows few anonymous pulls an hour). An image whose pull
 * policy is Always is pulled by the node on every start anyway: named, not pre-loaded.
 */
export const clusterImages: Step<Settings> = {
  id: 'cluster-images',
  title: 'Pre-load the images Istio and the addons run (kind)',
  after: ['preflight', 'istio-download'],
  async check(ctx) {
    const cluster = await kindCluster(ctx);
    if (!cluster) return { satisfied: true, detail: 'not a kind cluster: the nodes pull the images themselves' };
    let images: ClusterImage[];
    try {
      images = wanted(ctx).filter((i) => !i.pullAlways);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
      return { satisfied: false, detail: `load Istio's and the addons' images into kind cluster "${cluster}" (listed from the release once it is downloaded)` };
    }
    const onNodes = await imagesOnEveryNode(await ctx.kube());
    const inventory = await ctx.inventory();
    // what was loaded moments ago, before the kubelet lists it, is known from the record
    const missing = images.filter((i) => !onNodes.has(i.ref) && !inventory.loadedRecentlyIntoAll(i.ref, onNodes.uids));
    if (!missing.length) return { satisfied: true, detail: `all ${images.length} images are on the node(s) of kind cluster "${cluster}"` };
    return { satisfied: false, detail: `load into kind cluster "${cluster}": ${missing.map((i) => i.ref).join(', ')}` };
  },
  async run(ctx) {
    const cluster = (await kindCluster(ctx))!;
    const all = wanted(ctx);
    for (const i of all.filter((x) => x.pullAlways)) ctx.log.note(`${i.ref} (${i.usedBy}) has imagePullPolicy Always: the node pulls it on every start, so it is not pre-loaded`);
    const onNodes = await imagesOnEveryNode(await ctx.kube());
    const inventory = await ctx.inventory();
    const missing = all.filter((i) => !i.pullAlways && !onNodes.has(i.ref) && !inventory.loadedRecentlyIntoAll(i.ref, onNodes.uids));
    const platform = nodePlatform((await (await ctx.kube()).list('v1', 'Node')).map((n) => n.status?.nodeInfo?.architecture));
    const kind = kindBinaryFor(ctx.options.cacheDir, cluster, ctx.settings.local);
    let pulled = 0;
    for (const [n, image] of missing.entries()) {
      const step = `(${n + 1}/${missing.length})`;
      const callOpts: docker.DockerCallOptions = { signal: ctx.signal, onLine: (line) => ctx.log.debug(`${image.ref}: ${line}`) };
      if (!(await docker.imageExists(image.ref, callOpts))) {
        ctx.log.info(`${step} pulling ${image.ref}${platform ? ` for ${platform}` : ''} (${image.usedBy})`);
        await docker.pull(image.ref, platform, callOpts);
        pulled++;
      }
      ctx.log.info(`${step} loading ${image.ref} into kind cluster "${cluster}"`);
      try {
        const way = await docker.kindLoad(image.ref, cluster, { ...callOpts, kind, platform });
        if (way === 'image-archive') ctx.log.note(ARCHIVE_FALLBACK(image.ref, platform!));
        await inventory.recordLoaded([image.ref], onNodes.uids);
      } catch (err) {
        if (!(err instanceof ExternalCommandError)) throw err;
        if (docker.kindLoadFallbackFailed(err)) throw err;
        throw new ExternalCommandError(`kind load docker-image ${image.ref} failed`, { details: err.details, hint: `check that kind cluster "${cluster}" is running (kind get clusters)`, cause: err });
      }
    }
    return missing.length ? `${missing.length} loaded into kind cluster "${cluster}" (${pulled} pulled first)` : 'nothing to load';
  },
};

/** What the fallback of docker.kindLoad did, for the user: the image is on the nodes all the same. */
const ARCHIVE_FALLBACK = (ref: string, platform: string) =>
  `${ref}: kind load docker-image failed on a content digest missing from docker save's archive (Docker's containerd image store, kubernetes-sigs/kind#3795); loaded ${platform} alone instead (docker save --platform ${platform}, kind load image-archive)`;

/** `linux/<arch>` of the most nodes (Istio 1.8.4's images exist for amd64 only; preflight refused a cluster without one). */
function nodePlatform(archs: Array<string | undefined>): string | undefined {
  const known = archs.filter((a): a is string => !!a);
  if (!known.length) return undefined;
  return `linux/${known.includes('amd64') ? 'amd64' : known[0]}`;
}
