import fs from 'node:fs';
import yaml from 'js-yaml';
import { UsageError } from '../core/errors.js';
import type { KubeObject } from './client.js';

/** All objects in a multi-document YAML file (empty documents and `List`s handled). */
export function parseManifests(text: string, source = 'manifest'): KubeObject[] {
  let docs: unknown[];
  try {
    docs = yaml.loadAll(text);
  } catch (err) {
    throw new UsageError(`${source} is not valid YAML: ${(err as Error).message.split('\n')[0]}`);
  }
  const out: KubeObject[] = [];
  for (const doc of docs) {
    if (!doc || typeof doc !== 'object') continue;
    const obj = doc as KubeObject;
    if (obj.kind?.endsWith('List') && Array.isArray(obj.items)) out.push(...(obj.items as KubeObject[]));
    else if (obj.apiVersion && obj.kind && obj.metadata?.name) out.push(obj);
  }
  return out;
}

export function readManifests(file: string): KubeObject[] {
  return parseManifests(fs.readFileSync(file, 'utf8'), file);
}
