import fs from 'node:fs';
import { apiRequest, type ControlPlane } from './control-plane.js';

/**
 * Every object the tests care about (namespaces with labels, and all namespaced and cluster-scoped objects of
 * the kinds meshdemo touches), minus what Kubernetes itself maintains — to compare a cluster before and after.
 */
const LISTS = [
  '/api/v1/namespaces',
  '/api/v1/services',
  '/api/v1/configmaps',
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
  '/apis/coordination.k8s.io/v1/leases',
];

export async function snapshotCluster(cp: ControlPlane): Promise<Record<string, string[]>> {
  const out: Record<string, string[]> = {};
  for (const list of LISTS) {
    const res = await apiRequest(cp.server, { ca: fs.readFileSync(cp.caFile), token: cp.adminToken, path: list });
    const items: any[] = JSON.parse(res.body).items ?? [];
    out[list] = items
      .filter((i) => !(i.metadata.name === 'kube-root-ca.crt'))
      .filter((i) => !String(i.metadata.name).startsWith('system:'))
      .map((i) => {
        const labels = list.endsWith('/namespaces') ? JSON.stringify(i.metadata.labels ?? {}) : '';
        const type = list.endsWith('/services') ? `${i.spec.type}:${(i.spec.ports ?? []).map((p: any) => p.nodePort ?? '-').join(',')}` : '';
        return `${i.metadata.namespace ?? ''}/${i.metadata.name} ${labels}${type}`;
      })
      .sort();
  }
  return out;
}
