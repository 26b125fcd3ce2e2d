// The download's own HTTP/1.1 GET (src/download/raw-get.ts) against real node:http and node:https servers on
// loopback: the three ways a body is framed, a redirect, TLS verification, a dropped connection, a consumer that
// asks to wait or refuses, malformed responses, an idle server.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, execFileSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import net, { type AddressInfo } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
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
  } else if (req.url === '/stall') {
    res.writeHead(200, { 'content-length': DATA.length });
    res.write(DATA.subarray(0, 1000));
  } else if (req.url === '/range') {
    res.writeHead(206, { 'content-range': `bytes 5-9/${DATA.length}`, 'content-length': 5, 'x-seen-range': String(req.headers.range) });
    res.end(DATA.subarray(5, 10));
  } else {
    res.writeHead(302, { location: '/length' });
    res.end();
  }
}

const IDLE = { idleTimeoutMs: 5000, onIdle: () => new Error('idle') };

async function readAll(url: string, headers?: Record<string, string>): Promise<{ status: number; headers: Record<string, string>; body: Buffer }> {
  const res = await rawGet(new URL(url), { headers, ...IDLE });
  const chunks: Buffer[] = [];
  const failure = await res.receive((piece) => {
    chunks.push(Buffer.from(piece)); // a copy: the piece is a view of the reused read buffer
    return undefined;
  });
  if (failure !== undefined) throw failure;
  return { status: res.statusCode, headers: res.headers, body: Buffer.concat(chunks) };
}

/** A server that answers every connection with `raw` as it is, then closes. */
async function rawServer(raw: string | Buffer): Promise<{ url: string; close: () => Promise<void> }> {
  const server = net.createServer((socket) => {
    socket.once('data', () => socket.end(raw));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/x`, close: () => new Promise<void>((r) => server.close(() => r())) };
}

describe('rawGet: one HTTP/1.1 GET over a socket, the body as views of one reused buffer', () => {
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
    const res = await rawGet(new URL(`${base}/elsewhere`), IDLE);
    assert.equal(res.statusCode, 302);
    assert.equal(res.headers.location, '/length');
    await res.discard();
  });

  it('a connection dropped mid-body hands on every byte received, then fails as a reset', async () => {
    const res = await rawGet(new URL(`${base}/drop`), IDLE);
    let received = 0;
    const err = (await res.receive((piece) => {
      received += piece.length;
      return undefined;
    })) as NodeJS.ErrnoException;
    assert.equal(err?.code, 'ECONNRESET');
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
          const failure = await res.receive((piece) => { h.update(piece); return undefined; });
          if (failure) throw failure;
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

  it('a consumer that asks to wait gets nothing more until its promise settles, and then the rest, intact', async () => {
    for (const framing of ['length', 'chunked']) {
      const res = await rawGet(new URL(`${base}/${framing}`), IDLE);
      const hash = createHash('sha256');
      let busy = false;
      let waits = 0;
      const failure = await res.receive((piece) => {
        assert.equal(busy, false, 'a piece arrived while the consumer was still waiting');
        hash.update(piece);
        if (++waits % 3 !== 0) return undefined;
        busy = true;
        return sleep(5).then(() => void (busy = false));
      });
      assert.equal(failure, undefined);
      assert.equal(hash.digest('hex'), sha(DATA), framing);
      assert.ok(waits >= 3, `${framing}: ${waits} pieces`);
    }
  });

  it('what the consumer throws is thrown, and the connection goes; stop() ends the body early without error', async () => {
    const res = await rawGet(new URL(`${base}/length`), IDLE);
    await assert.rejects(res.receive(() => {
      throw new Error('too large');
    }), /too large/);
    const again = await rawGet(new URL(`${base}/chunked`), IDLE);
    let pieces = 0;
    assert.equal(await again.receive(() => void pieces++, () => pieces === 2), undefined);
    assert.equal(pieces, 2);
  });

  it('refuses malformed responses: no HTTP status line, a bad chunk size, a bad Content-Length, an unknown transfer coding, an endless head', async () => {
    const cases: Array<[string | Buffer, RegExp]> = [
      ['SSH-2.0-OpenSSH_9.2\r\n\r\n', /malformed HTTP response: "SSH-2.0-OpenSSH_9.2"/],
      ['HTTP/1.1 200 OK\r\nContent-Len', /socket hang up/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n', /malformed chunked response: chunk size "zz"/],
      ['HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\n', /malformed Content-Length/],
      ['HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n', /unsupported Transfer-Encoding: gzip/],
      [Buffer.concat([Buffer.from('HTTP/1.1 200 OK\r\n'), Buffer.alloc(70 << 10, 'a')]), /response head larger than 65536 bytes/],
    ];
    for (const [raw, expected] of cases) {
      const server = await rawServer(raw);
      try {
        const outcome = await rawGet(new URL(server.url), IDLE).then(
          (res) => res.receive(() => undefined),
          (err: Error) => err,
        );
        assert.match(String((outcome as Error)?.message), expected);
      } finally {
        await server.close();
      }
    }
  });

  it('skips an interim response (103 Early Hints) before the real one, as node:http does', async () => {
    const server = await rawServer('HTTP/1.1 103 Early Hints\r\nLink: </style.css>; rel=preload\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello');
    try {
      const r = await readAll(server.url);
      assert.equal(r.status, 200);
      assert.equal(r.body.toString(), 'hello');
    } finally {
      await server.close();
    }
  });

  it('a body cut short of its Content-Length is a reset, not the end', async () => {
    const server = await rawServer('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly forty bytes of the hundred promised.');
    try {
      const res = await rawGet(new URL(server.url), IDLE);
      let received = '';
      const failure = (await res.receive((piece) => void (received += piece.toString()))) as NodeJS.ErrnoException;
      assert.equal(failure?.code, 'ECONNRESET');
      assert.equal(received, 'only forty bytes of the hundred promised.');
    } finally {
      await server.close();
    }
  });

  it('a server that stops sending fails with the idle error', async () => {
    const res = await rawGet(new URL(`${base}/stall`), { idleTimeoutMs: 300, onIdle: () => new Error('idle for 300 ms') });
    let received = 0;
    const failure = (await res.receive((piece) => void (received += piece.length))) as Error;
    assert.match(String(failure?.message), /idle for 300 ms/);
    assert.equal(received, 1000);
  });
});
