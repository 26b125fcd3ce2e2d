/**
 * A real HTTP server on 127.0.0.1 that serves release assets the way GitHub does (302 to the file
 * host, Range support, a `.sha256` beside every asset) and can misbehave on demand.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { posix } from 'node:path';

export interface Modes {
  /** `/releases/download/<name>` answers 302 to `/files/<name>` (otherwise it serves the file). */
  redirect: boolean;
  /** Destroy the socket after this many body bytes of a response. */
  dropAfterBytes?: number;
  /** With dropAfterBytes: drop only the first response, then serve normally. */
  dropOnce: boolean;
  ignoreRange: boolean;
  /** `.sha256` files carry a wrong digest. */
  wrongChecksum: boolean;
  /** The next N requests answer 500. */
  status500Times: number;
  /** Send this many body bytes, then keep the connection open without sending more. */
  stallAfterBytes?: number;
}

export interface RecordedRequest {
  method: string;
  path: string;
  range?: string;
}

export interface ReleaseServer {
  url: string;
  requests: RecordedRequest[];
  setMode(m: Partial<Modes>): void;
  close(): Promise<void>;
}

const CHUNK = 16 * 1024;

export async function startReleaseServer(files: Record<string, Buffer | string>): Promise<ReleaseServer> {
  const assets = new Map<string, Buffer>();
  for (const [name, src] of Object.entries(files)) {
    const data = typeof src === 'string' ? readFileSync(src) : src;
    const hex = createHash('sha256').update(data).digest('hex');
    assets.set(name, data);
    if (!(`${name}.sha256` in files)) assets.set(`${name}.sha256`, Buffer.from(`${hex} ${posix.basename(name)}\n`) /* release-builder pkg/util/files.go CreateSha: "%x %s\n" */);
  }
  const modes: Modes = { redirect: false, dropOnce: false, ignoreRange: false, wrongChecksum: false, status500Times: 0 };
  const requests: RecordedRequest[] = [];
  let dropped = false;

  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url ?? '/', 'http://x').pathname);
    const range = req.headers.range;
    requests.push({ method: req.method ?? 'GET', path, ...(range === undefined ? {} : { range }) });

    if (modes.status500Times > 0) {
      modes.status500Times--;
      return void res.writeHead(500, { 'content-type': 'text/plain' }).end('boom\n');
    }
    let name = path.slice(1);
    if (name.startsWith('releases/download/')) {
      name = name.slice('releases/download/'.length);
      if (modes.redirect && assets.has(name)) {
        return void res.writeHead(302, { location: `/files/${name}`, 'content-length': 0 }).end();
      }
    } else if (name.startsWith('files/')) {
      name = name.slice('files/'.length);
    }
    let data = assets.get(name);
    if (!data) return void res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
    if (modes.wrongChecksum && name.endsWith('.sha256')) data = Buffer.from(`${'0'.repeat(64)} ${posix.basename(name, '.sha256')}\n`);
    serve(req, res, data, range);
  });

  function serve(req: IncomingMessage, res: ServerResponse, data: Buffer, range: string | undefined): void {
    let start = 0;
    let end = data.length - 1;
    let status = 200;
    const headers: Record<string, string | number> = { 'content-type': 'application/octet-stream', 'accept-ranges': 'bytes' };
    const m = range && !modes.ignoreRange ? /^bytes=(\d+)-(\d*)$/.exec(range) : null;
    if (m) {
      start = Number(m[1]);
      if (m[2]) end = Math.min(end, Number(m[2]));
      if (start >= data.length || start > end) {
        return void res.writeHead(416, { 'content-range': `bytes */${data.length}`, 'content-length': 0 }).end();
      }
      status = 206;
      headers['content-range'] = `bytes ${start}-${end}/${data.length}`;
    }
    const body = data.subarray(start, end + 1);
    headers['content-length'] = body.length;
    res.writeHead(status, headers);
    if (req.method === 'HEAD') return void res.end();

    let limit = body.length;
    let after: 'end' | 'drop' | 'stall' = 'end';
    if (modes.dropAfterBytes !== undefined && !(modes.dropOnce && dropped) && modes.dropAfterBytes < limit) {
      limit = modes.dropAfterBytes;
      after = 'drop';
      dropped = true;
    } else if (modes.stallAfterBytes !== undefined && modes.stallAfterBytes < limit) {
      limit = modes.stallAfterBytes;
      after = 'stall';
    }
    void writeBody(res, body.subarray(0, limit)).then(() => {
      if (after === 'end') res.end();
      else if (after === 'drop') res.socket?.destroy();
      // 'stall': leave the response open; close() tears the socket down.
    });
  }

  const sockets = new Set<Socket>();
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  return {
    url: `http://127.0.0.1:${port}`,
    requests,
    setMode(m) {
      Object.assign(modes, m);
      if (m.dropAfterBytes !== undefined || m.dropOnce !== undefined) dropped = false;
    },
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve, reject) => server.close((err) => (err ? reject(err) : resolve())));
    },
  };
}

/** Write in chunks, honouring backpressure, so drop/stall happen at a precise byte count. */
async function writeBody(res: ServerResponse, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length && !res.destroyed; off += CHUNK) {
    const chunk = data.subarray(off, off + CHUNK);
    // The callback fires once the chunk is handed to the kernel, so a following destroy does not eat it.
    await new Promise<void>((resolve) => res.write(chunk, () => resolve()));
  }
}
