// Bad input across all commands, table-driven, against a REAL Kubernetes 1.20.2 API server (no controller
// manager, no node: nothing here may get as far as needing one). Every case must give exit 2 (3 where the README
// documents it), exactly one `error: ` line that names the problem — and the fix after ` — ` where there is one —
// no stack trace, and leave the cluster as it was.
import { before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import type { ControlPlane } from '../support/control-plane.js';
import { withDemoCluster } from '../support/demo-cluster.js';
import { errorLines, runMeshdemo, type CliResult } from '../support/cli.js';
import { snapshotCluster } from '../support/snapshot.js';
import { skipUnless } from '../support/requirements.js';

const skip = skipUnless('control-plane');

interface Case {
  name: string;
  /** Arguments after the default `--kubeconfig <cp> --cache-dir <tmp>` (unless `bare`). */
  args: string[];
  env?: Record<string, string>;
  /** No default --kubeconfig/--cache-dir. */
  bare?: boolean;
  code?: 2 | 3;
  /** What the one error line must say. */
  says: RegExp;
  /** The line carries a fix after " — " (default true). */
  fix?: boolean;
}

const STACK = /^\s+at .*(:\d+:\d+\)?|\(node:.*\))$/m;

describe('bad input: one line, the right exit code, no change', { skip }, () => {
  const demo = withDemoCluster({ name: 'badinput', controlPlane: { controllerManager: false } });
  const { api } = demo;
  let cp: ControlPlane;
  let tmp: string;

  before(async () => {
    ({ cp, tmp } = demo);
    // A grafana Service as the addon would leave it, and a NodePort Service already holding 31777.
    assert.equal((await api('/api/v1/namespaces', 'POST', { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'istio-system' } })).status, 201);
    const svc = (name: string, ns: string, spec: object) =>
      api(`/api/v1/namespaces/${ns}/services`, 'POST', { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec });
    assert.equal((await svc('grafana', 'istio-system', { selector: { app: 'grafana' }, ports: [{ name: 'service', port: 3000, targetPort: 3000 }] })).status, 201);
    assert.equal((await svc('port-holder', 'default', { type: 'NodePort', selector: { app: 'x' }, ports: [{ port: 80, nodePort: 31777 }] })).status, 201);
  });

  it('at least 20 cases across all commands', async () => {
    const file = (name: string, text: string) => {
      const p = path.join(tmp, name);
      fs.writeFileSync(p, text);
      return p;
    };
    const kcDir = path.join(tmp, 'kubeconfig.d');
    fs.mkdirSync(kcDir);
    const invalidYaml = file('invalid.kubeconfig', 'apiVersion: v1\nclusters:\n  - name: x\n     cluster: {server: https://127.0.0.1:1\n');
    const kc = yaml.load(fs.readFileSync(cp.kubeconfigPath, 'utf8')) as any;
    kc.contexts.push({ name: 'orphan', context: { cluster: 'no-such-cluster', user: 'admin' } });
    const orphan = file('orphan.kubeconfig', yaml.dump(kc));
    const noCurrent = file('no-current.kubeconfig', yaml.dump({ ...kc, 'current-context': '' }));

    const cases: Case[] = [
      // --- global options (every command)
      { name: 'unknown --context', args: ['--context', 'nope', 'status'], says: /context "nope" is not in the kubeconfig — choose one of: admin, viewer$/ },
      { name: 'kubeconfig is a directory', bare: true, args: ['--kubeconfig', kcDir, 'status'], says: /kubeconfig .*kubeconfig\.d \(from --kubeconfig\) is a directory, not a file — pass the path of the kubeconfig file itself/ },
      { name: 'KUBECONFIG is a directory', bare: true, args: ['plan'], env: { KUBECONFIG: kcDir }, says: /kubeconfig .*kubeconfig\.d \(from KUBECONFIG\) is a directory/ },
      { name: 'kubeconfig with invalid YAML', bare: true, args: ['--kubeconfig', invalidYaml, 'status'], says: /kubeconfig .*invalid\.kubeconfig is not valid: .* — fix the file or pass another --kubeconfig/ },
      { name: 'missing kubeconfig file', bare: true, args: ['--kubeconfig', path.join(tmp, 'nope.kubeconfig'), 'up', '--yes'], says: /no kubeconfig found at .*nope\.kubeconfig \(from --kubeconfig\) — pass --kubeconfig/ },
      { name: 'context without a cluster', bare: true, args: ['--kubeconfig', orphan, '--context', 'orphan', 'status'], says: /context "orphan" names cluster "no-such-cluster", which has no server — /},
      { name: 'kubeconfig without a current context', bare: true, args: ['--kubeconfig', noCurrent, 'status'], says: /the kubeconfig has no current context — pass --context/ },
      { name: 'bad --timeout', args: ['--timeout', '10x', 'up', '--yes'], says: /--timeout "10x" is not a duration — use a value such as 90s/ },
      { name: 'zero --timeout', args: ['--timeout', '0s', 'status'], says: /--timeout must be greater than zero — / },
      { name: 'zero --timeout, a bare number', args: ['--timeout', '0', 'up', '--yes', '--no-app'], says: /--timeout must be greater than zero — use a value such as 10m$/ },
      { name: 'zero MESHDEMO_TIMEOUT', args: ['down', '--yes'], env: { MESHDEMO_TIMEOUT: '0' }, says: /--timeout must be greater than zero — / },
      { name: 'bad MESHDEMO_TIMEOUT', args: ['down', '--dry-run'], env: { MESHDEMO_TIMEOUT: 'soon' }, says: /--timeout "soon" is not a duration — / },
      { name: '--timeout above 24h', args: ['--timeout', '300h', 'up', '--yes', '--no-app'], says: /--timeout "300h" is too long: at most 24h — use a value such as 10m, at most 24h$/ },
      { name: '--timeout beyond any timer', args: ['--timeout', '99999999999999999999999', 'up', '--yes', '--no-app'], says: /--timeout "99999999999999999999999" is too long: at most 24h — / },
      { name: 'MESHDEMO_TIMEOUT above 24h', args: ['down', '--yes'], env: { MESHDEMO_TIMEOUT: '25h' }, says: /--timeout "25h" is too long: at most 24h — / },
      { name: 'bad --namespace', args: ['-n', 'Bad_NS', 'up', '--yes'], says: /--namespace "Bad_NS" is not a valid namespace name — use lower-case letters/ },
      { name: 'reserved --namespace', args: ['-n', 'istio-system', 'expose', 'kiali'], says: /--namespace istio-system is reserved for the control plane — / },
      // --- up / plan
      { name: 'unsupported --istio-version', args: ['up', '--yes', '--istio-version', '1.9.0'], says: /--istio-version 1\.9\.0 is not supported — meshdemo installs Istio 1\.8\.x/ },
      { name: '--istio-version with a leading zero', args: ['up', '--yes', '--istio-version', '1.8.04'], says: /--istio-version 1\.8\.04 is not supported — .*1\.8\.<patch> without leading zeros/ },
      { name: 'unsupported --istio-version (istioctl)', args: ['istioctl', '--istio-version', '2.0', '--print-path'], says: /--istio-version 2\.0 is not supported — / },
      { name: 'bad --istio-sha256', args: ['up', '--yes', '--istio-sha256', 'abc123'], says: /--istio-sha256 "abc123" is not 64 hex digits — / },
      { name: '--istio-mirror not a URL', args: ['plan', '--istio-mirror', 'not a url'], says: /--istio-mirror "not a url" is not a URL — use e\.g\. https:/ },
      { name: '--istio-mirror not http(s)', args: ['up', '--yes', '--istio-mirror', 'ftp://mirror.example/istio'], says: /--istio-mirror must be an http\(s\) URL, not ftp: — / },
      { name: 'missing --istio-archive', args: ['up', '--yes', '--istio-archive', path.join(tmp, 'istio-1.8.4-linux-amd64.tar.gz')], says: /--istio-archive .*istio-1\.8\.4-linux-amd64\.tar\.gz does not exist — / },
      { name: 'unknown addon', args: ['up', '--yes', '--addons', 'prometheus,nagios'], says: /--addons: unknown addon "nagios" — choose from prometheus, grafana/ },
      { name: 'jaeger and zipkin together', args: ['plan', '--addons', 'jaeger,zipkin'], says: /--addons: jaeger and zipkin both define .* — choose one of them/ },
      { name: 'empty --addons', args: ['up', '--yes', '--addons', ','], says: /--addons is empty — / },
      { name: 'unknown dashboard in --node-port', args: ['up', '--yes', '--node-port', 'nagios=31001'], says: /unknown dashboard "nagios" — choose one of kiali, grafana/ },
      { name: '--node-port not NAME=PORT', args: ['up', '--yes', '--node-port', '31001'], says: /--node-port "31001" is not NAME=PORT — e\.g\. --node-port kiali=31001/ },
      { name: '--node-port out of range', args: ['up', '--yes', '--node-port', 'kiali=99999'], says: /--node-port kiali "99999" is not a port number — / },
      { name: 'one node port for two dashboards', args: ['up', '--yes', '--node-port', 'kiali=31001,grafana=31001'], says: /--node-port gives 31001 to both kiali and grafana — give each dashboard its own port/ },
      { name: '--node-port in hex', args: ['up', '--yes', '--node-port', 'kiali=0x7a69'], says: /--node-port kiali "0x7a69" is not a port number — write it in decimal digits/ },
      { name: '--gateway-node-port in hex', args: ['up', '--yes', '--gateway-node-port', '0x7a69'], says: /--gateway-node-port "0x7a69" is not a port number — write it in decimal digits/ },
      { name: '--gateway-node-port in exponent form', args: ['plan', '--gateway-node-port', '1e4'], says: /--gateway-node-port "1e4" is not a port number — / },
      { name: '--gateway-node-port with a leading space', args: ['up', '--yes', '--gateway-node-port', ' 31009'], says: /--gateway-node-port " 31009" is not a port number — / },
      { name: 'MESHDEMO_GATEWAY_NODE_PORT in hex', args: ['up', '--yes'], env: { MESHDEMO_GATEWAY_NODE_PORT: '0x7a69' }, says: /--gateway-node-port "0x7a69" is not a port number — / },
      { name: '--gateway-node-port outside the NodePort range', args: ['up', '--yes', '--gateway-node-port', '80'], says: /--gateway-node-port 80 is outside the NodePort range 30000-32767 — choose a port in that range/ },
      { name: "--gateway-node-port on the gateway's https port", args: ['up', '--yes', '--gateway-node-port', '31443'], says: /--gateway-node-port 31443 is already the ingress gateway's https node port — choose another port, not one of 31021, 31443, 31400, 31543/ },
      { name: "--gateway-node-port on the gateway's tcp port", args: ['plan', '--gateway-node-port', '31400'], says: /--gateway-node-port 31400 is already the ingress gateway's tcp node port — / },
      { name: "--gateway-node-port on the gateway's status port", args: ['up', '--yes', '--gateway-node-port', '31021'], says: /--gateway-node-port 31021 is already the ingress gateway's status-port node port — / },
      { name: "--gateway-node-port on a dashboard's port", args: ['up', '--yes', '--gateway-node-port', '31002'], says: /node port 31002 is both the grafana dashboard's and the ingress gateway's http2 port — choose another --gateway-node-port/ },
      { name: '--cluster-name starting with "-"', args: ['up', '--yes', '--cluster-name=-rf'], says: /--cluster-name "-rf" is not a valid kind cluster name — start with a lower-case letter or digit/ },
      { name: '--cluster-name ..', args: ['up', '--yes', '--local', '--cluster-name', '..'], says: /--cluster-name "\.\." is not a valid kind cluster name — / },
      { name: 'down --cluster-name ..', args: ['down', '--yes', '--cluster-name', '..'], says: /--cluster-name "\.\." is not a valid kind cluster name — / },
      { name: '--node-address neither IP nor hostname', args: ['up', '--yes', '--node-address', 'node_1:80'], says: /--node-address "node_1:80" is neither an IP address nor a hostname — / },
      { name: '--node-address a malformed IPv4 address', args: ['expose', 'kiali', '--node-address', '10.0.0.256'], says: /--node-address "10\.0\.0\.256" is neither an IP address nor a hostname — / },
      { name: 'status --node-address with a scheme', args: ['status', '--node-address', 'http://node1'], says: /--node-address "http:\/\/node1" is neither an IP address nor a hostname — / },
      { name: 'malformed --image', args: ['up', '--yes', '--skip-build', '--image', 'micro-api=Registry.Example/API:1'], says: /--image "micro-api=Registry\.Example\/API:1" is not SERVICE=IMAGE — SERVICE is one of micro-api/ },
      { name: '--image for an unknown service', args: ['up', '--yes', '--image', 'micro-cart=registry.example/cart:1'], says: /--image "micro-cart=registry\.example\/cart:1" is not SERVICE=IMAGE — / },
      { name: '--skip-build without --image', args: ['up', '--yes', '--skip-build'], says: /--skip-build needs an --image for micro-api, micro-order, micro-pay — pass --image/ },
      { name: '--registry with a scheme', args: ['up', '--yes', '--registry', 'https://127.0.0.1:5000/micro-service'], says: /--registry "https:\/\/127\.0\.0\.1:5000\/micro-service" is not a registry reference — use host\[:port\]\[\/path\] without a scheme/ },
      { name: 'malformed --registry', args: ['plan', '--registry', 'Bad Host:5000/x'], says: /--registry "Bad Host:5000\/x" is not a registry reference — / },
      { name: '--registry port above 65535', args: ['up', '--yes', '--registry', '127.0.0.1:99999/x'], says: /--registry "127\.0\.0\.1:99999\/x" names port 99999, which is not a port number — use a port from 1 to 65535/ },
      { name: '--no-app with --registry', args: ['up', '--yes', '--no-app', '--registry', '127.0.0.1:5000/micro-service'], says: /--no-app conflicts with --registry, --image and --skip-build — drop --no-app/ },
      { name: '--istio-set without =', args: ['up', '--yes', '--istio-set', 'values.global.proxy.privileged'], says: /--istio-set "values\.global\.proxy\.privileged" is not key=value — / },
      { name: 'confirmation needed without a terminal', args: ['up', '--no-app'], says: /confirmation needs an answer, but there is no terminal to ask on — pass --yes/ },
      { name: 'an identity that lacks permissions (exit 3)', args: ['--context', 'viewer', 'up', '--yes', '--no-app'], code: 3, says: /context "viewer" lacks \d+ permission\(s\) that up needs: create namespaces .* — ask a cluster admin/ },
      // --- expose
      { name: 'unknown dashboard', args: ['expose', 'nagios'], says: /unknown dashboard "nagios" — choose one of kiali, grafana, prometheus, tracing, zipkin, or all/ },
      { name: 'expose without a dashboard', args: ['expose'], says: /error: missing required argument 'dashboard' — run with --help for usage/ },
      { name: 'expose --node-port not a port', args: ['expose', 'grafana', '--node-port', '70000'], says: /--node-port "70000" is not a port number — / },
      { name: 'expose --node-port outside the NodePort range', args: ['expose', 'grafana', '--node-port', '8080'], says: /node port 8080 for grafana is outside the cluster's NodePort range 30000-32767 — choose a port in that range/ },
      { name: 'expose --node-port taken', args: ['expose', 'grafana', '--node-port', '31777'], says: /node port 31777 for grafana is already used by Service default\/port-holder — choose another port/ },
      { name: 'expose all --node-port', args: ['expose', 'all', '--node-port', '31000'], says: /--node-port names one port, but "all" exposes several dashboards — expose them one by one/ },
      { name: 'expose --port-forward --node-port', args: ['expose', 'kiali', '--port-forward', '--node-port', '31000'], says: /--port-forward and --node-port exclude each other — / },
      { name: 'expose all --port-forward', args: ['expose', 'all', '--port-forward'], says: /--port-forward forwards one dashboard — name it/ },
      { name: 'expose --local-port without --port-forward', args: ['expose', 'kiali', '--local-port', '9000'], says: /--local-port goes with --port-forward — add --port-forward/ },
      { name: 'expose a dashboard that is not installed', args: ['expose', 'kiali'], says: /the kiali dashboard is not installed \(no Service istio-system\/kiali\) — run meshdemo up first/ },
      // --- verify, istioctl
      { name: 'verify --count 0', args: ['verify', '--count', '0'], says: /--count "0" is not a number from 1 to 1000 — / },
      { name: 'verify --url not http', args: ['verify', '--url', 'ftp://127.0.0.1/order'], says: /--url "ftp:\/\/127\.0\.0\.1\/order" is not an http\(s\) URL — / },
      { name: 'istioctl before download', args: ['istioctl', '--', 'version'], says: /istioctl 1\.8\.4 is not in the cache \(.*\) — run meshdemo up \(or meshdemo up --no-app\) first/ },
      { name: 'istioctl --print-path before download', args: ['istioctl', '--print-path'], says: /istioctl 1\.8\.4 is not in the cache/ },
      // --- commander: unknown command / option, missing value, extra argument
      { name: 'unknown command', args: ['stauts'], says: /error: unknown command 'stauts' — did you mean status\? run with --help for usage/ },
      { name: 'unknown option', args: ['up', '--frobnicate'], says: /error: unknown option '--frobnicate' — run with --help for usage/ },
      { name: 'option without its value', args: ['up', '--yes', '--timeout'], says: /error: option '--timeout <duration>' argument missing — run with --help/ },
      { name: 'too many arguments', args: ['status', 'everything'], says: /error: too many arguments for 'status'.* — run with --help for usage/ },
      { name: 'down: unknown option', args: ['down', '--purge'], says: /error: unknown option '--purge' — / },
    ];
    assert.ok(cases.length >= 20);

    const before = await snapshotCluster(cp);
    const cache = path.join(tmp, 'cache');
    const results: Array<{ c: Case; r: CliResult }> = [];
    const queue = [...cases];
    await Promise.all(
      Array.from({ length: 3 }, async () => {
        for (let c = queue.shift(); c; c = queue.shift()) {
          const args = c.bare ? c.args : ['--kubeconfig', cp.kubeconfigPath, '--cache-dir', cache, ...c.args];
          results.push({ c, r: await runMeshdemo(args, { env: { KUBECONFIG: undefined, ...c.env }, timeoutMs: 60_000 }) });
        }
      }),
    );

    const failures: string[] = [];
    for (const { c, r } of results) {
      const problems: string[] = [];
      const lines = errorLines(r.stderr);
      if (r.code !== (c.code ?? 2)) problems.push(`exit ${r.code}, wanted ${c.code ?? 2}`);
      if (lines.length !== 1) problems.push(`${lines.length} error lines`);
      else {
        if (!c.says.test(lines[0])) problems.push(`line does not match ${c.says}`);
        if ((c.fix ?? true) && !/ — \S/.test(lines[0])) problems.push('no fix after " — "');
      }
      if (STACK.test(r.stderr) || STACK.test(r.stdout)) problems.push('stack trace');
      if (errorLines(r.stdout).length) problems.push('error line on stdout');
      if (problems.length) failures.push(`${c.name} (${c.args.join(' ')}): ${problems.join('; ')}\n    stderr: ${r.stderr.trim().split('\n').join('\n            ')}`);
    }
    assert.deepEqual(failures, [], failures.join('\n'));

    assert.deepEqual(await snapshotCluster(cp), before, 'the cluster is unchanged');
    assert.equal((await api('/apis/coordination.k8s.io/v1/namespaces/default/leases/meshdemo-lock')).status, 404, 'no lock left behind');
    assert.ok(!fs.existsSync(path.join(cache, 'istio')), 'nothing downloaded');
  });

  it('with --json a bad input still ends with a result event carrying exit code 2 and the one line', async () => {
    const r = await runMeshdemo(['--kubeconfig', cp.kubeconfigPath, '--json', 'up', '--yes', '--addons', 'nagios']);
    assert.equal(r.code, 2, r.stderr);
    const events = r.events();
    assert.equal(events.length, 1);
    assert.deepEqual({ ...events[0], details: undefined }, {
      type: 'result',
      ok: false,
      exitCode: 2,
      error: '--addons: unknown addon "nagios" — choose from prometheus, grafana, jaeger, kiali, zipkin, prometheus-operator',
      details: undefined,
    });
    assert.deepEqual(errorLines(r.stderr), [`error: ${events[0].error}`]);
  });
});
