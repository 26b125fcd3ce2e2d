import fs from 'node:fs';
import path from 'node:path';
import { PreflightError } from '../core/errors.js';
import { MANAGED_BY } from '../record/inventory.js';
import type { Context, Step } from '../record/context.js';
import { applyAll } from '../kube/apply.js';
import { KubeApiError, refOf, type KubeObject } from '../kube/client.js';
import type { ClusterReads } from '../kube/reads.js';
import { readManifestsCached } from '../kube/manifests.js';
import { deploymentState, waitForDeployments } from '../kube/readiness.js';
import { ISTIO_NAMESPACE } from '../demo/facts.js';
import { parsedManifestsDir, releaseDir } from '../core/cache-layout.js';
import type { UpSettings } from '../settings.js';

type Settings = Pick<UpSettings, 'istioVersion' | 'addons'>;

const ADDON_FILES: Record<string, string> = {
  prometheus: 'prometheus.yaml',
  grafana: 'grafana.yaml',
  jaeger: 'jaeger.yaml',
  kiali: 'kiali.yaml',
  zipkin: 'extras/zipkin.yaml',
  'prometheus-operator': 'extras/prometheus-operator.yaml',
};

/** Parsed addon files: `up` checks, then runs, the step (grafana.yaml alone is 240 kB of YAML). Read-only. */
const parsed = new Map<string, KubeObject[]>();

export function addonObjects(cacheDir: string, settings: Settings): KubeObject[] {
  const release = releaseDir(cacheDir, settings.istioVersion);
  const dir = path.join(release, 'samples', 'addons');
  return settings.addons.flatMap((a) => {
    const file = path.join(dir, ADDON_FILES[a]);
    let objects = parsed.get(file);
    if (!objects) {
      try {
        objects = readManifestsCached(file, parsedManifestsDir(cacheDir));
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code ? `${file} ${code === 'ENOENT' ? 'is missing' : `cannot be read (${code})`}` : (err as Error).message;
        throw new PreflightError(`the cached Istio ${settings.istioVersion} release has no usable addon ${a}: ${why}`, {
          hint: `remove the cached release (rm -rf ${release}) and re-run, so that it is downloaded again`,
        });
      }
      parsed.set(file, objects);
    }
    return objects;
  });
}

function addonDeployments(objects: KubeObject[]): Array<{ namespace: string; name: string }> {
  return objects.filter((o) => o.kind === 'Deployment').map((o) => ({ namespace: o.metadata.namespace ?? ISTIO_NAMESPACE, name: o.metadata.name }));
}

/**
 * Objects of the set that are missing on the cluster: one list per kind and namespace (shared with the other checks
 * of the run), a get for a kind the set has one object of. A kind the server does not serve (404) is missing.
 */
async function missingObjects(reads: ClusterReads, objects: KubeObject[]): Promise<KubeObject[]> {
  const groups = new Map<string, KubeObject[]>();
  for (const o of objects) {
    const key = `${o.apiVersion}|${o.kind}|${o.metadata.namespace ?? ''}`;
    groups.set(key, [...(groups.get(key) ?? []), o]);
  }
  const missing: KubeObject[] = [];
  await Promise.all(
    [...groups.values()].map(async (group) => {
      const { apiVersion, kind, metadata } = group[0];
      const { namespaced } = await reads.kube.resourceFor(apiVersion, kind);
      const namespace = namespaced ? metadata.namespace ?? ISTIO_NAMESPACE : undefined;
      try {
        if (group.length === 1) {
          if (!(await reads.get({ apiVersion, kind, namespace, name: metadata.name }))) missing.push(group[0]);
          return;
        }
        const names = new Set(await reads.namesOf(apiVersion, kind, { namespace }));
        missing.push(...group.filter((o) => !names.has(o.metadata.name)));
      } catch (err) {
        if (!(err instanceof KubeApiError && err.status === 404)) throw err;
        missing.push(...group);
      }
    }),
  );
  return missing;
}

export const addons: Step<Settings> = {
  id: 'addons',
  title: 'Apply addons (Prometheus, Grafana, Jaeger, Kiali)',
  // applied while istioctl installs and waits for Istio to be ready: they need only the release and istio-system
  after: ['preflight', 'istio-download', 'cluster-images', 'istio-namespace'],
  async check(ctx) {
    const reads = await ctx.reads();
    if (!fs.existsSync(releaseDir(ctx.options.cacheDir, ctx.settings.istioVersion))) {
      return { satisfied: false, detail: `apply ${ctx.settings.addons.join(', ')} (release not downloaded yet)` };
    }
    const objects = addonObjects(ctx.options.cacheDir, ctx.settings);
    const missing = await missingObjects(reads, objects);
    if (missing.length) return { satisfied: false, detail: `${missing.length} of ${objects.length} addon objects missing` };
    const states = await Promise.all(addonDeployments(objects).map((d) => deploymentState(reads, d.namespace, d.name)));
    const notReady = states.filter((s) => !s.ready);
    if (notReady.length) return { satisfied: false, detail: `waiting for ${notReady.map((s) => s.name).join(', ')}` };
    return { satisfied: true, detail: `${ctx.settings.addons.join(', ')} applied and ready` };
  },
  async run(ctx: Context<Settings>) {
    const kube = await ctx.kube();
    const inventory = await ctx.inventory();
    const objects = addonObjects(ctx.options.cacheDir, ctx.settings);
    const deadline = Date.now() + ctx.options.timeoutMs;
    inventory.ensureRoomFor('addons', objects);
    const outcomes = await applyAll(kube, objects, {
      defaultNamespace: ISTIO_NAMESPACE,
      signal: ctx.signal,
      deadline,
      labels: MANAGED_BY,
      onApplied: async ({ object, created, previous }) => {
        if (created) return inventory.recordCreated('addons', object);
        // an object that was there before meshdemo (and not created by an earlier up): what the apply did to its
        // labels and annotations is recorded, so that down puts them back
        if (!previous || inventory.isCreated(refOf(object))) return;
        const changes: Record<string, string | null> = {};
        for (const kind of ['label', 'annotation'] as const) {
          const field = kind === 'label' ? 'labels' : 'annotations';
          const before = previous.metadata[field] ?? {};
          for (const [k, v] of Object.entries(object.metadata[field] ?? {})) if (before[k] !== v) changes[`${kind}:${k}`] = before[k] ?? null;
        }
        if (Object.keys(changes).length) await inventory.recordChanged('addons', refOf(object), changes);
      },
    });
    const created = outcomes.filter((o) => o.created).length;
    ctx.log.info(`applied ${outcomes.length} objects (${created} created); waiting for the addon Deployments`);
    await waitForDeployments(kube, addonDeployments(objects), {
      deadline,
      signal: ctx.signal,
      onWaiting: (notReady) => ctx.log.info(`waiting for ${notReady.map((s) => `${s.name} ${s.available}/${s.desired}`).join(', ')}`),
    });
    await inventory.completeStep('addons', { addons: ctx.settings.addons });
    return `${ctx.settings.addons.join(', ')}: ${outcomes.length} objects applied, ${created} created`;
  },
};
