import fs from 'node:fs';
import path from 'node:path';
import { packageRoot } from '../core/package-root.js';
import type { KubeObject, ObjectRef } from '../kube/client.js';
import { parseManifests } from '../kube/manifests.js';
import { SERVICES, type ServiceName } from '../settings.js';

export function renderAppManifests(namespace: string, images: Record<ServiceName, string>): { text: string; objects: KubeObject[] } {
  const vars: Record<string, string> = { NAMESPACE: namespace };
  for (const s of SERVICES) vars[`IMAGE_${s.replace('-', '_').toUpperCase()}`] = images[s];
  const template = fs.readFileSync(path.join(packageRoot(), 'templates', 'manifests', 'app.yaml'), 'utf8');
  const text = template.replace(/\$\{([A-Z_]+)\}/g, (whole, name) => vars[name] ?? whole);
  return { text, objects: parseManifests(text, 'templates/manifests/app.yaml') };
}

/** Each service's Deployment, named as in the tutorial (templates/manifests/app.yaml). */
export const DEPLOYMENT_OF: Record<ServiceName, string> = {
  'micro-api': 'micro-api',
  'micro-order': 'micro-order-v1',
  'micro-pay': 'micro-pay-v1',
};
export const APP_DEPLOYMENTS = SERVICES.map((s) => DEPLOYMENT_OF[s]);
export const GATEWAY_NAME = 'micro-gateway';
export const VIRTUAL_SERVICE_NAME = 'micro-gateway';
const ISTIO_NETWORKING = 'networking.istio.io/v1alpha3';

/** Every object of the app by kind and name, without rendering images. */
export function appRefs(namespace: string): ObjectRef[] {
  return [
    ...SERVICES.flatMap((s) => [
      { apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: DEPLOYMENT_OF[s] },
      { apiVersion: 'v1', kind: 'Service', namespace, name: s },
    ]),
    { apiVersion: ISTIO_NETWORKING, kind: 'Gateway', namespace, name: GATEWAY_NAME },
    { apiVersion: ISTIO_NETWORKING, kind: 'VirtualService', namespace, name: VIRTUAL_SERVICE_NAME },
  ];
}

/**
 * Objects earlier meshdemo versions deployed under other names (Deployment micro-pay: before micro-pay-v1):
 * an up over such a cluster replaces them, and down --force still finds them.
 */
export function legacyAppRefs(namespace: string): ObjectRef[] {
  return [
    { apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: 'micro-order' },
    { apiVersion: 'apps/v1', kind: 'Deployment', namespace, name: 'micro-pay' },
    { apiVersion: ISTIO_NETWORKING, kind: 'VirtualService', namespace, name: 'micro-api' },
  ];
}
