import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import { PassThrough } from 'node:stream';
import yaml from 'js-yaml';
import { loadKubeconfig } from '../../src/kube/kubeconfig.js';
import { makeRedactor, maskSecretSets, maskUrlUserinfo, secretSetValues, secretsFromEnv, urlCredentials } from '../../src/core/secrets.js';
import { createRenderer } from '../../src/ui/renderer.js';

function capture() {
  const stream = new PassThrough();
  let text = '';
  stream.on('data', (c) => (text += c));
  return { stream, text: () => text };
}

describe('masking before serialising', () => {
  it('a secret holding " and \\ stays masked in --json events and results', async () => {
    const secret = 'pa"ss\\word-7e1f';
    const stdout = capture();
    const stderr = capture();
    const ui = await createRenderer('json', { verbose: true, secrets: new Set([secret]), streams: { stdout: stdout.stream, stderr: stderr.stream } });
    ui.emit({ type: 'log', level: 'info', message: `connecting with ${secret}` });
    ui.result(false, { error: `refused: ${secret}`, details: [`  ${secret}`], nested: { [secret]: [secret] } });
    ui.print(`printed ${secret}`);
    const lines = stdout.text().trim().split('\n');
    assert.equal(lines.length, 2);
    const events = lines.map((l) => JSON.parse(l));
    const strings = JSON.stringify(events);
    assert.ok(!strings.includes('pa\\"ss'), stdout.text());
    assert.equal(events[0].message, 'connecting with ***');
    assert.deepEqual(events[1], { type: 'result', ok: false, error: 'refused: ***', details: ['  ***'], nested: { '***': ['***'] } });
    assert.equal(stderr.text(), 'printed ***\n');
  });

  it('--istio-set values whose key names a credential are secrets, and recorded masked', () => {
    const sets = ['values.global.proxy.privileged=true', 'meshConfig.defaultConfig.proxyMetadata.ACCESS_TOKEN=abc=def', 'values.x.password=p', 'values.tls.privateKey=k', 'values.clientSecret='];
    assert.deepEqual(secretSetValues(sets), ['abc=def', 'p', 'k']);
    assert.deepEqual(maskSecretSets(sets), ['values.global.proxy.privileged=true', 'meshConfig.defaultConfig.proxyMetadata.ACCESS_TOKEN=***', 'values.x.password=***', 'values.tls.privateKey=***', 'values.clientSecret=']);
  });
});

describe('the userinfo of every URL shown', () => {
  it('is masked wherever a URL stands in a text: mirrors, proxies, API servers, redirect targets', () => {
    const cases: Array<[string, string]> = [
      ['download of http://user:pass@127.0.0.1:8080/x failed', 'download of http://***@127.0.0.1:8080/x failed'],
      ['redirected to https://tok3n-abc@files.example/a?b=c@d', 'redirected to https://***@files.example/a?b=c@d'],
      ['proxy HTTPS_PROXY=http://p:p@ss:w0rd@proxy:3128 refused', 'proxy HTTPS_PROXY=http://***@proxy:3128 refused'],
      ['"server":"https://u:p@127.0.0.1:6443"', '"server":"https://***@127.0.0.1:6443"'],
      ['two: http://a:b@h1/ and HTTP://c:d@h2', 'two: http://***@h1/ and HTTP://***@h2'],
      ['no userinfo: https://host/path@v2 and user@host and mailto:x@y', 'no userinfo: https://host/path@v2 and user@host and mailto:x@y'],
    ];
    for (const [text, masked] of cases) assert.equal(maskUrlUserinfo(text), masked);
    assert.equal(makeRedactor(new Set())('at https://u:secret@h/'), 'at https://***@h/', 'every redactor does it');
  });
  it("a URL's password (as written and decoded), or a user name that is a token, is a secret", () => {
    assert.deepEqual(urlCredentials('http://user:pa%40ss@h/'), ['pa%40ss', 'pa@ss']);
    assert.deepEqual(urlCredentials('https://ghp_token123@h/'), ['ghp_token123']);
    assert.deepEqual(urlCredentials('https://h/'), []);
    assert.deepEqual(secretsFromEnv({ HTTPS_PROXY: 'http://u:proxy-pass@127.0.0.1:3128', http_proxy: 'http://127.0.0.1:3128', NO_PROXY: 'x' }), ['proxy-pass']);
  });
});

describe('every credential kind of a kubeconfig is collected for masking', () => {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-creds-'));
  const key = path.join(tmp, 'client.key');
  const crt = path.join(tmp, 'client.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-subj', '/CN=u', '-days', '1'], { stdio: 'ignore' });
  const keyPem = fs.readFileSync(key, 'utf8');
  const tokenFile = path.join(tmp, 'token');
  const providerTokenFile = path.join(tmp, 'provider-token');
  fs.writeFileSync(tokenFile, 'token-from-file-0a1b2c\n');
  fs.writeFileSync(providerTokenFile, 'provider-file-token-3d4e5f');
  const plugin = path.join(tmp, 'plugin.sh');
  fs.writeFileSync(plugin, `#!/bin/sh\necho '{"apiVersion":"client.authentication.k8s.io/v1beta1","kind":"ExecCredential","status":{"token":"exec-token-6a7b8c"}}'\n`, { mode: 0o755 });
  const users: Record<string, object> = {
    static: { token: 'static-token-1f2e3d' },
    tokenfile: { 'token-file': tokenFile },
    basic: { username: 'u', password: 'basic-password-9a8b' },
    keydata: { 'client-certificate-data': Buffer.from(fs.readFileSync(crt)).toString('base64'), 'client-key-data': Buffer.from(keyPem).toString('base64') },
    keyfile: { 'client-certificate': crt, 'client-key': key },
    provider: { 'auth-provider': { name: 'oidc', config: { 'id-token': 'oidc-id-token-4c5d', 'refresh-token': 'oidc-refresh-6e7f', 'client-secret': 'oidc-client-secret-8a9b', 'client-id': 'public-id' } } },
    providerfile: { 'auth-provider': { name: 'file', config: { tokenFile: providerTokenFile } } },
    exec: { exec: { apiVersion: 'client.authentication.k8s.io/v1beta1', command: plugin, args: ['--client-secret=exec-flag-value-6b6b', 'exec-arg-secret-5a5a'], env: [{ name: 'AWS_SECRET_ACCESS_KEY', value: 'exec-env-secret-1234' }, { name: 'REGION', value: 'eu-1' }] } },
  };
  const kubeconfig = path.join(tmp, 'kubeconfig');
  fs.writeFileSync(
    kubeconfig,
    yaml.dump({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: 'https://127.0.0.1:1' } }],
      users: Object.entries(users).map(([name, user]) => ({ name, user })),
      contexts: Object.keys(users).map((name) => ({ name, context: { cluster: 'c', user: name } })),
      'current-context': 'static',
    }),
  );

  it('from the file: tokens, token files, basic auth, client keys (data and file, and each PEM line), auth-provider tokens', async () => {
    const { secrets } = await loadKubeconfig({ kubeconfig });
    for (const wanted of ['static-token-1f2e3d', 'token-from-file-0a1b2c', 'basic-password-9a8b', 'oidc-id-token-4c5d', 'oidc-refresh-6e7f', 'oidc-client-secret-8a9b', 'provider-file-token-3d4e5f', 'exec-env-secret-1234']) {
      assert.ok(secrets.includes(wanted), `${wanted} is collected`);
    }
    assert.ok(secrets.includes(Buffer.from(keyPem).toString('base64')), 'client-key-data');
    for (const line of keyPem.split('\n').filter((l) => l && !l.startsWith('-----'))) assert.ok(secrets.includes(line), `PEM line ${line.slice(0, 10)}…`);
    assert.ok(secrets.includes('eu-1') && secrets.includes('exec-arg-secret-5a5a') && secrets.includes('exec-flag-value-6b6b'), "an exec plugin's env values and arguments, whatever their names");
    assert.ok(!secrets.includes('--client-secret') && !secrets.includes('--client-secret=exec-flag-value-6b6b'), 'not the flag names');
    assert.ok(!secrets.includes('public-id') && !secrets.includes('u'), 'not what is no secret');
  });

  it("an exec plugin's credential, once a request carries it", async () => {
    const seen: string[] = [];
    const resolved = await loadKubeconfig({ kubeconfig, context: 'exec', onSecret: (s) => seen.push(s) });
    assert.ok(!seen.includes('exec-token-6a7b8c'));
    const opts: https.RequestOptions = { headers: {} };
    await resolved.applyToHTTPSOptions(opts);
    assert.equal((opts.headers as any).Authorization, 'Bearer exec-token-6a7b8c');
    assert.ok(seen.includes('exec-token-6a7b8c'), 'reported to be masked');
    assert.ok(resolved.secrets.includes('exec-token-6a7b8c'));
  });
});
