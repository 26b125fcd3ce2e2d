// The kind stand-in itself (test/support/kind-standin.ts): the CLI surface meshdemo relies on, as kind v0.17.0
// behaves (the parts that need no control plane; creation and deletion are exercised in local-cluster.test.ts).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { kindStandinScript } from '../support/kind-standin.js';

describe('kind stand-in: CLI surface of kind v0.17.0', () => {
  let tmp: string;
  let bin: string;
  const kind = (args: string[], env: Record<string, string> = {}) => {
    const r = spawnSync(bin, args, { encoding: 'utf8', env: { ...process.env, STANDIN_KIND_STATE: path.join(tmp, 'state'), HOME: tmp, KUBECONFIG: '', ...env } });
    return { code: r.status, stdout: r.stdout, stderr: r.stderr };
  };
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-kind-standin-'));
    bin = path.join(tmp, 'kind');
    fs.writeFileSync(bin, kindStandinScript(), { mode: 0o755 });
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  it('version: "kind v0.17.0 go1.19.2 linux/amd64" on stdout', () => {
    assert.deepEqual(kind(['version']), { code: 0, stdout: 'kind v0.17.0 go1.19.2 linux/amd64\n', stderr: '' });
  });

  it('get clusters with none: "No kind clusters found." on stderr, nothing on stdout, exit 0', () => {
    assert.deepEqual(kind(['get', 'clusters']), { code: 0, stdout: '', stderr: 'No kind clusters found.\n' });
  });

  it('errors are "ERROR: …" on stderr with exit 1', () => {
    assert.deepEqual(kind(['create', 'cluster', '--bogus']), { code: 1, stdout: '', stderr: 'ERROR: unknown flag: --bogus\n' });
    const bad = path.join(tmp, 'bad.yaml');
    fs.writeFileSync(bad, 'kind: Cluster\napiVersion: kind.x-k8s.io/v1alpha3\n');
    assert.deepEqual(kind(['create', 'cluster', '--config', bad]), { code: 1, stdout: '', stderr: 'ERROR: unknown apiVersion: kind.x-k8s.io/v1alpha3\n'.replace('ERROR: ', 'ERROR: failed to create cluster: ') });
    assert.deepEqual(kind(['create', 'cluster', '--name', 'Bad_Name']).stderr, "ERROR: failed to create cluster: 'Bad_Name' is not a valid cluster name, cluster names must match `^[a-z0-9.-]+$`\n");
    assert.deepEqual(kind(['load', 'docker-image']), { code: 1, stdout: '', stderr: 'ERROR: a list of image names is required\n' });
  });

  it('delete cluster of a cluster that does not exist: "Deleting cluster …", exit 0, and kind-<name> leaves the kubeconfig', () => {
    const kc = path.join(tmp, 'kc');
    fs.writeFileSync(kc, 'apiVersion: v1\nkind: Config\ncurrent-context: kind-x\ncontexts:\n- name: kind-x\n  context: {cluster: kind-x, user: kind-x}\n- name: other\n  context: {cluster: o, user: o}\n');
    assert.deepEqual(kind(['delete', 'cluster', '--name', 'x'], { KUBECONFIG: kc }), { code: 0, stdout: '', stderr: 'Deleting cluster "x" ...\n' });
    const text = fs.readFileSync(kc, 'utf8');
    assert.match(text, /current-context: ''/);
    assert.doesNotMatch(text, /kind-x/);
    assert.match(text, /name: other/);
  });
});
