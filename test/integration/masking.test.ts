// Secrets are masked before anything is serialised, and the record (readable with the view role) holds none.
// Against a REAL Kubernetes 1.20.2 API server; simulated: the node and istioctl (the stand-in in the archive).
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { type ControlPlane, kubeJson } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import type { ReleaseArchive } from '../support/release-archive.js';
import { errorLines, runMeshdemo, type CliResult } from '../support/cli.js';
import { skipUnless } from '../support/requirements.js';
import type { ReleaseServer } from '../support/release-server.js';
import yaml from 'js-yaml';

/** Neither the raw nor the decoded nor the JSON-escaped form of any of these appears in what meshdemo printed. */
function assertNotShown(r: CliResult, secrets: string[], what: string): void {
  for (const secret of secrets) {
    for (const form of new Set([secret, decodeURIComponent(secret), JSON.stringify(secret).slice(1, -1)])) {
      assert.ok(!r.stdout.includes(form) && !r.stderr.includes(form), `${what}: "${form}" printed:\n${r.stderr}\n${r.stdout}`);
    }
  }
}

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

describe('credentials in URLs and from exec plugins are never shown', () => {
  const demo = withDemoCluster({ name: 'urlmask', controlPlane: false, release: 'server' });
  let tmp: string;
  let server: ReleaseServer;
  before(() => ({ tmp, server } = demo));
  const withCredentials = (url: string, userinfo: string) => url.replace('://', `://${userinfo}@`);
  const noCluster = () => ['--kubeconfig', path.join(tmp, 'no-such-kubeconfig')];

  it('--istio-mirror http://user:password@host: not in the done line, the retry warnings or --json', async () => {
    const mirror = withCredentials(server.url, 'mirror-user:pa%40ss-9f1e2d');
    for (const flags of [['--json'], []]) {
      server.setMode({ dropAfterBytes: 32 * 1024, dropOnce: true }); // the archive's connection drops once: a retry warning
      const cache = path.join(tmp, `cache-${flags.length}`);
      const r = await runMeshdemo([...noCluster(), '--cache-dir', cache, ...flags, 'download', '--istio-mirror', mirror], { timeoutMs: 120_000 });
      assert.equal(r.code, 0, r.stderr);
      assertNotShown(r, ['pa%40ss-9f1e2d', 'mirror-user'], `download ${flags}`);
      const shown = flags.length ? r.events().filter((e) => e.type === 'step' || e.type === 'log').map((e) => e.message ?? '').join('\n') : r.stderr;
      assert.match(shown, /download attempt 1 failed/, 'the retry warning was shown');
      assert.ok(shown.includes(`from ${withCredentials(server.url, '***')}/1.8.4/istio-1.8.4-linux-amd64.tar.gz`), `the done line names the mirror, masked:\n${shown}`);
    }
  });

  it('--istio-mirror with credentials in an error, also when the URL does not parse', async () => {
    const r = await runMeshdemo([...noCluster(), '--cache-dir', path.join(tmp, 'cache-err'), '--json', 'download', '--istio-version', '1.8.3', '--istio-mirror', withCredentials(server.url, 'u:err-pass-4b4b')]);
    assert.equal(r.code, 5, r.stderr);
    assertNotShown(r, ['err-pass-4b4b'], 'error');
    assert.match(r.events().at(-1).error, /^http:\/\/\*\*\*@127\.0\.0\.1:\d+\/1\.8\.3\/istio-1\.8\.3-linux-amd64\.tar\.gz\.sha256 answered HTTP 404/);
    // a password holding "/" makes no URL: the message about it still masks it
    const bad = await runMeshdemo([...noCluster(), 'download', '--istio-mirror', 'http://u:pass/word-6c6c@127.0.0.1:1']);
    assert.equal(bad.code, 2, bad.stderr);
    assertNotShown(bad, ['pass/word-6c6c', 'word-6c6c'], 'unparsable mirror');
    assert.match(errorLines(bad.stderr)[0], /^error: --istio-mirror "http:\/\/\*\*\*@127\.0\.0\.1:1" is not a URL — /);
  });

  it('--kind-mirror with credentials in plan', async () => {
    const home = fs.mkdtempSync(path.join(tmp, 'home-'));
    const r = await runMeshdemo(['--cache-dir', path.join(tmp, 'cache-plan'), 'plan', '--kind-mirror', withCredentials(server.url, 'kind-user:kind-pass-2d2d')], {
      env: { HOME: home, KUBECONFIG: undefined },
    });
    assertNotShown(r, ['kind-pass-2d2d', 'kind-user'], 'plan');
    assert.match(r.stdout, new RegExp(`kind-download .*download http://\\*\\*\\*@127\\.0\\.0\\.1:\\d+/v0\\.17\\.0/kind-`), r.stdout + r.stderr);
  });

  it("an API server URL with user:password from the kubeconfig, and an exec plugin's stderr echoing its args and env", async () => {
    const kubeconfig = path.join(tmp, 'creds.kubeconfig');
    // the plugin (a real child process) fails, echoing an argument and an env value whose name says nothing of a secret
    const plugin = path.join(tmp, 'login-plugin.sh');
    fs.writeFileSync(plugin, '#!/bin/sh\necho "login refused for --client-secret=$2 with LOGIN_OPTS=$LOGIN_OPTS" >&2\nexit 1\n', { mode: 0o755 });
    fs.writeFileSync(
      kubeconfig,
      yaml.dump({
        apiVersion: 'v1',
        kind: 'Config',
        // port 1 on loopback: nothing listens there
        clusters: [{ name: 'c', cluster: { server: 'https://kc-user:kc-pass-77aa@127.0.0.1:1' } }],
        users: [
          { name: 'token', user: { token: 'static-token-1f1f' } },
          { name: 'exec', user: { exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: plugin, args: ['get-credential', 'cs-value-3f9a'], env: [{ name: 'LOGIN_OPTS', value: 'opt-value-8c7b' }] } } },
        ],
        contexts: [
          { name: 'token', context: { cluster: 'c', user: 'token' } },
          { name: 'exec', context: { cluster: 'c', user: 'exec' } },
        ],
        'current-context': 'token',
      }),
    );
    for (const flags of [['--json'], ['--verbose'], []]) {
      const server = await runMeshdemo(['--kubeconfig', kubeconfig, ...flags, 'status']);
      assert.equal(server.code, 3, server.stderr);
      assertNotShown(server, ['kc-pass-77aa', 'kc-user'], `server ${flags}`);
      assert.match(errorLines(server.stderr)[0], /^error: cannot reach the API server at https:\/\/\*\*\*@127\.0\.0\.1:1 \(ECONNREFUSED\) — /);

      const exec = await runMeshdemo(['--kubeconfig', kubeconfig, '--context', 'exec', ...flags, 'status']);
      assert.equal(exec.code, 3, exec.stderr);
      assertNotShown(exec, ['cs-value-3f9a', 'opt-value-8c7b', 'kc-pass-77aa'], `exec plugin ${flags}`);
      const lines = errorLines(exec.stderr);
      assert.equal(lines.length, 1, exec.stderr);
      assert.match(lines[0], /^error: the credential plugin login-plugin\.sh of kubeconfig user "exec" failed — /);
      assert.match(exec.stderr, /login refused for --client-secret=\*\*\* with LOGIN_OPTS=\*\*\*/, 'its output is shown, masked');
    }
  });
});

describe('the record holds no secret', { skip: skipUnless('control-plane'), timeout: 600_000 }, () => {
  const demo = withDemoCluster({ name: 'masking', release: 'archive' });
  let cp: ControlPlane;
  let tmp: string;
  let archive: ReleaseArchive;
  before(() => ({ cp, tmp, archive } = demo));

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
