// Secrets never reach stdout or stderr: every command, succeeding and failing, plain / --verbose / --json /
// --json --verbose, with secrets in the kubeconfig (the admin and viewer tokens, a client key and certificate that
// are never used — this API server only knows tokens — a basic-auth password, a rejected token) and in the
// environment (MESHDEMO_*PASSWORD|TOKEN|SECRET, a proxy URL with credentials). Against a REAL Kubernetes 1.20.2
// API server + controller manager and a REAL local HTTP server with a release-shaped archive; simulated: the node
// and istioctl (the stand-in in the archive).
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import yaml from 'js-yaml';
import { freePorts, type ControlPlane } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import type { ReleaseServer } from '../support/release-server.js';
import { errorLines, runMeshdemo, type CliResult } from '../support/cli.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane');
const MODES: Array<{ name: string; flags: string[] }> = [
  { name: 'plain', flags: [] },
  { name: 'verbose', flags: ['--verbose'] },
  { name: 'json', flags: ['--json'] },
  { name: 'json+verbose', flags: ['--json', '--verbose'] },
];

/** The modes that print the most (debug lines, stack traces), for the slow failing variants. */
const VERBOSE_MODES = MODES.filter((m) => m.flags.includes('--verbose'));

interface Run {
  name: string;
  args: string[];
  env?: Record<string, string | undefined>;
  /** Expected exit code: every run asserts one. */
  code: number;
  modes?: typeof MODES;
}

describe('secrets never printed', { skip }, () => {
  const demo = withDemoCluster({ name: 'secrets', release: 'server' });
  let cp: ControlPlane;
  let server: ReleaseServer;
  let tmp: string;
  let kubeconfig: string;
  const secret = (label: string) => `${label}-${randomBytes(12).toString('hex')}`;
  const env = {
    MESHDEMO_REGISTRY_PASSWORD: secret('registry-pw'),
    MESHDEMO_PULL_TOKEN: secret('pull-token'),
    HTTPS_PROXY: 'http://proxyuser:hunter2pass@127.0.0.1:9/',
    HTTP_PROXY: 'http://proxyuser:hunter2pass@127.0.0.1:9/',
    NO_PROXY: '127.0.0.1,localhost',
    MESHDEMO_LOCK_WAIT: '150s', // runs that change the cluster run 3 at a time here, and wait for each other's lock
  };
  const kubeSecrets = { basicPassword: secret('basic-pw'), badToken: secret('rejected-token') };
  /** Every value that must never appear, by what it is. */
  const secrets: Record<string, string> = {};

  before(async () => {
    ({ cp, server, tmp } = demo);

    // a client certificate and key (this API server has no client CA, so they are never used; still secret)
    const key = path.join(tmp, 'client.key');
    const crt = path.join(tmp, 'client.crt');
    execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', crt, '-subj', '/CN=meshdemo-cert-user', '-days', '1'], { stdio: 'ignore' });
    const keyPem = fs.readFileSync(key, 'utf8');
    const keyData = Buffer.from(keyPem).toString('base64');
    const certData = Buffer.from(fs.readFileSync(crt, 'utf8')).toString('base64');

    const doc = yaml.load(fs.readFileSync(cp.kubeconfigPath, 'utf8')) as any;
    const cluster = doc.clusters[0].name;
    doc.users.push({ name: 'cert', user: { 'client-certificate-data': certData, 'client-key-data': keyData } });
    doc.users.push({ name: 'basic', user: { username: 'meshdemo', password: kubeSecrets.basicPassword } });
    doc.users.push({ name: 'rejected', user: { token: kubeSecrets.badToken } });
    for (const user of ['cert', 'basic', 'rejected']) doc.contexts.push({ name: user, context: { cluster, user, namespace: 'default' } });
    kubeconfig = path.join(tmp, 'kubeconfig');
    fs.writeFileSync(kubeconfig, yaml.dump(doc), { mode: 0o600 });

    Object.assign(secrets, {
      'admin token': cp.adminToken,
      'viewer token': cp.viewToken,
      'rejected token': kubeSecrets.badToken,
      'basic-auth password': kubeSecrets.basicPassword,
      'client-key-data': keyData,
      'client key (PEM body)': keyPem.split('\n').filter((l) => l && !l.startsWith('-----'))[1],
      'client key (base64 chunk)': keyData.slice(200, 264),
      'MESHDEMO_REGISTRY_PASSWORD': env.MESHDEMO_REGISTRY_PASSWORD,
      'MESHDEMO_PULL_TOKEN': env.MESHDEMO_PULL_TOKEN,
      'proxy password': 'hunter2pass',
    });
  });

  it('no command prints a secret, succeeding or failing, in any output mode', async () => {
    const cache = path.join(tmp, 'cache');
    const [closedPort] = await freePorts(1);
    // a kubeconfig that breaks on the line after the token (its parse error must not quote the file)
    const broken = path.join(tmp, 'broken.kubeconfig');
    fs.writeFileSync(broken, fs.readFileSync(kubeconfig, 'utf8').replace(`token: ${cp.adminToken}\n`, `token: ${cp.adminToken}\n   oops: [\n`));
    assert.ok(fs.readFileSync(broken, 'utf8').includes(cp.adminToken));
    const upArgs = ['up', '--no-app', '--yes', '--istio-mirror', server.url];
    const once = (m: string) => MODES.filter((x) => x.name === m);

    const phases: Run[][] = [
      [
        { name: 'status on a fresh cluster', args: ['status'], code: 0 },
        { name: 'plan', args: ['plan'], code: 0 },
        { name: 'plan with a registry (nothing listens there)', args: ['plan', '--registry', `127.0.0.1:${closedPort}/micro-service`], code: 0 },
        { name: 'up --dry-run', args: ['up', '--dry-run', '--no-app', '--yes', '--istio-mirror', server.url], code: 0 },
        { name: 'istioctl before download', args: ['istioctl', '--print-path'], code: 2 },
        { name: 'down --dry-run, nothing recorded', args: ['down', '--dry-run'], code: 0 },
      ],
      // the real up, once: download, istioctl install, label, addons, dashboards
      [{ name: 'up (real)', args: upArgs, code: 0, modes: once('json+verbose') }],
      [
        { name: 'up again (all done)', args: upArgs, code: 0, modes: MODES.filter((m) => m.name !== 'json+verbose') },
        { name: 'status', args: ['status'], code: 0 },
        { name: 'plan after up', args: ['plan', '--no-app'], code: 0 },
        { name: 'expose', args: ['expose', 'kiali'], code: 0 },
        { name: 'verify (nothing answers at the gateway)', args: ['verify', '--count', '1'], code: 6 },
        { name: 'verify --url (closed port)', args: ['verify', '--url', `http://127.0.0.1:${closedPort}/api/order/create`, '--count', '1'], code: 6 },
        { name: 'istioctl --print-path', args: ['istioctl', '--print-path'], code: 0 },
        { name: 'istioctl -- version', args: ['istioctl', '--', 'version', '--remote=false'], code: 0 },
        { name: 'down --dry-run', args: ['down', '--dry-run'], code: 0 },
        // failing variants
        { name: 'expose: node port outside the range', args: ['expose', 'grafana', '--node-port', '8080'], code: 2 },
        { name: 'up as the viewer (missing permissions)', args: ['--context', 'viewer', ...upArgs], code: 3 },
        { name: 'status with a rejected token', args: ['--context', 'rejected', 'status'], code: 3 },
        { name: 'status with basic auth', args: ['--context', 'basic', 'status'], code: 3 },
        // this API server trusts no client CA: the certificate is not used, the request is anonymous and refused
        { name: 'status with a client certificate', args: ['--context', 'cert', 'status'], code: 3 },
        { name: 'up with a client certificate', args: ['--context', 'cert', ...upArgs], code: 3 },
        { name: 'status with an unknown context', args: ['--context', 'nope', 'status'], code: 2 },
        { name: 'status with a broken kubeconfig', args: ['--kubeconfig', broken, 'status'], code: 2 },
        { name: 'up, download through the (dead) proxy', args: [...upArgs, '--cache-dir', path.join(tmp, 'cache-proxied')], env: { NO_PROXY: undefined }, code: 5, modes: VERBOSE_MODES },
        { name: 'up, unreachable mirror', args: [...upArgs, '--cache-dir', path.join(tmp, 'cache-unreachable'), '--istio-mirror', `http://127.0.0.1:${closedPort}/releases`], code: 5, modes: VERBOSE_MODES },
        { name: 'up --reinstall, istioctl fails (its output is shown)', args: [...upArgs, '--reinstall'], env: { STANDIN_FAIL: '1' }, code: 6, modes: VERBOSE_MODES },
      ],
    ];

    const leaks: string[] = [];
    const wrong: string[] = [];
    let runs = 0;
    for (const phase of phases) {
      const queue = phase.flatMap((run) => (run.modes ?? MODES).map((mode) => ({ run, mode })));
      await Promise.all(
        Array.from({ length: 3 }, async () => {
          for (let job = queue.shift(); job; job = queue.shift()) {
            const { run, mode } = job;
            const args = ['--kubeconfig', kubeconfig, '--cache-dir', cache, ...mode.flags, ...run.args];
            const r: CliResult = await runMeshdemo(args, { env: { KUBECONFIG: undefined, ...env, ...run.env }, timeoutMs: 180_000 });
            runs++;
            const label = `${run.name} [${mode.name}] (exit ${r.code})`;
            for (const [what, value] of Object.entries(secrets)) {
              for (const [stream, text] of [['stdout', r.stdout], ['stderr', r.stderr]] as const) {
                if (text.includes(value)) leaks.push(`${label}: ${what} on ${stream}: ${text.split('\n').find((l) => l.includes(value))}`);
              }
            }
            if (r.code !== run.code) wrong.push(`${label}: wanted exit ${run.code}\n${r.stderr}`);
            if (mode.flags.includes('--json') && r.code !== 0 && !['istioctl'].includes(run.args[0])) {
              try {
                if (r.events().at(-1)?.type !== 'result' && errorLines(r.stderr).length) wrong.push(`${label}: no result event`);
              } catch {
                wrong.push(`${label}: stdout is not NDJSON`);
              }
            }
          }
        }),
      );
    }
    assert.deepEqual(leaks, [], leaks.join('\n'));
    assert.deepEqual(wrong, [], wrong.join('\n'));
    assert.ok(runs >= 80, `${runs} runs`);
  });

  it('a secret that would be printed is masked (the masking itself works)', async () => {
    // the registry password as part of a mirror URL: the download error names the URL, masked
    const r = await runMeshdemo(
      ['--kubeconfig', kubeconfig, '--cache-dir', path.join(tmp, 'cache-masked'), 'up', '--no-app', '--yes', '--istio-mirror', `http://127.0.0.1:1/${env.MESHDEMO_REGISTRY_PASSWORD}`],
      { env: { ...env, KUBECONFIG: undefined } },
    );
    assert.equal(r.code, 5, r.stderr);
    const [line] = errorLines(r.stderr);
    assert.match(line, /download of http:\/\/127\.0\.0\.1:1\/\*\*\*\/1\.8\.4\//);
    assert.ok(!r.stderr.includes(env.MESHDEMO_REGISTRY_PASSWORD));

    // a kubeconfig token inside the server URL: the "cannot reach" line names the server, masked
    const doc = yaml.load(fs.readFileSync(kubeconfig, 'utf8')) as any;
    doc.clusters.push({ name: 'leaky', cluster: { server: `https://127.0.0.1:1/${kubeSecrets.badToken}` } });
    doc.contexts.push({ name: 'leaky', context: { cluster: 'leaky', user: 'rejected' } });
    const leaky = path.join(tmp, 'leaky.kubeconfig');
    fs.writeFileSync(leaky, yaml.dump(doc), { mode: 0o600 });
    for (const flags of [[], ['--json', '--verbose']]) {
      const k = await runMeshdemo(['--kubeconfig', leaky, '--context', 'leaky', ...flags, 'status'], { env: { KUBECONFIG: undefined } });
      assert.equal(k.code, 3, k.stderr);
      assert.match(errorLines(k.stderr)[0], /cannot reach the API server at https:\/\/127\.0\.0\.1:1\/\*\*\* \(ECONNREFUSED\)/);
      assert.ok(!k.stdout.includes(kubeSecrets.badToken) && !k.stderr.includes(kubeSecrets.badToken));
    }
  });
});
