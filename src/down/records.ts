import fs from 'node:fs';
import path from 'node:path';
import { Inventory, INVENTORY_NAME, labelledByMeshdemo, MANAGED_BY, type ChangedEntry, type CreatedEntry } from '../record/inventory.js';
import type { Context } from '../record/context.js';
import { KubeApiError, type KubeClient, type KubeObject, type ObjectRef } from '../kube/client.js';
import { readManifestsCached } from '../kube/manifests.js';
import { istioInstallation, ISTIO_NAMESPACE } from '../demo/facts.js';
import { cachedReleaseDistrust } from '../demo/istio-release.js';
import { istioctlPath, parsedManifestsDir, releaseDir } from '../core/cache-layout.js';
import { DEFAULT_ISTIO_VERSION } from '../settings.js';
import type { Work } from './phase.js';
import { appRefs as currentAppRefs, legacyAppRefs } from '../demo/app-manifests.js';
import { NETWORKING, SECURITY } from '../demo/scenarios.js';

/**
 * What `meshdemo down` works from: the inventory `up` wrote (src/record/inventory.ts), or — only with --force and
 * no inventory — the well-known demo objects found by name and label.
 */
export interface DownRecords {
  /** 'inventory': the record up wrote; 'force': found by name and label; 'none': nothing recorded. */
  source: 'inventory' | 'force' | 'none';
  namespace: string;
  created: CreatedEntry[];
  changed: ChangedEntry[];
  createdNamespaces: string[];
  /** Whether meshdemo installed Istio: istio-install completed, or meshdemo created istio-system. */
  istioOurs: boolean;
  istioVersion: string;
  /** Things --force could not look at, said in the plan. */
  notes: string[];
  inventory?: Inventory;
}

export interface DownSettings {
  keepIstio: boolean;
  force: boolean;
  /**
   * This run's state, filled in as it goes: the records (reloaded once the lock is held), the deadline for all
   * waiting, and what each phase's check found in those records (src/down/phase.ts stepOf).
   */
  state: { records?: DownRecords; deadline: number; checked?: { records: DownRecords; work: Map<string, Work> } };
}

export const MANAGED_BY_SELECTOR = Object.entries(MANAGED_BY).map(([k, v]) => `${k}=${v}`).join(',');
export const PROTECTED_NAMESPACES = new Set(['default', 'kube-system', 'kube-public', 'kube-node-lease']);

/** up's steps whose created objects belong to the Istio half; everything else recorded is the app's. */
export const ISTIO_HALF_STEPS = new Set(['istio-download', 'istio-install', 'namespace-label', 'addons', 'dashboards']);

export function records(ctx: Context<DownSettings>): DownRecords {
  const r = ctx.settings.state.records;
  if (!r) throw new Error('down: records not loaded');
  return r;
}

export async function loadRecords(ctx: Context<DownSettings>): Promise<DownRecords> {
  const kube = await ctx.kube();
  const namespace = ctx.options.namespace;
  const inventory = await Inventory.load(kube, namespace);
  if (inventory.recorded) {
    const d = inventory.data;
    const install = d.steps['istio-install'];
    return {
      source: 'inventory',
      namespace,
      created: d.created,
      changed: d.changed,
      createdNamespaces: d.createdNamespaces,
      istioOurs: Boolean(install) || d.createdNamespaces.includes(ISTIO_NAMESPACE),
      istioVersion: String(install?.inputs?.version ?? DEFAULT_ISTIO_VERSION),
      notes: d.images.length ? [`the ${d.images.length} demo image(s) up published stay where they are (e.g. ${d.images[0]})`] : [],
      inventory,
    };
  }
  const empty: DownRecords = { source: 'none', namespace, created: [], changed: [], createdNamespaces: [], istioOurs: false, istioVersion: DEFAULT_ISTIO_VERSION, notes: [] };
  if (!ctx.settings.force) return empty;
  return scanForForce(kube, ctx.options.namespace, ctx.options.cacheDir);
}

/** The demo app's objects by name (templates/manifests/app.yaml), and those an earlier meshdemo version named otherwise. */
export function appRefs(namespace: string): ObjectRef[] {
  return [...currentAppRefs(namespace), ...legacyAppRefs(namespace)];
}

const ADDON_FILES = ['prometheus.yaml', 'grafana.yaml', 'jaeger.yaml', 'kiali.yaml', 'extras/zipkin.yaml'];

/**
 * --force without an inventory, kept simple:
 *  - app: the demo's Deployments, Services, Gateway and VirtualService by name in --namespace, and any object of
 *    those kinds there labelled app.kubernetes.io/managed-by=meshdemo;
 *  - addons: objects of the cached release's addon manifests that exist AND carry that label (up applies it);
 *  - Istio: uninstalled (istioctl x uninstall --purge) when up installed it — its installed-state carries
 *    app.kubernetes.io/managed-by=meshdemo — and left alone otherwise;
 *  - namespaces labelled managed-by=meshdemo (ones up created for the app) are deleted; istio-system is left,
 *    and so is the istio-injection label (nothing says what it was before).
 */
export async function scanForForce(kube: KubeClient, namespace: string, cacheDir: string): Promise<DownRecords> {
  const notes: string[] = [];
  const created: CreatedEntry[] = [];
  const seen = new Set<string>();
  const add = (o: KubeObject | ObjectRef, step: string) => {
    const ref: ObjectRef = 'metadata' in o ? { apiVersion: o.apiVersion, kind: o.kind, namespace: o.metadata.namespace, name: o.metadata.name } : o;
    const key = `${ref.kind}/${ref.namespace ?? ''}/${ref.name}`;
    if (seen.has(key)) return;
    seen.add(key);
    created.push({ ...ref, step });
  };

  const refs = appRefs(namespace);
  for (const ref of refs) add(ref, 'app-deploy');
  // and the scenarios' kinds (canary, chaos, mtls): their v2 Deployments and VirtualServices are among the above
  const scenarioKinds = [{ apiVersion: NETWORKING, kind: 'DestinationRule' }, { apiVersion: SECURITY, kind: 'PeerAuthentication' }];
  const kinds = [...new Map([...refs, ...scenarioKinds].map((r) => [`${r.apiVersion}|${r.kind}`, r])).values()];
  for (const k of kinds) {
    if (!(await kube.serves(k.apiVersion, k.kind))) continue;
    for (const o of await kube.list(k.apiVersion, k.kind, { namespace, labelSelector: MANAGED_BY_SELECTOR })) add(o, 'app-deploy');
  }

  const installed = await istioInstallation(kube);
  const version = installed?.version ?? DEFAULT_ISTIO_VERSION;
  const dir = path.join(releaseDir(cacheDir, version), 'samples', 'addons');
  if (fs.existsSync(dir)) {
    const files = ADDON_FILES.filter((f) => fs.existsSync(path.join(dir, f)));
    for (const o of files.flatMap((f) => readManifestsCached(path.join(dir, f), parsedManifestsDir(cacheDir)))) {
      if (!(await kube.serves(o.apiVersion, o.kind))) continue;
      const { namespaced } = await kube.resourceFor(o.apiVersion, o.kind);
      const ref = { apiVersion: o.apiVersion, kind: o.kind, name: o.metadata.name, namespace: namespaced ? (o.metadata.namespace ?? ISTIO_NAMESPACE) : undefined };
      const live = await kube.get(ref);
      if (labelledByMeshdemo(live)) add(ref, 'addons');
    }
  } else {
    notes.push(`the Istio ${version} release is not in the cache (${dir}): addon objects are not named, so none are removed`);
  }

  const namespaces = await kube.list('v1', 'Namespace', { labelSelector: MANAGED_BY_SELECTOR });
  const createdNamespaces = namespaces.map((n) => n.metadata.name).filter((n) => !PROTECTED_NAMESPACES.has(n) && n !== ISTIO_NAMESPACE);
  notes.push(`--force leaves namespace ${ISTIO_NAMESPACE} and the istio-injection label of ${namespace} as they are (nothing records whether up created or changed them)`);
  return {
    source: 'force',
    namespace,
    created,
    changed: [],
    createdNamespaces,
    istioOurs: await istioInstalledByMeshdemo(kube, installed, notes),
    istioVersion: version,
    notes,
  };
}

// ------------------------------------------------------------------------------------------------ Istio's objects

/** istioctl labels everything it installs with these (install.operator.istio.io/owning-resource, …). */
export const ISTIO_COMPONENT_LABEL = 'operator.istio.io/component';

const ISTIO_CLUSTER_KINDS: Array<[string, string]> = [
  ['admissionregistration.k8s.io/v1', 'MutatingWebhookConfiguration'],
  ['admissionregistration.k8s.io/v1', 'ValidatingWebhookConfiguration'],
  ['rbac.authorization.k8s.io/v1', 'ClusterRoleBinding'],
  ['rbac.authorization.k8s.io/v1', 'ClusterRole'],
  ['apiextensions.k8s.io/v1', 'CustomResourceDefinition'],
];
const ISTIO_NAMESPACED_KINDS: Array<[string, string]> = [
  ['install.istio.io/v1alpha1', 'IstioOperator'],
  ['networking.istio.io/v1alpha3', 'EnvoyFilter'],
  ['autoscaling/v1', 'HorizontalPodAutoscaler'],
  ['policy/v1beta1', 'PodDisruptionBudget'],
  ['apps/v1', 'Deployment'],
  ['v1', 'Service'],
  ['v1', 'ConfigMap'],
  ['rbac.authorization.k8s.io/v1', 'RoleBinding'],
  ['rbac.authorization.k8s.io/v1', 'Role'],
  ['v1', 'ServiceAccount'],
];

/**
 * What `istioctl x uninstall --purge` removes, found the way it finds them: by istioctl's component label (plus
 * the installed-state IstioOperator). In deletion order: custom resources and workloads, RBAC, CRDs last.
 */
export async function istioObjects(kube: KubeClient): Promise<KubeObject[]> {
  const found = new Map<string, KubeObject>();
  const collect = async (apiVersion: string, kind: string, namespace?: string) => {
    if (!(await kube.serves(apiVersion, kind))) return;
    try {
      const items = await kube.list(apiVersion, kind, { namespace, labelSelector: ISTIO_COMPONENT_LABEL });
      if (kind === 'IstioOperator' && namespace) items.push(...(await kube.list(apiVersion, kind, { namespace })).filter((i) => i.metadata.name === 'installed-state'));
      for (const i of items) found.set(i.metadata.uid ?? `${kind}/${i.metadata.namespace}/${i.metadata.name}`, i);
    } catch (err) {
      // a kind whose CRD was just deleted is still in the discovery cache: nothing of it is left
      if (!(err instanceof KubeApiError && err.status === 404)) throw err;
    }
  };
  for (const [v, k] of ISTIO_NAMESPACED_KINDS) await collect(v, k, ISTIO_NAMESPACE);
  for (const [v, k] of ISTIO_CLUSTER_KINDS) await collect(v, k);
  return [...found.values()];
}

/** --force: only an Istio whose installed-state says meshdemo installed it is ours to purge. */
async function istioInstalledByMeshdemo(kube: KubeClient, installed: Awaited<ReturnType<typeof istioInstallation>>, notes: string[]): Promise<boolean> {
  if (installed?.managedBy === MANAGED_BY['app.kubernetes.io/managed-by']) return true;
  const leave = 'left as it is (to remove it: istioctl x uninstall --purge, which is cluster-wide)';
  if (installed) {
    const which = [installed.version, `(${ISTIO_NAMESPACE}/${installed.stateName})`].filter(Boolean).join(' ');
    notes.push(`Istio ${which} was not installed by meshdemo — its installed-state has no app.kubernetes.io/managed-by=meshdemo label: ${leave}`);
  } else if ((await istioObjects(kube)).length) {
    notes.push(`Istio objects are in the cluster but no installed-state says meshdemo installed them: ${leave}`);
  }
  return false;
}

/** Objects labelled operator.istio.io/component outside istio-system: `x uninstall --purge` deletes them too. */
export async function istioObjectsElsewhere(kube: KubeClient): Promise<KubeObject[]> {
  const found: KubeObject[] = [];
  for (const [apiVersion, kind] of ISTIO_NAMESPACED_KINDS) {
    if (!(await kube.serves(apiVersion, kind))) continue;
    try {
      const items = await kube.list(apiVersion, kind, { labelSelector: ISTIO_COMPONENT_LABEL });
      found.push(...items.filter((i) => i.metadata.namespace && i.metadata.namespace !== ISTIO_NAMESPACE));
    } catch (err) {
      if (!(err instanceof KubeApiError && err.status === 404)) throw err;
    }
  }
  return found;
}

/** The cached istioctl down may run: executable, and still matching the manifest recorded when it was verified. */
export function istioctlFor(cacheDir: string, version: string): { istioctl?: string; why?: string } {
  const file = istioctlPath(cacheDir, version);
  try {
    fs.accessSync(file, fs.constants.X_OK);
  } catch {
    return { why: `istioctl ${version} is not in the cache (${file})` };
  }
  const distrust = cachedReleaseDistrust(cacheDir, version);
  return distrust ? { why: `the cached istioctl ${version} is not trusted (${distrust})` } : { istioctl: file };
}

export const INVENTORY_REF = (namespace: string): ObjectRef => ({ apiVersion: 'v1', kind: 'ConfigMap', namespace, name: INVENTORY_NAME });
