// Stands in for what the micro-api sidecar does in the mesh: each request to micro-order goes to the next of its
// endpoints in turn (Envoy's ROUND_ROBIN, Istio 1.8's default load-balancing policy for a Service's endpoints).
// A plain HTTP/1.1 forwarder on 127.0.0.1: request and response bytes are passed on unchanged.
import http from 'node:http';
import { once } from 'node:events';
import type net from 'node:net';

export interface RoundRobin {
  url: string;
  /** How many requests went to each upstream. */
  counts: number[];
  close(): Promise<void>;
}

/** `port`: listen there (e.g. a gateway's nodePort on the node address 127.0.0.1); default any free port. */
export async function startRoundRobin(upstreams: string[], opts: { port?: number } = {}): Promise<RoundRobin> {
  let next = 0;
  const counts = upstreams.map(() => 0);
  const agent = new http.Agent({ keepAlive: true });
  const server = http.createServer((req, res) => {
    const i = next++ % upstreams.length;
    counts[i]++;
    const target = new URL(req.url ?? '/', upstreams[i]);
    const out = http.request(target, { method: req.method, headers: req.headers, agent }, (up) => {
      res.writeHead(up.statusCode ?? 502, up.headers);
      up.pipe(res);
    });
    out.on('error', (err) => {
      if (!res.headersSent) res.writeHead(503, { 'content-type': 'text/plain' });
      res.end(`upstream connect error: ${err.message}`);
    });
    req.pipe(out);
  });
  server.listen(opts.port ?? 0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as net.AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    counts,
    close: async () => {
      agent.destroy();
      server.closeAllConnections();
      await new Promise((r) => server.close(r));
    },
  };
}
