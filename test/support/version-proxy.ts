// A tiny HTTPS reverse proxy on 127.0.0.1 in front of a test control plane that reports another
// Kubernetes version on GET /version (everything else, upgrades included, is forwarded unchanged). A client
// certificate signed by the control plane's client CA is verified here and its user passed on as the API server's
// front proxy (--requestheader-*): so a kubeconfig with a client-certificate user authenticates as it would directly.
import { spawn } from 'node:child_process';
import * as fsp from 'node:fs/promises';
import type * as http from 'node:http';
import * as https from 'node:https';
import type * as net from 'node:net';
import * as path from 'node:path';
import * as tls from 'node:tls';
import type { ControlPlane } from './control-plane.js';

export interface VersionProxy {
  /** https://127.0.0.1:<port> */
  server: string;
  /** The proxy's self-signed certificate (the kubeconfig trusts it as CA). */
  caFile: string;
  /** Kubeconfig like the control plane's (contexts "admin" current, "viewer"), pointing at the proxy. */
  kubeconfigPath: string;
  close(): Promise<void>;
}

function openssl(args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`openssl ${args[0]} failed: ${err.trim()}`))));
  });
}

export interface VersionProxyOptions {
  /**
   * Called as each request arrives; the request is forwarded at once, but the answer is passed back only once the
   * promise returned settles (a request held this way can model an API server that answers late, or not at all).
   */
  holdAnswer?: (req: { method: string; path: string }) => Promise<void> | undefined;
}

export async function startVersionProxy(target: ControlPlane, gitVersion: string, opts: VersionProxyOptions = {}): Promise<VersionProxy> {
  const m = /^v?(\d+)\.(\d+)(?:\.(\d+))?/.exec(gitVersion);
  if (!m) throw new Error(`not a Kubernetes version: ${gitVersion}`);
  const major = m[1];
  const minor = m[2];
  const gv = gitVersion.startsWith('v') ? gitVersion : `v${gitVersion}`;

  const dir = await fsp.mkdtemp(path.join(target.dir, 'version-proxy-'));
  const keyFile = path.join(dir, 'proxy.key');
  const certFile = path.join(dir, 'proxy.crt');
  await openssl([
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', keyFile, '-out', certFile, '-days', '2',
    '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
  ]);
  const [key, cert, targetCa] = await Promise.all([fsp.readFile(keyFile), fsp.readFile(certFile), fsp.readFile(target.caFile)]);
  const fp = target.clientCerts.frontProxy;
  const [clientCa, fpCert, fpKey] = await Promise.all([fsp.readFile(target.clientCerts.caFile), fsp.readFile(fp.certFile), fsp.readFile(fp.keyFile)]);
  const upstream = new URL(target.server);
  const agent = new https.Agent({ keepAlive: true, ca: targetCa });
  // a request that came with a client certificate goes on as the front proxy, naming that certificate's user
  const asFrontProxy = new https.Agent({ keepAlive: true, ca: targetCa, cert: fpCert, key: fpKey });

  /**
   * Client certificates are verified here against the cluster's client CA, as the API server would
   * (requestCert, a missing or unverified one is no error: other credentials may follow); a verified one is passed
   * on as the user (CN) and groups (O) in the request headers the API server trusts from the front proxy only.
   */
  const identity = (req: http.IncomingMessage): Record<string, string | string[]> => {
    const sock = req.socket as tls.TLSSocket;
    if (!sock.authorized) return {};
    const peer = sock.getPeerCertificate();
    const groups = peer.subject?.O;
    return { 'x-remote-user': String(peer.subject?.CN ?? ''), ...(groups ? { 'x-remote-group': Array.isArray(groups) ? groups : [groups] } : {}) };
  };
  const withoutRemoteHeaders = (h: http.IncomingHttpHeaders) => Object.fromEntries(Object.entries(h).filter(([k]) => !k.toLowerCase().startsWith('x-remote-')));

  const sockets = new Set<net.Socket>();
  const server = https.createServer({ key, cert, ca: clientCa, requestCert: true, rejectUnauthorized: false }, (req, res) => {
    const url = new URL(req.url ?? '/', 'https://x');
    const isVersion = req.method === 'GET' && (url.pathname === '/version' || url.pathname === '/version/');
    const held = opts.holdAnswer?.({ method: req.method ?? 'GET', path: url.pathname });
    const who = identity(req);
    const headers = { ...withoutRemoteHeaders(req.headers), ...who, host: upstream.host };
    const up = https.request(
      { protocol: 'https:', hostname: upstream.hostname, port: upstream.port, method: req.method, path: req.url, headers, agent: who['x-remote-user'] ? asFrontProxy : agent },
      (upRes) => void (held ?? Promise.resolve()).then(() => {
        if (res.destroyed) return upRes.destroy(); // the client gave up meanwhile
        if (!isVersion || upRes.statusCode !== 200) {
          res.writeHead(upRes.statusCode ?? 502, upRes.headers);
          upRes.pipe(res);
          return;
        }
        const chunks: Buffer[] = [];
        upRes.on('data', (c: Buffer) => chunks.push(c));
        upRes.on('end', () => {
          let info: Record<string, unknown> = {};
          try {
            info = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            /* synthesize below */
          }
          info = { ...info, major, minor, gitVersion: gv };
          const body = JSON.stringify(info, null, 2);
          const h: http.OutgoingHttpHeaders = { ...upRes.headers, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) };
          delete h['transfer-encoding'];
          delete h['content-encoding'];
          res.writeHead(200, h);
          res.end(body);
        });
        upRes.on('error', () => res.destroy());
      }),
    );
    up.on('error', (e) => {
      if (!res.headersSent) {
        res.writeHead(502, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ kind: 'Status', apiVersion: 'v1', status: 'Failure', message: `version proxy: ${e.message}`, code: 502 }));
      } else {
        res.destroy();
      }
    });
    req.pipe(up);
    res.on('close', () => {
      if (!res.writableFinished) up.destroy();
    });
  });

  // Upgrades (exec/attach/port-forward over SPDY or websockets): raw pipe after re-sending the request head.
  server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    const who = identity(req);
    const credentials = who['x-remote-user'] ? { cert: fpCert, key: fpKey } : {};
    const up = tls.connect({ host: upstream.hostname, port: Number(upstream.port), ca: targetCa, servername: undefined, ...credentials }, () => {
      const lines = [`${req.method} ${req.url} HTTP/1.1`];
      for (let i = 0; i < req.rawHeaders.length; i += 2) {
        const name = req.rawHeaders[i];
        if (name.toLowerCase().startsWith('x-remote-')) continue;
        lines.push(`${name}: ${name.toLowerCase() === 'host' ? upstream.host : req.rawHeaders[i + 1]}`);
      }
      for (const [name, value] of Object.entries(who)) for (const v of [value].flat()) lines.push(`${name}: ${v}`);
      up.write(lines.join('\r\n') + '\r\n\r\n');
      if (head.length) up.write(head);
      up.pipe(socket);
      socket.pipe(up);
    });
    sockets.add(up);
    up.on('close', () => {
      sockets.delete(up);
      socket.destroy();
    });
    up.on('error', () => socket.destroy());
    socket.on('error', () => up.destroy());
  });
  server.on('connection', (s: net.Socket) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  const proxyUrl = `https://127.0.0.1:${port}`;
  const kubeconfigPath = path.join(dir, 'kubeconfig');
  await target.writeKubeconfig(kubeconfigPath, { server: proxyUrl, caFile: certFile });

  let closing: Promise<void> | undefined;
  return {
    server: proxyUrl,
    caFile: certFile,
    kubeconfigPath,
    close() {
      closing ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
        for (const s of sockets) s.destroy();
        agent.destroy();
      }).then(() => fsp.rm(dir, { recursive: true, force: true }));
      return closing;
    },
  };
}
