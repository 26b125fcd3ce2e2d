// Input that the option parsers must refuse (exit 2, UsageError) before anything is written or started.
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { UsageError } from '../../src/core/errors.js';
import { decimalPort, parseDuration, parseNodeAddress, parseTimeout } from '../../src/core/options.js';
import { parseClusterName } from '../../src/kind/pins.js';
import { parseGatewayNodePort, parseIstioVersion, parseNodePort, parseRegistry, parseUpSettings } from '../../src/settings.js';

const refused = (fn: () => unknown, message: RegExp) =>
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof UsageError, `a UsageError, not ${e}`);
    assert.match(e.message, message);
    assert.ok(e.hint, 'with the fix');
    return true;
  });

describe('--timeout', () => {
  it('has a maximum of 24h, so that no kill timer overflows (Node fires a timer above 2^31-1 ms after 1 ms)', () => {
    assert.equal(parseTimeout('24h'), 86_400_000);
    refused(() => parseTimeout('300h'), /^--timeout "300h" is too long: at most 24h$/);
    refused(() => parseTimeout('24h1s'), /too long/);
    refused(() => parseTimeout('99999999999999999999999'), /too long/);
  });
  it('no duration may exceed what a timer holds', () => {
    refused(() => parseDuration('600h', '--duration'), /^--duration "600h" is too long/);
    assert.equal(parseDuration('48h', '--since'), 172_800_000);
  });
});

describe('ports are decimal integers', () => {
  it('refuses what Number() would accept', () => {
    for (const bad of ['0x7a69', '1e4', ' 31009', '31009 ', '31009.0', '+31009', '031009', '0', '65536', '']) {
      assert.equal(decimalPort(bad), undefined, JSON.stringify(bad));
      refused(() => parseNodePort(bad, '--node-port kiali'), /is not a port number/);
    }
    assert.equal(parseNodePort('31009'), 31009);
    assert.equal(parseNodePort('65535'), 65535);
  });
});

describe('--gateway-node-port', () => {
  it('is in the NodePort range and is none of the gateway\'s other pinned ports', () => {
    assert.equal(parseGatewayNodePort('31081'), 31081);
    refused(() => parseGatewayNodePort('80'), /^--gateway-node-port 80 is outside the NodePort range 30000-32767$/);
    refused(() => parseGatewayNodePort('32768'), /outside the NodePort range/);
    for (const [port, name] of [['31021', 'status-port'], ['31443', 'https'], ['31400', 'tcp'], ['31543', 'tls']]) {
      refused(() => parseGatewayNodePort(port), new RegExp(`^--gateway-node-port ${port} is already the ingress gateway's ${name} node port$`));
    }
  });
  it("may not be a dashboard's port (up's settings)", () => {
    refused(() => parseUpSettings({ gatewayNodePort: '31001' }), /node port 31001 is both the kiali dashboard's and the ingress gateway's http2 port/);
    refused(() => parseUpSettings({ gatewayNodePort: '31090', nodePort: ['grafana=31090'] }), /node port 31090 is both the grafana dashboard's/);
  });
});

describe('--cluster-name', () => {
  it("follows kind's rule and Docker's for the node container it names after it", () => {
    for (const good of ['meshdemo', 'mesh-1', '1.mesh', 'a..b']) assert.equal(parseClusterName(good), good);
    for (const bad of ['-rf', '..', '.', '.hidden', 'Mesh', 'a/b', 'a_b', '', 'x'.repeat(50)]) refused(() => parseClusterName(bad), /is not a valid kind cluster name/);
  });
  it('is checked while the settings are read, before any step runs', () => {
    refused(() => parseUpSettings({ clusterName: '-rf', local: true }), /--cluster-name "-rf"/);
  });
});

describe('--registry, --istio-version, --node-address', () => {
  it('a registry port is at most 65535', () => {
    assert.equal(parseRegistry('127.0.0.1:65535/x'), '127.0.0.1:65535/x');
    refused(() => parseRegistry('127.0.0.1:99999/x'), /names port 99999, which is not a port number/);
    refused(() => parseRegistry('registry.local:0/x'), /names port 0/);
  });
  it('the Istio version is 1.8.<n> without leading zeros', () => {
    assert.equal(parseIstioVersion('1.8.0'), '1.8.0');
    assert.equal(parseIstioVersion('1.8.14'), '1.8.14');
    for (const bad of ['1.8.04', '1.8.00', '01.8.4', '1.08.4', '1.8.4 ', '1.9.0']) refused(() => parseIstioVersion(bad), /is not supported/);
  });
  it('a node address is an IP address or a hostname; IPv6 goes into URLs in brackets', () => {
    assert.equal(parseNodeAddress('127.0.0.1'), '127.0.0.1');
    assert.equal(parseNodeAddress('node-1.example.com'), 'node-1.example.com');
    assert.equal(parseNodeAddress('::1'), '[::1]');
    assert.equal(parseNodeAddress('[fd00::2]'), '[fd00::2]');
    for (const bad of ['10.0.0.256', 'node_1', 'http://node1', 'node1:80', '-node', 'a..b', '', ' node1', '[node1]']) {
      refused(() => parseNodeAddress(bad), /is neither an IP address nor a hostname/);
    }
    refused(() => parseUpSettings({ nodeAddress: 'node_1' }), /--node-address "node_1"/);
  });
});
