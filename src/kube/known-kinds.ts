/**
 * Resource names and scopes that need no discovery request. Built-in kinds: what every Kubernetes 1.16–1.21 serves
 * (the versions preflight accepts) under these exact group versions, plurals and scopes. CRD-defined kinds: their
 * names are fixed by the CRDs Istio 1.8.4 ships, but whether they are served is still asked of the server.
 */
export interface KnownKind {
  plural: string;
  namespaced: boolean;
  /** Defined by a CustomResourceDefinition: served only once that is established. */
  crd?: true;
}

const builtIn = (plural: string, namespaced: boolean): KnownKind => ({ plural, namespaced });
const fromCrd = (plural: string): KnownKind => ({ plural, namespaced: true, crd: true });

const KNOWN: Record<string, KnownKind> = {
  'v1/Namespace': builtIn('namespaces', false),
  'v1/Node': builtIn('nodes', false),
  'v1/Service': builtIn('services', true),
  'v1/ConfigMap': builtIn('configmaps', true),
  'v1/Secret': builtIn('secrets', true),
  'v1/ServiceAccount': builtIn('serviceaccounts', true),
  'v1/Pod': builtIn('pods', true),
  'v1/Event': builtIn('events', true),
  'v1/Endpoints': builtIn('endpoints', true),
  'apps/v1/Deployment': builtIn('deployments', true),
  'apps/v1/ReplicaSet': builtIn('replicasets', true),
  'apps/v1/DaemonSet': builtIn('daemonsets', true),
  'apps/v1/StatefulSet': builtIn('statefulsets', true),
  'rbac.authorization.k8s.io/v1/ClusterRole': builtIn('clusterroles', false),
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': builtIn('clusterrolebindings', false),
  'rbac.authorization.k8s.io/v1/Role': builtIn('roles', true),
  'rbac.authorization.k8s.io/v1/RoleBinding': builtIn('rolebindings', true),
  'apiextensions.k8s.io/v1/CustomResourceDefinition': builtIn('customresourcedefinitions', false),
  // still served until 1.22 (Istio 1.8.4's kiali.yaml declares its CRD in this version)
  'apiextensions.k8s.io/v1beta1/CustomResourceDefinition': builtIn('customresourcedefinitions', false),
  // manifests/charts/base/files/gen-istio-cluster.yaml (CRD istiooperators.install.istio.io, Namespaced)
  'install.istio.io/v1alpha1/IstioOperator': fromCrd('istiooperators'),
  // manifests/charts/base/crds/crd-all.gen.yaml (Namespaced)
  'networking.istio.io/v1alpha3/Gateway': fromCrd('gateways'),
  'networking.istio.io/v1alpha3/VirtualService': fromCrd('virtualservices'),
  'networking.istio.io/v1alpha3/DestinationRule': fromCrd('destinationrules'),
  // samples/addons/kiali.yaml (CRD monitoringdashboards.monitoring.kiali.io, Namespaced)
  'monitoring.kiali.io/v1alpha1/MonitoringDashboard': fromCrd('monitoringdashboards'),
};

export function knownKind(apiVersion: string, kind: string): KnownKind | undefined {
  return KNOWN[`${apiVersion}/${kind}`];
}
