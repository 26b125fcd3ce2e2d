import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
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

/**
 * readManifests, with the objects kept as JSON in jsonDir under the YAML's sha256 for the next run: parsing the
 * addons' 290 kB of YAML was the largest CPU cost of a no-op up (~70 ms, and as much again collecting its garbage).
 * Keyed by content, so an edited file is parsed again; a cache that cannot be read or written only costs the parse.
 */
export function readManifestsCached(file: string, jsonDir: string): KubeObject[] {
  const text = fs.readFileSync(file);
  const json = path.join(jsonDir, `${createHash('sha256').update(text).digest('hex')}.json`);
  try {
    const cached: unknown = JSON.parse(fs.readFileSync(json, 'utf8'));
    if (Array.isArray(cached)) return cached as KubeObject[];
  } catch {
    // not cached yet, or unreadable: parsed below
  }
  const objects = parseManifests(text.toString('utf8'), file);
  try {
    fs.mkdirSync(jsonDir, { recursive: true, mode: 0o755 });
    const tmp = `${json}.tmp-${process.pid}`;
    fs.writeFileSync(tmp, JSON.stringify(objects), { mode: 0o644 });
    fs.renameSync(tmp, json);
  } catch {
    // a read-only cache: parsed again next time
  }
  return objects;
}
