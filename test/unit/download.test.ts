import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readdir, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { createServer } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { DownloadError, InterruptedError } from '../../src/core/errors.js';
import { downloadVerified, fetchText, parseSha256File, sha256File, type DownloadOptions } from '../../src/download/download.js';
import { proxyFor } from '../../src/download/http-get.js';
import { startReleaseServer, type ReleaseServer } from '../support/release-server.js';
import { rawTarGz } from '../support/raw-tar.js';

const ASSET = '1.8.4/istio-1.8.4-linux-amd64.tar.gz';
const TGZ = 'tree.tar.gz';
const EVIL = 'evil.tar.gz';
// 200 files of 4 kB random bytes: a gzip that cannot shrink, so a drop at 100 kB is mid-archive
const tgz = rawTarGz(Array.from({ length: 200 }, (_, i) => ({ path: `pkg/f${i}`, body: randomBytes(4096) })));
const tgzDigest = createHash('sha256').update(tgz).digest('hex');
const evil = rawTarGz([{ path: 'pkg/ok', body: randomBytes(200_000) }, { path: '../evil', body: 'x' }]);
const data = randomBytes(300 * 1024);
const digest = createHash('sha256').update(data).digest('hex');

describe('downloadVerified', () => {
  let server: ReleaseServer;
  let dir: string;
  // No proxy from the environment may capture loopback traffic: the proxy tests set their own.
  const PROXY_VARS = ['HTTP_PROXY', 'http_proxy', 'HTTPS_PROXY', 'https_proxy', 'NO_PROXY', 'no_proxy'];
  const savedEnv = Object.fromEntries(PROXY_VARS.map((k) => [k, process.env[k]]));
  const clearProxyEnv = () => {
    for (const k of PROXY_VARS) delete process.env[k];
  };

  before(async () => {
    clearProxyEnv();
    server = await startReleaseServer({ [ASSET]: data, 'small.txt': Buffer.from('hello\n'), [TGZ]: tgz, [EVIL]: evil });
  });
  after(async () => {
    await server.close();
    for (const [k, v] of Object.entries(savedEnv)) if (v !== undefined) process.env[k] = v;
  });
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'meshdemo-dl-'));
    server.requests.length = 0;
    server.setMode({ redirect: false, dropAfterBytes: undefined, dropOnce: false, ignoreRange: false, wrongChecksum: false, status500Times: 0, stallAfterBytes: undefined });
  });
  afterEach(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  const opts = (o: Partial<DownloadOptions> = {}): DownloadOptions => ({
    url: `${server.url}/${ASSET}`,
    dest: join(dir, 'istio.tar.gz'),
    expectedSha256: digest,
    maxBytes: 64 * 1024 ** 2,
    retryBaseDelayMs: 10,
    ...o,
  });

  it('downloads, verifies and renames into place', async () => {
    const progress: number[] = [];
    const res = await downloadVerified(opts({ expectedSha256: digest.toUpperCase(), onProgress: (p) => progress.push(p.received) }));
    assert.deepEqual(res, { path: join(dir, 'istio.tar.gz'), sha256: digest, bytes: data.length, resumed: false, fromCache: false });
    assert.deepEqual(await readFile(res.path), data);
    assert.equal(existsSync(`${res.path}.part`), false);
    assert.equal(progress.at(-1), data.length);
  });

  it('answers from the cache without a request', async () => {
    await writeFile(join(dir, 'istio.tar.gz'), data);
    const res = await downloadVerified(opts());
    assert.equal(res.fromCache, true);
    assert.equal(res.sha256, digest);
    const noChecksum = await downloadVerified(opts({ expectedSha256: undefined }));
    assert.equal(noChecksum.fromCache, true);
    assert.equal(server.requests.length, 0);
  });

  it('replaces a cached file whose checksum does not match', async () => {
    await writeFile(join(dir, 'istio.tar.gz'), 'stale');
    const res = await downloadVerified(opts());
    assert.equal(res.fromCache, false);
    assert.equal(await sha256File(res.path), digest);
  });

  it('follows a redirect', async () => {
    server.setMode({ redirect: true });
    const res = await downloadVerified(opts({ url: `${server.url}/releases/download/${ASSET}` }));
    assert.equal(res.sha256, digest);
    assert.deepEqual(server.requests.map((r) => r.path), [`/releases/download/${ASSET}`, `/files/${ASSET}`]);
  });

  it('resumes with a Range request after the connection drops mid-body', async () => {
    server.setMode({ dropAfterBytes: 100 * 1024, dropOnce: true });
    const retries: string[] = [];
    const res = await downloadVerified(opts({ onRetry: (i) => retries.push(i.reason) }));
    assert.equal(res.sha256, digest);
    assert.equal(res.resumed, true);
    assert.equal(retries.length, 1);
    assert.equal(server.requests.length, 2);
    assert.match(server.requests[1].range ?? '', /^bytes=\d+-$/);
    assert.ok(Number(/\d+/.exec(server.requests[1].range!)![0]) > 0);
    assert.deepEqual(await readFile(res.path), data);
  });

  it('resumes after a redirect too', async () => {
    server.setMode({ redirect: true, dropAfterBytes: 50 * 1024, dropOnce: true });
    const res = await downloadVerified(opts({ url: `${server.url}/releases/download/${ASSET}` }));
    assert.equal(res.sha256, digest);
    assert.ok(server.requests.some((r) => r.path.startsWith('/files/') && r.range !== undefined));
  });

  it('restarts from zero when the server ignores Range', async () => {
    server.setMode({ dropAfterBytes: 100 * 1024, dropOnce: true, ignoreRange: true });
    const res = await downloadVerified(opts());
    assert.equal(res.sha256, digest);
    assert.equal(res.resumed, false);
    assert.equal(res.bytes, data.length);
    assert.ok(server.requests[1].range);
  });

  it('restarts from zero on 416', async () => {
    await writeFile(join(dir, 'istio.tar.gz.part'), Buffer.concat([data, Buffer.from('extra')]));
    const res = await downloadVerified(opts());
    assert.equal(res.sha256, digest);
    assert.deepEqual(server.requests.map((r) => r.range), [`bytes=${data.length + 5}-`, undefined]);
  });

  it('retries on 500 and then succeeds', async () => {
    server.setMode({ status500Times: 2 });
    const retries: Array<{ attempt: number; reason: string; delayMs: number }> = [];
    const res = await downloadVerified(opts({ onRetry: (i) => retries.push(i) }));
    assert.equal(res.sha256, digest);
    assert.deepEqual(retries, [
      { attempt: 1, reason: 'HTTP 500', delayMs: 10 },
      { attempt: 2, reason: 'HTTP 500', delayMs: 20 },
    ]);
  });

  it('fails at once on 404', async () => {
    let retried = false;
    const started = Date.now();
    const err = await downloadVerified(opts({ url: `${server.url}/nope.tar.gz`, retryBaseDelayMs: 5000, onRetry: () => (retried = true) })).then(
      () => assert.fail('should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof DownloadError);
    assert.equal(err.exitCode, 5);
    assert.match(err.message, /\/nope\.tar\.gz answered HTTP 404/);
    assert.equal(retried, false);
    assert.equal(server.requests.length, 1);
    assert.ok(Date.now() - started < 2000);
  });

  it('rejects a wrong checksum and leaves nothing behind', async () => {
    server.setMode({ wrongChecksum: true });
    const url = `${server.url}/${ASSET}`;
    const expected = parseSha256File(await fetchText(`${url}.sha256`), ASSET);
    const err = await downloadVerified(opts({ expectedSha256: expected })).then(
      () => assert.fail('should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof DownloadError);
    assert.equal(err.exitCode, 5);
    assert.ok(err.message.includes(url), err.message);
    assert.ok(err.message.includes(digest) && err.message.includes(expected), err.message);
    assert.equal(existsSync(join(dir, 'istio.tar.gz')), false);
    assert.equal(existsSync(join(dir, 'istio.tar.gz.part')), false);
  });

  it('retries a stalled body and then fails within the idle timeout budget', async () => {
    server.setMode({ stallAfterBytes: 1000 });
    const retries: string[] = [];
    const started = Date.now();
    const err = await downloadVerified(opts({ idleTimeoutMs: 200, retries: 1, onRetry: (i) => retries.push(i.reason) })).then(
      () => assert.fail('should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof DownloadError, String(err));
    assert.equal(err.exitCode, 5);
    assert.match(err.message, /after 2 attempts: stalled: no data for 200 ms/);
    assert.equal(retries.length, 1);
    // Each retry continued from the bytes already on disk.
    assert.deepEqual(server.requests.map((r) => r.range), [undefined, 'bytes=1000-']);
    // undici's body timer ticks at ~0.5 s resolution, hence the generous bound.
    assert.ok(Date.now() - started < 4000, `took ${Date.now() - started} ms`);
  });

  it('stops on abort with InterruptedError and keeps the .part', async () => {
    server.setMode({ stallAfterBytes: 1000 });
    const ac = new AbortController();
    const pending = downloadVerified(opts({ signal: ac.signal, onProgress: () => setTimeout(() => ac.abort(), 100) }));
    const err = await pending.then(
      () => assert.fail('should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof InterruptedError, String(err));
    assert.equal(err.exitCode, 130);
    assert.ok(existsSync(join(dir, 'istio.tar.gz.part')));
    assert.equal(existsSync(join(dir, 'istio.tar.gz')), false);

    // A later run resumes from what was kept.
    server.setMode({ stallAfterBytes: undefined });
    server.requests.length = 0;
    assert.equal((await stat(join(dir, 'istio.tar.gz.part'))).size, 1000);
    const res = await downloadVerified(opts());
    assert.equal(res.sha256, digest);
    assert.equal(res.resumed, true);
    assert.deepEqual(server.requests.map((r) => r.range), ['bytes=1000-']);
  });

  it('fails with DownloadError after retries when the connection is refused', async () => {
    const closed = await startReleaseServer({});
    const url = `${closed.url}/x`;
    await closed.close();
    const err = await downloadVerified(opts({ url, retries: 1 })).then(
      () => assert.fail('should fail'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof DownloadError);
    assert.match(err.message, /after 2 attempts: .*ECONNREFUSED/);
  });

  describe('with extractTo: one pass from the socket to the tree', () => {
    const tree = () => join(dir, 'tree');
    const xopts = (o: Partial<DownloadOptions> = {}) => opts({ url: `${server.url}/${TGZ}`, expectedSha256: tgzDigest, extractTo: { dir: tree() }, ...o });
    const checkTree = async () => {
      for (const i of [0, 99, 199]) assert.equal((await readFile(join(tree(), 'pkg', `f${i}`))).length, 4096);
      assert.deepEqual((await readdir(dir)).sort(), ['istio.tar.gz', 'tree', 'tree.manifest.json']);
    };

    it('unpacks while downloading, and keeps the archive', async () => {
      const res = await downloadVerified(xopts());
      assert.equal(res.entries, 200);
      assert.equal(res.sha256, tgzDigest);
      assert.deepEqual(await readFile(join(dir, 'istio.tar.gz')), tgz);
      await checkTree();
    });

    it('continues the same pass after the connection drops (Range)', async () => {
      server.setMode({ dropAfterBytes: 100 * 1024, dropOnce: true });
      const res = await downloadVerified(xopts());
      assert.equal(res.resumed, true);
      assert.deepEqual(server.requests.map((r) => r.range), [undefined, `bytes=${100 * 1024}-`]);
      await checkTree();
    });

    it('restarts the pass when the server ignores Range', async () => {
      server.setMode({ dropAfterBytes: 100 * 1024, dropOnce: true, ignoreRange: true });
      const res = await downloadVerified(xopts());
      assert.equal(res.resumed, false);
      await checkTree();
    });

    it('a later run resumes an interrupted one: the kept .part is replayed from disk, the rest fetched', async () => {
      server.setMode({ stallAfterBytes: 100 * 1024 });
      const ac = new AbortController();
      const pending = downloadVerified(xopts({ signal: ac.signal, onProgress: () => setTimeout(() => ac.abort(), 100) }));
      await assert.rejects(pending, InterruptedError);
      assert.deepEqual(await readdir(dir), ['istio.tar.gz.part'], 'no tree, no temporary tree');
      server.setMode({ stallAfterBytes: undefined });
      server.requests.length = 0;
      const res = await downloadVerified(xopts());
      assert.equal(res.resumed, true);
      assert.deepEqual(server.requests.map((r) => r.range), [`bytes=${100 * 1024}-`]);
      await checkTree();
    });

    it('a wrong checksum leaves nothing: no tree, no archive, no .part', async () => {
      await assert.rejects(downloadVerified(xopts({ expectedSha256: 'e'.repeat(64) })), (e: unknown) => e instanceof DownloadError && e.exitCode === 5);
      assert.deepEqual(await readdir(dir), []);
    });

    it('a malicious archive is refused mid-stream and leaves nothing', async () => {
      const err = await downloadVerified(xopts({ url: `${server.url}/${EVIL}`, expectedSha256: undefined })).then(() => assert.fail('should refuse'), (e: unknown) => e);
      assert.ok(err instanceof DownloadError && err.exitCode === 5, String(err));
      assert.match(err.message, /"\.\.\/evil" contains a '\.\.'/);
      assert.deepEqual(await readdir(dir), []);
    });

    it('a cached archive is unpacked without a request', async () => {
      await writeFile(join(dir, 'istio.tar.gz'), tgz);
      const res = await downloadVerified(xopts());
      assert.equal(res.fromCache, true);
      assert.equal(server.requests.length, 0);
      await checkTree();
    });
  });

  it('goes through HTTP_PROXY (undici\'s EnvHttpProxyAgent, a CONNECT tunnel) unless NO_PROXY names the host', async () => {
    // a tunnelling proxy on loopback that records what it connects to
    const tunnels: string[] = [];
    const proxy = createServer((_req, res) => res.writeHead(405).end());
    proxy.on('connect', (req, socket, head) => {
      tunnels.push(req.url ?? '');
      const [host, port] = (req.url ?? '').split(':');
      const upstream = connect(Number(port), host, () => {
        socket.write('HTTP/1.1 200 Connection Established\r\n\r\n');
        upstream.write(head);
        upstream.pipe(socket);
        socket.pipe(upstream);
      });
      upstream.on('error', () => socket.destroy());
      socket.on('error', () => upstream.destroy());
    });
    await new Promise<void>((r) => proxy.listen(0, '127.0.0.1', r));
    const serverHost = new URL(server.url).host;
    try {
      process.env.HTTP_PROXY = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      server.setMode({ redirect: true });
      const res = await downloadVerified(opts({ url: `${server.url}/releases/download/${ASSET}` }));
      assert.equal(res.sha256, digest);
      assert.ok(tunnels.length >= 1 && tunnels.every((t) => t === serverHost), String(tunnels));
      assert.deepEqual(server.requests.map((r) => r.path), [`/releases/download/${ASSET}`, `/files/${ASSET}`], 'the redirect is followed through the proxy');

      const before = tunnels.length;
      process.env.NO_PROXY = 'example.org,127.0.0.1';
      await rm(res.path);
      assert.equal((await downloadVerified(opts())).sha256, digest);
      assert.equal(tunnels.length, before, 'NO_PROXY host: direct');
    } finally {
      clearProxyEnv();
      proxy.closeAllConnections();
      await new Promise((r) => proxy.close(r));
    }
  });

  it('fetchText retries 5xx and returns the body', async () => {
    server.setMode({ status500Times: 1 });
    assert.equal(await fetchText(`${server.url}/small.txt`, { retryBaseDelayMs: 5 }), 'hello\n');
  });
});

describe('proxyFor', () => {
  const u = (x: string) => new URL(x);
  it('picks the variable by scheme and honours NO_PROXY like curl', () => {
    assert.equal(proxyFor(u('https://github.com/x'), { HTTPS_PROXY: 'http://p:3128' }), 'http://p:3128');
    assert.equal(proxyFor(u('https://github.com/x'), { https_proxy: 'http://lower:1', HTTPS_PROXY: 'http://upper:1' }), 'http://lower:1');
    assert.equal(proxyFor(u('http://mirror.local/x'), { HTTPS_PROXY: 'http://p:3128' }), undefined);
    assert.equal(proxyFor(u('http://mirror.local/x'), { HTTP_PROXY: 'http://p:3128' }), 'http://p:3128');
    assert.equal(proxyFor(u('https://github.com/x'), { HTTPS_PROXY: 'http://p', NO_PROXY: 'localhost, .github.com' }), undefined);
    assert.equal(proxyFor(u('https://objects.github.com/x'), { HTTPS_PROXY: 'http://p', NO_PROXY: 'github.com' }), undefined);
    assert.equal(proxyFor(u('https://notgithub.com/x'), { HTTPS_PROXY: 'http://p', NO_PROXY: 'github.com' }), 'http://p');
    assert.equal(proxyFor(u('https://github.com/x'), { HTTPS_PROXY: 'http://p', no_proxy: '*' }), undefined);
    assert.equal(proxyFor(u('https://github.com:8443/x'), { HTTPS_PROXY: 'http://p', NO_PROXY: 'github.com:443' }), 'http://p');
  });
});

describe('parseSha256File', () => {
  const h = 'a'.repeat(64);
  it('reads "<hex>  <name>" and "<hex> *<name>"', () => {
    assert.equal(parseSha256File(`${h}  istio.tar.gz\n`, 'istio.tar.gz'), h);
    assert.equal(parseSha256File(`${h} *istio.tar.gz`, 'istio.tar.gz'), h);
    assert.equal(parseSha256File(`${h.toUpperCase()} istio.tar.gz\r\n`), h);
  });
  it('accepts a bare digest', () => {
    assert.equal(parseSha256File(`${h}\n`, 'anything.tar.gz'), h);
  });
  it('picks the asset from a multi-line file, by basename', () => {
    const b = 'b'.repeat(64);
    const text = `${h}  istio-1.8.4-osx.tar.gz\n${b}  ./istio-1.8.4-linux-amd64.tar.gz\n`;
    assert.equal(parseSha256File(text, '1.8.4/istio-1.8.4-linux-amd64.tar.gz'), b);
    assert.throws(() => parseSha256File(text), DownloadError);
    assert.throws(() => parseSha256File(text, 'other.tar.gz'), /no entry for other\.tar\.gz/);
  });
  it('throws DownloadError when malformed', () => {
    for (const bad of ['', '\n', 'abc  file', `${h.slice(1)}  file`, `${h}x  file`, '<html>Not Found</html>']) {
      assert.throws(() => parseSha256File(bad), (e: unknown) => e instanceof DownloadError && e.exitCode === 5, JSON.stringify(bad));
    }
  });
});
