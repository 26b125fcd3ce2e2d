import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { readManifests, readManifestsCached } from '../../src/kube/manifests.js';
import { FIXTURES } from '../support/release-archive.js';

const GRAFANA = path.join(FIXTURES, 'samples', 'addons', 'grafana.yaml');

describe('readManifestsCached: parsed YAML kept as JSON by the sha256 of its text', () => {
  let dir: string;
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-manifests-'));
  });
  afterEach(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('gives what parsing gives, first parsed, then from the JSON it wrote (the real grafana addon)', () => {
    const parsed = readManifests(GRAFANA);
    const jsonDir = path.join(dir, 'parsed');
    assert.deepEqual(readManifestsCached(GRAFANA, jsonDir), parsed);
    const written = fs.readdirSync(jsonDir);
    assert.equal(written.length, 1);
    assert.match(written[0], /^[0-9a-f]{64}\.json$/);
    // the second read is the JSON: a marker put into it shows up
    const json = path.join(jsonDir, written[0]);
    const marked = JSON.parse(fs.readFileSync(json, 'utf8'));
    marked[0].metadata.annotations = { marker: 'from the JSON' };
    fs.writeFileSync(json, JSON.stringify(marked));
    assert.equal(readManifestsCached(GRAFANA, jsonDir)[0].metadata.annotations?.marker, 'from the JSON');
  });

  it('parses an edited file again, and a corrupt or unwritable cache only costs the parse', () => {
    const yaml = path.join(dir, 'addon.yaml');
    const jsonDir = path.join(dir, 'parsed');
    fs.writeFileSync(yaml, 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: one\n');
    assert.equal(readManifestsCached(yaml, jsonDir)[0].metadata.name, 'one');
    fs.writeFileSync(yaml, 'apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: two\n');
    assert.equal(readManifestsCached(yaml, jsonDir)[0].metadata.name, 'two');
    for (const f of fs.readdirSync(jsonDir)) fs.writeFileSync(path.join(jsonDir, f), '{ not json');
    assert.equal(readManifestsCached(yaml, jsonDir)[0].metadata.name, 'two');
    const blocked = path.join(dir, 'a-file');
    fs.writeFileSync(blocked, '');
    assert.equal(readManifestsCached(yaml, path.join(blocked, 'parsed'))[0].metadata.name, 'two');
  });
});
