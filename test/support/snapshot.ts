import fs from 'node:fs';
import { apiRequest, type ControlPlane } from './control-plane.js';

/**
 * Every object of the kinds the demo touches, cluster-scoped and namespaced — with its labels and annotations, so
 * that a change to a pre-existing object shows — minus what Kubernetes itself maintains: to compare a cluster
 * before and after. Besides the fixed kinds below, every kind served by an Istio or Kiali API group (Istio's
 * custom resources: IstioOperator, Gateway, VirtualService, EnvoyFilter, …) is listed.
 */
const LISTS = [
  '/api/v1/namespaces',
  '/api/v1/services',
  '/api/v1/configmaps',
  '/api/v1/secrets',
  '/api/v1/serviceaccounts',
  '/apis/apps/v1/deployments',
  '/apis/apiextensions.k8s.io/v1/customresourcedefinitions',
  '/apis/rbac.authorization.k8s.io/v1/clusterroles',
  '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
  '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
  '/apis/admissionregistration.k8s.io/v1/validatingwebhookconfigurations',
  // what Istio puts into istio-system besides workloads (matters when istio-system existed before up), and the lock
  '/apis/rbac.authorization.k8s.io/v1/roles',
  '/apis/rbac.authorization.k8s.io/v1/rolebindings',
  '/apis/policy/v1beta1/poddisruptionbudgets',
  '/apis/autoscaling/v1/horizontalpodautoscalers',
  '/apis/coordination.k8s.io/v1/leases',
];

/** API groups whose every kind is part of the snapshot: Istio's and Kiali's custom resources. */
const CUSTOM_GROUPS = /(^|\.)istio\.io$|^monitoring\.kiali\.io$/;

async function getJson(cp: ControlPlane, path: string): Promise<any> {
  const res = await apiRequest(cp.server, { ca: fs.readFileSync(cp.caFile), token: cp.adminToken, path });
  if (res.status !== 200) throw new Error(`snapshot: GET ${path}: ${res.status} ${res.body.slice(0, 200)}`);
  return JSON.parse(res.body);
}

/** List paths of every kind the cluster serves in Istio's and Kiali's groups (preferred version). */
async function customLists(cp: ControlPlane): Promise<string[]> {
  const groups: any[] = (await getJson(cp, '/apis')).groups ?? [];
  const lists: string[] = [];
  for (const g of groups.filter((g) => CUSTOM_GROUPS.test(g.name))) {
    const gv = g.preferredVersion?.groupVersion ?? g.versions?.[0]?.groupVersion;
    const resources: any[] = (await getJson(cp, `/apis/${gv}`)).resources ?? [];
    for (const r of resources) if (!r.name.includes('/') && r.verbs?.includes('list')) lists.push(`/apis/${gv}/${r.name}`);
  }
  return lists.sort();
}

/** Kept by Kubernetes itself, not by anyone who uses it. */
function maintainedByKubernetes(item: any): boolean {
  const name = String(item.metadata.name);
  return name === 'kube-root-ca.crt' || name.startsWith('system:') || item.type === 'kubernetes.io/service-account-token';
}

export async function snapshotCluster(cp: ControlPlane): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const list of [...LISTS, ...(await customLists(cp))]) {
    const items: any[] = (await getJson(cp, list)).items ?? [];
    out[list] = items
      .filter((i) => !maintainedByKubernetes(i))
      .map((i) => {
        const meta = `labels=${JSON.stringify(i.metadata.labels ?? {})} annotations=${JSON.stringify(i.metadata.annotations ?? {})}`;
        const type = list.endsWith('/services') ? ` ${i.spec.type}:${(i.spec.ports ?? []).map((p: any) => p.nodePort ?? '-').join(',')}` : '';
        return `${i.metadata.namespace ?? ''}/${i.metadata.name} ${meta}${type}`;
      })
      .sort();
  }
  return out;
}
