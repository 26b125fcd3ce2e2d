import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { lstat, mkdtemp, readdir, readFile, rm, stat, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, afterEach, before, beforeEach, describe, it } from 'node:test';
import { spawnSync } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { Agent } from 'undici';
import { connect, createServer as createNetServer, type AddressInfo } from 'node:net';
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

  describe('bounds and trust from the review of issue 21', () => {
    /** A loopback server whose handler gets each request; closed with all its connections after the test. */
    const servers: Server[] = [];
    const serve = async (handler: (req: IncomingMessage, res: ServerResponse) => void, tls?: { key: string; cert: string }): Promise<string> => {
      const srv = tls ? createHttpsServer(tls, handler) : createServer(handler);
      servers.push(srv);
      await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
      return `${tls ? 'https' : 'http'}://127.0.0.1:${(srv.address() as AddressInfo).port}`;
    };
    const cleanups: (() => Promise<unknown>)[] = [];
    afterEach(async () => {
      for (const cleanup of cleanups.splice(0)) await cleanup();
      for (const srv of servers.splice(0)) {
        srv.closeAllConnections();
        await new Promise((r) => srv.close(r));
      }
    });
    /** Sends 64 KiB chunks without Content-Length (chunked) until the client goes away. */
    const endless = (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' });
      const chunk = Buffer.alloc(64 * 1024, 0x61);
      const more = () => {
        while (!res.destroyed && res.write(chunk));
        if (!res.destroyed) res.once('drain', more);
      };
      more();
    };

    it('refuses an endless body without Content-Length at maxBytes, keeping nothing', { timeout: 60_000 }, async () => {
      const url = await serve(endless);
      const err = await downloadVerified(opts({ url, maxBytes: 4 * 1024 ** 2, expectedSha256: undefined })).then(() => assert.fail('should refuse'), (e: unknown) => e);
      assert.ok(err instanceof DownloadError && err.exitCode === 5, String(err));
      assert.match(err.message, /is larger than the limit of 4194304 bytes for this file \(the server sent more\)/);
      assert.deepEqual(await readdir(dir), [], 'no .part, no file, no lock');
    });

    it('refuses a Content-Length above maxBytes before reading the body', async () => {
      server.requests.length = 0;
      const err = await downloadVerified(opts({ maxBytes: data.length - 1 })).then(() => assert.fail('should refuse'), (e: unknown) => e);
      assert.match(String((err as Error).message), new RegExp(`the server announces ${data.length}\\)`));
      assert.equal(server.requests.length, 1, 'not retried');
      assert.deepEqual(await readdir(dir), []);
    });

    it('fetchText refuses a checksum file larger than 64 KiB (an endless one too)', { timeout: 60_000 }, async () => {
      const url = await serve(endless);
      await assert.rejects(fetchText(url), /is larger than the limit of 65536 bytes for this file \(the server sent more\)/);
      const big = await serve((_req, res) => res.writeHead(200, { 'content-length': 70_000 }).end(Buffer.alloc(70_000)));
      await assert.rejects(fetchText(big), /\(the server announces 70000\)/);
    });

    it('an abort during a body delimited by the end of the connection is an interruption: the .part stays for a resume', async () => {
      let sent = 0;
      // no Content-Length, no chunked encoding: the body ends when the server closes the connection (RFC 9112 6.3)
      const raw = createNetServer((socket) => {
        socket.on('error', () => {});
        socket.once('data', () => socket.write(Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\nconnection: close\r\n\r\n'), data.subarray(0, 100 * 1024)]), () => (sent = 100 * 1024)));
      });
      await new Promise<void>((r) => raw.listen(0, '127.0.0.1', r));
      cleanups.push(() => new Promise((r) => raw.close(r)));
      const url = `http://127.0.0.1:${(raw.address() as AddressInfo).port}/istio.tar.gz`;
      const ac = new AbortController();
      // Ctrl-C once all that was sent is in the .part
      const part = join(dir, 'istio.tar.gz.part');
      const poll = setInterval(() => existsSync(part) && statSync(part).size === 100 * 1024 && ac.abort(), 10);
      const err = await downloadVerified(opts({ url, expectedSha256: undefined, signal: ac.signal })).finally(() => clearInterval(poll)).then(
        (r) => r,
        (e: unknown) => e,
      );
      assert.ok(err instanceof InterruptedError, `an interruption, not ${String(err)}`);
      assert.equal(sent, 100 * 1024);
      assert.equal(existsSync(join(dir, 'istio.tar.gz')), false, 'not taken for the whole file');
      assert.equal((await stat(join(dir, 'istio.tar.gz.part'))).size, 100 * 1024);
    });

    it('a server closing a chunked body early is a dropped connection (retried), not the whole file', async () => {
      let calls = 0;
      const url = await serve((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream' });
        if (++calls === 1) res.write(data.subarray(0, 1000), () => res.socket?.destroy());
        else res.end(data);
      });
      const res = await downloadVerified(opts({ url }));
      assert.equal(res.sha256, digest);
      assert.equal(calls, 2);
    });

    it('two downloads of one file into one cache: one .part, one transfer, both verified', async () => {
      let transfers = 0;
      const url = await serve(async (_req, res) => {
        transfers++;
        res.writeHead(200, { 'content-length': data.length });
        for (let off = 0; off < data.length; off += 16 * 1024) {
          res.write(data.subarray(off, off + 16 * 1024));
          await new Promise((r) => setTimeout(r, 10));
        }
        res.end();
      });
      const waited: Array<[string, number]> = [];
      // which of the two takes the lock first is up to the thread pool (both create their directories first)
      const [a, b] = await Promise.all(
        (['a', 'b'] as const).map((who) => downloadVerified(opts({ url, onLockWait: (pid) => waited.push([who, pid]) }))),
      );
      assert.equal(a.sha256, digest);
      assert.equal(b.sha256, digest);
      assert.deepEqual([a.fromCache, b.fromCache].sort(), [false, true], 'one transfers; the other waits for it, then finds the file');
      assert.deepEqual(waited, [[a.fromCache ? 'a' : 'b', process.pid]], 'the one that found the file waited for the holder, once');
      assert.equal(transfers, 1);
      assert.deepEqual(await readFile(join(dir, 'istio.tar.gz')), data);
      assert.deepEqual(await readdir(dir), ['istio.tar.gz']);
    });

    it('never writes through a symbolic link planted as the .part', async () => {
      const victim = join(dir, 'victim');
      await writeFile(victim, data.subarray(0, 1000));
      await symlink(victim, join(dir, 'istio.tar.gz.part'));
      const res = await downloadVerified(opts());
      assert.equal(res.sha256, digest);
      assert.deepEqual(await readFile(victim), data.subarray(0, 1000), 'the link target is untouched');
      assert.ok((await lstat(join(dir, 'istio.tar.gz'))).isFile(), 'the download is a file of its own');
      assert.equal((await lstat(join(dir, 'istio.tar.gz'))).mode & 0o777, 0o644);
    });

    it('refuses a redirect from https to plain http', async () => {
      const certDir = await mkdtemp(join(tmpdir(), 'meshdemo-tls-'));
      try {
        const gen = spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1', '-keyout', join(certDir, 'key.pem'), '-out', join(certDir, 'cert.pem')], { encoding: 'utf8' });
        assert.equal(gen.status, 0, gen.stderr);
        const tls = { key: await readFile(join(certDir, 'key.pem'), 'utf8'), cert: await readFile(join(certDir, 'cert.pem'), 'utf8') };
        const plainRequests: string[] = [];
        const plain = await serve((req, res) => {
          plainRequests.push(req.url ?? '');
          res.writeHead(200, { 'content-length': data.length }).end(data);
        });
        const secure = await serve((_req, res) => res.writeHead(302, { location: `${plain}/istio.tar.gz`, 'content-length': 0 }).end(), tls);
        const dispatcher = new Agent({ connect: { ca: tls.cert } });
        try {
          const err = await downloadVerified(opts({ url: `${secure}/istio.tar.gz`, dispatcher })).then(() => assert.fail('should refuse'), (e: unknown) => e);
          assert.ok(err instanceof DownloadError && err.exitCode === 5, String(err));
          assert.match(err.message, /refusing a redirect from https to http:\/\/127\.0\.0\.1:\d+\/istio\.tar\.gz/);
          assert.deepEqual(plainRequests, [], 'nothing was requested over plain http');
          await assert.rejects(fetchText(`${secure}/istio.tar.gz.sha256`, { dispatcher }), /refusing a redirect from https to http/);
          assert.deepEqual(plainRequests, []);
        } finally {
          await dispatcher.close();
        }
      } finally {
        await rm(certDir, { recursive: true, force: true });
      }
    });
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
