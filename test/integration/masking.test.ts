// Secrets are masked before anything is serialised, and the record (readable with the view role) holds none.
// Against a REAL Kubernetes 1.20.2 API server; simulated: the node and istioctl (the stand-in in the archive).
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startControlPlane, type ControlPlane, kubeJson } from '../support/control-plane.js';
import { startNodeSimulator, type NodeSimulator } from '../support/node-simulator.js';
import { buildReleaseArchive, type ReleaseArchive } from '../support/release-archive.js';
import { errorLines, runMeshdemo } from '../support/cli.js';
import { skipUnless } from '../support/requirements.js';

describe('a password holding " and \\ in --json output', () => {
  it('stays masked in the result event and on stderr', async () => {
    const secret = 'pa"ss\\word-5c1d9e';
    for (const flags of [['--json'], ['--json', '--verbose'], []]) {
      // the bad --namespace value is echoed in the error line: the password, when it is one, must not be
      const r = await runMeshdemo([...flags, '--namespace', secret, 'status'], { env: { MESHDEMO_REGISTRY_PASSWORD: secret } });
      assert.equal(r.code, 2, r.stderr);
      assert.ok(!r.stdout.includes(secret) && !r.stderr.includes(secret), `${flags}: raw secret printed`);
      assert.ok(!r.stdout.includes(JSON.stringify(secret).slice(1, -1)), `${flags}: JSON-escaped secret printed:\n${r.stdout}`);
      assert.match(errorLines(r.stderr)[0], /^error: --namespace "\*\*\*" is not a valid namespace name — /);
      if (flags.includes('--json')) {
        const result = r.events().at(-1);
        assert.equal(result.type, 'result');
        assert.match(result.error, /^--namespace "\*\*\*" is not a valid namespace name/);
      }
    }
  });
});

describe('the record holds no secret', { skip: skipUnless('control-plane'), timeout: 600_000 }, () => {
  let cp: ControlPlane;
  let sim: NodeSimulator;
  let tmp: string;
  let archive: ReleaseArchive;
  before(async () => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-masking-'));
    archive = await buildReleaseArchive({ outDir: path.join(tmp, 'release') });
    cp = await startControlPlane();
    sim = await startNodeSimulator(cp.kubeconfigPath);
  });
  after(async () => {
    await sim?.stop();
    await cp?.stop();
    if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  });

  it('--istio-set values whose key names a token are recorded masked, and never printed', async () => {
    const token = 'access-token-"9f8e\\7d6c';
    const set = `meshConfig.defaultConfig.proxyMetadata.ACCESS_TOKEN=${token}`;
    const r = await runMeshdemo(
      ['--kubeconfig', cp.kubeconfigPath, '--cache-dir', path.join(tmp, 'cache'), '--json', '--verbose', 'up', '--no-app', '--yes', '--istio-archive', archive.path, '--istio-set', set, '--istio-set', 'values.global.proxy.privileged=true'],
      { timeoutMs: 300_000 },
    );
    assert.equal(r.code, 0, r.stderr + r.stdout);
    for (const text of [r.stdout, r.stderr]) assert.ok(!text.includes(token) && !text.includes(JSON.stringify(token).slice(1, -1)), 'the token is not printed');
    const cm = await kubeJson(cp, '/api/v1/namespaces/default/configmaps/meshdemo-inventory');
    assert.equal(cm.status, 200);
    const raw = JSON.stringify(cm.body);
    assert.ok(!raw.includes('9f8e'), `the record holds the token:\n${cm.body.data['inventory.json']}`);
    const inventory = JSON.parse(cm.body.data['inventory.json']);
    assert.deepEqual(inventory.steps['istio-install'].inputs.set, ['meshConfig.defaultConfig.proxyMetadata.ACCESS_TOKEN=***', 'values.global.proxy.privileged=true']);
  });
});
