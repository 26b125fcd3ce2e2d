// What preflight and status ask of a cluster: its Kubernetes version against what Istio 1.8 supports, and the
// permissions up needs (read through SelfSubjectRulesReview).
import { KubeApiError, KubeForbiddenError, type KubeClient, type ResourceRule } from '../kube/client.js';

export interface VersionVerdict {
  version: string;
  verdict: 'supported' | 'untested' | 'refused';
  message: string;
}

/** Istio 1.8 supports Kubernetes 1.16–1.19; 1.20–1.21 still serve every API it uses; 1.22 removed some. */
export function versionVerdict(v: { major: string; minor: string; gitVersion: string }): VersionVerdict {
  const major = Number.parseInt(v.major, 10);
  const minor = Number.parseInt(v.minor, 10);
  const version = v.gitVersion || `v${v.major}.${v.minor}`;
  const fix = 'use a Kubernetes 1.16–1.21 cluster, for example `kind create cluster --image kindest/node:v1.19.16`';
  if (major !== 1 || Number.isNaN(minor)) {
    return { version, verdict: 'refused', message: `cannot tell the Kubernetes version from "${version}"; ${fix}` };
  }
  if (minor < 16) {
    return { version, verdict: 'refused', message: `Kubernetes ${version} is older than 1.16, the oldest Istio 1.8.4 supports; ${fix}` };
  }
  if (minor <= 19) return { version, verdict: 'supported', message: `Kubernetes ${version} is supported by Istio 1.8.4` };
  if (minor <= 21) {
    return {
      version,
      verdict: 'untested',
      message: `Kubernetes ${version} is untested with Istio 1.8.4 (supported: 1.16–1.19), but still serves every API it needs`,
    };
  }
  return {
    version,
    verdict: 'refused',
    message: `Kubernetes ${version} is not supported: Istio 1.8.4 uses APIs removed in Kubernetes 1.22 (e.g. apiextensions.k8s.io/v1beta1, admissionregistration.k8s.io/v1beta1); ${fix}`,
  };
}

export interface Permission {
  verb: string;
  group: string;
  resource: string;
  namespace?: string;
}

/** What `up` does to the cluster, as SelfSubjectAccessReview attributes. */
export function requiredPermissions(appNamespace: string): Permission[] {
  const cluster: Array<[string, string, string]> = [
    ['create', '', 'namespaces'],
    ['patch', '', 'namespaces'],
    ['create', 'apiextensions.k8s.io', 'customresourcedefinitions'],
    ['create', 'rbac.authorization.k8s.io', 'clusterroles'],
    ['create', 'rbac.authorization.k8s.io', 'clusterrolebindings'],
    ['create', 'admissionregistration.k8s.io', 'mutatingwebhookconfigurations'],
    ['create', 'admissionregistration.k8s.io', 'validatingwebhookconfigurations'],
  ];
  const namespaced: Array<[string, string, string, string]> = [
    ['create', '', 'services', 'istio-system'],
    ['patch', '', 'services', 'istio-system'],
    ['create', 'apps', 'deployments', 'istio-system'],
    ['create', '', 'configmaps', 'istio-system'],
    ['create', '', 'services', appNamespace],
    ['create', 'apps', 'deployments', appNamespace],
    ['create', '', 'configmaps', appNamespace],
  ];
  return [
    ...cluster.map(([verb, group, resource]) => ({ verb, group, resource })),
    ...namespaced.map(([verb, group, resource, namespace]) => ({ verb, group, resource, namespace })),
  ];
}

export function describePermission(p: Permission): string {
  return `${p.verb} ${p.group ? `${p.resource}.${p.group}` : p.resource}${p.namespace ? ` in namespace ${p.namespace}` : ' (cluster-wide)'}`;
}

/** Whether a rule grants the permission on every object of its resource (a rule limited to names does not). */
function grants(rule: ResourceRule, p: Permission): boolean {
  const has = (list: string[] | undefined, value: string) => (list ?? []).some((v) => v === '*' || v === value);
  return has(rule.verbs, p.verb) && has(rule.apiGroups, p.group) && has(rule.resources, p.resource) && !rule.resourceNames?.length;
}

/**
 * One review of the identity's cluster-wide rules answers for the usual cluster admin; whatever those rules do not
 * grant is asked one SelfSubjectAccessReview at a time, which also sees RoleBindings and other authorizers.
 */
export async function missingPermissions(kube: KubeClient, appNamespace: string): Promise<Permission[]> {
  const wanted = requiredPermissions(appNamespace);
  const rules = await kube.clusterWideRules().catch((err) => {
    if (err instanceof KubeApiError || err instanceof KubeForbiddenError) return [];
    throw err;
  });
  const unsure = wanted.filter((p) => !rules.some((r) => grants(r, p)));
  const allowed = await Promise.all(unsure.map((p) => kube.canI(p)));
  return unsure.filter((_, i) => !allowed[i]);
}

export async function clusterVersion(kube: KubeClient): Promise<VersionVerdict> {
  return versionVerdict(await kube.version({ retryMs: 1500 }));
}
