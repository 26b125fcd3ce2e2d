// The download's own HTTP/1.1 GET (src/download/raw-get.ts) against real node:http and node:https servers on
// loopback: the three ways a body is framed, a redirect, TLS verification, a refused response, a dropped connection.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { rawGet } from '../../src/download/raw-get.js';

const execFileAsync = promisify(execFile);
const DATA = randomBytes(3 * (1 << 20) + 12345);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function handler(req: http.IncomingMessage, res: http.ServerResponse): void {
  if (req.url === '/length') {
    res.writeHead(200, { 'content-length': DATA.length });
    res.end(DATA);
  } else if (req.url === '/chunked') {
    res.writeHead(200); // node:http frames a body of unknown length with chunked transfer coding
    for (let o = 0; o < DATA.length; o += 70_001) res.write(DATA.subarray(o, o + 70_001));
    res.end();
  } else if (req.url === '/close') {
    res.useChunkedEncodingByDefault = false;
    res.shouldKeepAlive = false;
    res.writeHead(200, { connection: 'close' }); // neither length nor chunks: the body ends with the connection
    res.end(DATA);
  } else if (req.url === '/drop') {
    res.writeHead(200, { 'content-length': DATA.length });
    res.write(DATA.subarray(0, 100_000), () => res.socket?.destroy());
  } else if (req.url === '/range') {
    res.writeHead(206, { 'content-range': `bytes 5-9/${DATA.length}`, 'content-length': 5, 'x-seen-range': String(req.headers.range) });
    res.end(DATA.subarray(5, 10));
  } else {
    res.writeHead(302, { location: '/length' });
    res.end();
  }
}

async function readAll(url: string, headers?: Record<string, string>): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  const res = await rawGet(new URL(url), { headers, idleTimeoutMs: 5000, onIdle: () => new Error('idle') });
  const chunks: Buffer[] = [];
  for await (const block of res.body) {
    chunks.push(Buffer.from(block)); // a copy: the block goes back to the pool
    res.recycle(block);
  }
  return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
}

describe('rawGet: one HTTP/1.1 GET over a socket, body in pooled blocks', () => {
  let server: http.Server;
  let base: string;
  before(async () => {
    server = http.createServer(handler);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  for (const framing of ['length', 'chunked', 'close']) {
    it(`reads a ${framing}-framed body whole and intact`, async () => {
      const r = await readAll(`${base}/${framing}`);
      assert.equal(r.status, 200);
      const framed = r.headers['transfer-encoding'] === 'chunked' ? 'chunked' : r.headers['content-length'] !== undefined ? 'length' : 'close';
      assert.equal(framed, framing, JSON.stringify(r.headers));
      assert.equal(r.body.length, DATA.length);
      assert.equal(sha(r.body), sha(DATA));
    });
  }

  it('sends the caller\'s headers (Range) and returns a redirect as it is, for the caller to follow', async () => {
    const ranged = await readAll(`${base}/range`, { range: 'bytes=5-' });
    assert.equal(ranged.status, 206);
    assert.equal(ranged.headers['x-seen-range'], 'bytes=5-');
    assert.deepEqual(ranged.body, DATA.subarray(5, 10));
    const res = await rawGet(new URL(`${base}/elsewhere`), { idleTimeoutMs: 5000, onIdle: () => new Error('idle') });
    assert.equal(res.statusCode, 302);
    assert.equal(res.headers.location, '/length');
    res.close();
  });

  it('a connection dropped mid-body hands on every byte received, then fails as a reset', async () => {
    const res = await rawGet(new URL(`${base}/drop`), { idleTimeoutMs: 5000, onIdle: () => new Error('idle') });
    let received = 0;
    const err = await (async () => {
      for await (const block of res.body) received += block.length;
    })().then(
      () => assert.fail('the body should fail'),
      (e: NodeJS.ErrnoException) => e,
    );
    assert.equal(err.code, 'ECONNRESET');
    assert.equal(received, 100_000, 'a resume can start right after the last byte received');
  });

  it('https: verifies the server against the trusted CAs (refused without, read with)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-raw-get-'));
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', path.join(dir, 'key.pem'), '-out', path.join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost'], { stdio: 'ignore' });
      const cert = fs.readFileSync(path.join(dir, 'cert.pem'));
      const tlsServer = https.createServer({ key: fs.readFileSync(path.join(dir, 'key.pem')), cert }, handler);
      await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
      try {
        const url = `https://localhost:${(tlsServer.address() as AddressInfo).port}/chunked`;
        await assert.rejects(readAll(url), /self.signed/i);
        // trusted as a user trusts a private CA: NODE_EXTRA_CA_CERTS, in a process of its own; the host name is checked too
        const script = `import { rawGet } from ${JSON.stringify(new URL('../../src/download/raw-get.js', import.meta.url).href)};
          const { createHash } = await import('node:crypto');
          const res = await rawGet(new URL(process.argv[1]), { idleTimeoutMs: 5000, onIdle: () => new Error('idle') });
          const h = createHash('sha256');
          for await (const b of res.body) { h.update(b); res.recycle(b); }
          process.stdout.write(h.digest('hex'));`;
        const { stdout } = await execFileAsync(process.execPath, ['--input-type=module', '-e', script, url], { env: { ...process.env, NODE_EXTRA_CA_CERTS: path.join(dir, 'cert.pem') } });
        assert.equal(stdout, sha(DATA));
      } finally {
        await new Promise<void>((r) => tlsServer.close(() => r()));
      }
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
