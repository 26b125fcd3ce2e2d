import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { KubeObject } from '../kube/client.js';
import { parseManifests } from '../kube/manifests.js';
import { SERVICES, type ServiceName } from './settings.js';

export const TEMPLATES_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../templates');

export function renderAppManifests(namespace: string, images: Record<ServiceName, string>): { text: string; objects: KubeObject[] } {
  const vars: Record<string, string> = { NAMESPACE: namespace };
  for (const s of SERVICES) vars[`IMAGE_${s.replace('-', '_').toUpperCase()}`] = images[s];
  const template = fs.readFileSync(path.join(TEMPLATES_DIR, 'manifests', 'app.yaml'), 'utf8');
  const text = template.replace(/\$\{([A-Z_]+)\}/g, (whole, name) => vars[name] ?? whole);
  return { text, objects: parseManifests(text, 'templates/manifests/app.yaml') };
}

export const APP_DEPLOYMENTS = [...SERVICES];
