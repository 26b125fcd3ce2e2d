// A stand-in for the parts of a kubelet that meshdemo reaches through the API server: containerLogs, which serves
// pods/<pod>/log (`meshdemo logs`), and portForward, which serves pods/<pod>/portforward (`open` and `expose
// --port-forward`). containerLogs imitates kubernetes v1.20.2 pkg/kubelet/server/server.go:
//  - route GET /containerLogs/{podNamespace}/{podID}/{containerName} (InstallDebuggingHandlers; other methods 405);
//  - the query is decoded into v1.PodLogOptions (follow, sinceSeconds, sinceTime, timestamps, tailLines,
//    limitBytes; "tail" as an old alias of tailLines) — getContainerLogs; a value that does not decode is
//    400 {"message": "Unable to decode query."};
//  - a pod the kubelet does not run: 404 `pod "<pod>" does not exist`; a container not in its spec:
//    404 `container "<c>" not found in pod "<pod>"` (plain text, as response.WriteError writes it);
//  - the log is written chunked through a flush writer; with follow the response stays open and new lines are
//    written as the container writes them, until the client goes away.
// portForward imitates server.go getPortForward and pkg/kubelet/cri/streaming/portforward/websocket.go (v1.20.2)
// over WebSocket, the only transport @kubernetes/client-node speaks (SPDY is refused here, not imitated):
//  - route /portForward/{podNamespace}/{podID}; a pod the kubelet does not run: 404 "pod does not exist";
//  - the API server turns the client's `ports=` into the kubelet's `port=` query (PodPortForwardOptions); none:
//    400 `query parameter "port" is required`;
//  - subprotocols v4.channel.k8s.io (binary frames, the first byte the channel) or none; per port a data channel
//    2n and an error channel 2n+1, on each of which the port is written first as a little-endian uint16;
//  - the kubelet dials the port in the pod's network namespace (containerd's sandbox_portforward_linux.go); when
//    that fails it writes `error forwarding port <p> to pod <pod>, uid <uid>: failed to execute portforward in
//    network namespace "<netns>": failed to dial <p>: …` on the error channel and closes; when the connection in
//    the pod ends, the streams and the WebSocket close.
// It serves HTTPS with a self-signed certificate: the API server (started without --kubelet-certificate-authority)
// does not verify it, as with a real kubelet's self-signed serving certificate. It listens on 127.0.0.1 only; the
// simulated Node advertises that port in status.daemonEndpoints.kubeletEndpoint.Port
// (test/support/node-simulator.ts, kubeletPort).
import { execFileSync } from 'node:child_process';
import { once } from 'node:events';
import fs from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import { WebSocketServer, type WebSocket } from 'ws';
import os from 'node:os';
import path from 'node:path';

interface Entry {
  at: Date;
  text: string;
}

export interface KubeletStandin {
  port: number;
  /** Every request the API server made: path and query as received. */
  requests: Array<{ method: string; path: string; query: Record<string, string> }>;
  /** Declares a pod this "kubelet" runs, with its containers' logs so far (written `ageSeconds` ago, default 0). */
  addPod(namespace: string, pod: string, logs: Record<string, string[]>, opts?: { ageSeconds?: number }): void;
  /** A container of the pod listens on `containerPort`: the pod's port is 127.0.0.1:`hostPort` here (0: nothing listens). */
  listen(namespace: string, pod: string, containerPort: number, hostPort: number): void;
  /** A container writes a line now (followers receive it at once). */
  write(namespace: string, pod: string, container: string, line: string): void;
  /** How many follow streams are open right now. */
  followers(): number;
  close(): Promise<void>;
}

function selfSignedCert(dir: string): { key: Buffer; cert: Buffer } {
  const key = path.join(dir, 'kubelet.key');
  const cert = path.join(dir, 'kubelet.crt');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=meshdemo-sim@kubelet', '-addext', 'subjectAltName=IP:127.0.0.1'], { stdio: 'ignore' });
  return { key: fs.readFileSync(key), cert: fs.readFileSync(cert) };
}

const BOOL = /^(true|false|1|0)$/;
const INT = /^-?\d+$/;

export async function startKubeletStandin(): Promise<KubeletStandin> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-kubelet-'));
  const pods = new Map<string, Map<string, Entry[]>>();
  const followersOf = new Map<string, Set<{ res: import('node:http').ServerResponse; timestamps: boolean }>>();
  const requests: KubeletStandin['requests'] = [];
  const key = (ns: string, pod: string, c: string) => `${ns}/${pod}/${c}`;
  const format = (e: Entry, timestamps: boolean) => `${timestamps ? `${e.at.toISOString()} ` : ''}${e.text}\n`;

  const server = https.createServer(selfSignedCert(dir), (req, res) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const query = Object.fromEntries(url.searchParams);
    requests.push({ method: req.method ?? '', path: url.pathname, query });
    const m = /^\/containerLogs\/([^/]+)\/([^/]+)\/([^/]+)$/.exec(url.pathname);
    if (!m) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end('404 page not found\n');
      return;
    }
    if (req.method !== 'GET') {
      res.writeHead(405, { 'content-type': 'text/plain; charset=utf-8' }).end('Method Not Allowed');
      return;
    }
    const [ns, podName, container] = m.slice(1).map(decodeURIComponent);
    if (query.tail !== undefined) {
      if (query.tail === 'all') delete query.tailLines;
      else query.tailLines = query.tail;
    }
    const bad =
      ['follow', 'timestamps', 'previous', 'insecureSkipTLSVerifyBackend'].some((k) => query[k] !== undefined && !BOOL.test(query[k])) ||
      ['sinceSeconds', 'tailLines', 'limitBytes'].some((k) => query[k] !== undefined && !INT.test(query[k])) ||
      (query.sinceTime !== undefined && Number.isNaN(Date.parse(query.sinceTime)));
    if (bad) {
      res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8' }).end('{"message": "Unable to decode query."}');
      return;
    }
    const pod = pods.get(`${ns}/${podName}`);
    if (!pod) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`pod "${podName}" does not exist`);
      return;
    }
    const entries = pod.get(container);
    if (!entries) {
      res.writeHead(404, { 'content-type': 'text/plain; charset=utf-8' }).end(`container "${container}" not found in pod "${podName}"`);
      return;
    }
    const follow = query.follow === 'true' || query.follow === '1';
    const timestamps = query.timestamps === 'true' || query.timestamps === '1';
    let selected = entries;
    if (query.sinceSeconds !== undefined) {
      const since = Date.now() - Number(query.sinceSeconds) * 1000;
      selected = selected.filter((e) => e.at.getTime() >= since);
    } else if (query.sinceTime !== undefined) {
      const since = Date.parse(query.sinceTime);
      selected = selected.filter((e) => e.at.getTime() >= since);
    }
    if (query.tailLines !== undefined && Number(query.tailLines) >= 0) selected = Number(query.tailLines) === 0 ? [] : selected.slice(-Number(query.tailLines));
    res.writeHead(200, { 'content-type': 'text/plain', 'transfer-encoding': 'chunked' });
    let body = selected.map((e) => format(e, timestamps)).join('');
    if (query.limitBytes !== undefined) body = body.slice(0, Number(query.limitBytes));
    if (body) res.write(body);
    if (!follow) {
      res.end();
      return;
    }
    const k = key(ns, podName, container);
    const set = followersOf.get(k) ?? new Set();
    followersOf.set(k, set);
    const follower = { res, timestamps };
    set.add(follower);
    res.on('close', () => set.delete(follower));
  });
  const portsOf = new Map<string, Map<number, number>>();
  const sockets = new Set<WebSocket>();
  const V4_BINARY = 'v4.channel.k8s.io';
  const wss = new WebSocketServer({ noServer: true, handleProtocols: (offered) => (offered.has(V4_BINARY) ? V4_BINARY : false) });
  server.on('upgrade', (req, socket: net.Socket, head) => {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    requests.push({ method: req.method ?? '', path: url.pathname, query: Object.fromEntries(url.searchParams) });
    const refuse = (status: number, text: string) => {
      socket.end(`HTTP/1.1 ${status} ${status === 404 ? 'Not Found' : 'Bad Request'}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(text)}\r\nconnection: close\r\n\r\n${text}`);
    };
    const m = /^\/portForward\/([^/]+)\/([^/]+)(?:\/[^/]+)?$/.exec(url.pathname);
    if (!m) return refuse(404, '404 page not found\n');
    const [ns, podName] = m.slice(1).map(decodeURIComponent);
    if (!pods.has(`${ns}/${podName}`) && !portsOf.has(`${ns}/${podName}`)) return refuse(404, 'pod does not exist');
    if (String(req.headers.upgrade).toLowerCase() !== 'websocket') return refuse(400, 'kubelet stand-in: only WebSocket port-forwarding is imitated, not SPDY');
    const portStrings = url.searchParams.getAll('port');
    if (!portStrings.length) return refuse(400, 'query parameter "port" is required');
    const ports: number[] = [];
    for (const ps of portStrings) {
      if (!ps.length) return refuse(400, 'query parameter "port" cannot be empty');
      for (const p of ps.split(',')) {
        if (!/^\d+$/.test(p) || Number(p) > 65535) return refuse(400, `unable to parse "${ps}" as a port: strconv.ParseUint: parsing "${p}": invalid syntax`);
        if (Number(p) < 1) return refuse(400, `port "${ps}" must be > 0`);
        ports.push(Number(p));
      }
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      sockets.add(ws);
      ws.on('close', () => sockets.delete(ws));
      const frame = (channel: number, data: Buffer) => ws.readyState === ws.OPEN && ws.send(Buffer.concat([Buffer.from([channel]), data]));
      const conns: Array<net.Socket | undefined> = [];
      let open = ports.length;
      const pairDone = () => {
        if (--open === 0) ws.close();
      };
      ports.forEach((port, i) => {
        const portBytes = Buffer.alloc(2);
        portBytes.writeUInt16LE(port);
        frame(2 * i, portBytes);
        frame(2 * i + 1, portBytes);
        const hostPort = portsOf.get(`${ns}/${podName}`)?.get(port) ?? 0;
        const dialFailed = () =>
          frame(2 * i + 1, Buffer.from(`error forwarding port ${port} to pod ${podName}, uid : failed to execute portforward in network namespace "/var/run/netns/cni-${podName}": failed to dial ${port}: dial tcp4 127.0.0.1:${port}: connect: connection refused`));
        if (!hostPort) {
          dialFailed();
          pairDone();
          return;
        }
        const conn = net.connect({ host: '127.0.0.1', port: hostPort });
        conns[i] = conn;
        let connected = false;
        conn.on('connect', () => (connected = true));
        conn.on('data', (d) => frame(2 * i, d));
        conn.on('error', () => {
          if (!connected) dialFailed();
        });
        conn.on('close', pairDone);
      });
      ws.on('message', (data: Buffer) => {
        const channel = data[0];
        if (channel % 2 === 0 && conns[channel / 2]) conns[channel / 2]!.write(data.subarray(1));
      });
      ws.on('close', () => conns.forEach((c) => c?.destroy()));
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;

  return {
    port,
    requests,
    addPod(namespace, pod, logs, opts = {}) {
      const now = Date.now() - (opts.ageSeconds ?? 0) * 1000;
      pods.set(`${namespace}/${pod}`, new Map(Object.entries(logs).map(([c, lines]) => [c, lines.map((text) => ({ at: new Date(now), text }))])));
    },
    listen(namespace, pod, containerPort, hostPort) {
      const ports = portsOf.get(`${namespace}/${pod}`) ?? new Map<number, number>();
      ports.set(containerPort, hostPort);
      portsOf.set(`${namespace}/${pod}`, ports);
    },
    write(namespace, pod, container, line) {
      const entries = pods.get(`${namespace}/${pod}`)?.get(container);
      if (!entries) throw new Error(`no container ${container} in pod ${namespace}/${pod}`);
      const e = { at: new Date(), text: line };
      entries.push(e);
      for (const f of followersOf.get(key(namespace, pod, container)) ?? []) f.res.write(format(e, f.timestamps));
    },
    followers: () => [...followersOf.values()].reduce((n, s) => n + s.size, 0),
    async close() {
      for (const set of followersOf.values()) for (const f of set) f.res.destroy();
      for (const ws of sockets) ws.terminate();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
