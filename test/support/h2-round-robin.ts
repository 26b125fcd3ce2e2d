// Stands in for what the micro-order sidecar does for its gRPC calls to micro-pay: Envoy balances HTTP/2 per
// request (each stream), not per connection, so one micro-order connection reaches every micro-pay endpoint in
// turn (Envoy's ROUND_ROBIN, Istio 1.8's default policy; a Service port named `grpc` is HTTP/2 to Envoy —
// istio.io/v1.8/docs/ops/configuration/traffic-management/protocol-selection). A cleartext HTTP/2 (h2c) forwarder
// on 127.0.0.1: headers, data and trailers (where gRPC puts grpc-status) pass unchanged.
import http2 from 'node:http2';
import { once } from 'node:events';
import type net from 'node:net';

export interface H2RoundRobin {
  port: number;
  counts: number[];
  close(): Promise<void>;
}

const HOP_BY_HOP = new Set([':status', 'connection', 'keep-alive', 'transfer-encoding']);

export async function startH2RoundRobin(upstreams: string[]): Promise<H2RoundRobin> {
  let next = 0;
  const counts = upstreams.map(() => 0);
  const sessions = upstreams.map(() => undefined as http2.ClientHttp2Session | undefined);
  const session = (i: number) => {
    const s = sessions[i];
    if (s && !s.closed && !s.destroyed) return s;
    const fresh = http2.connect(upstreams[i]);
    fresh.on('error', () => {});
    sessions[i] = fresh;
    return fresh;
  };
  const server = http2.createServer();
  server.on('stream', (down, headers) => {
    const i = next++ % upstreams.length;
    counts[i]++;
    const forwarded = Object.fromEntries(Object.entries(headers).filter(([k]) => !HOP_BY_HOP.has(k) && k !== ':authority' && k !== ':scheme'));
    const up = session(i).request(forwarded, { endStream: false });
    down.pipe(up);
    up.on('response', (h) => {
      const out = Object.fromEntries(Object.entries(h).filter(([k]) => !HOP_BY_HOP.has(k) || k === ':status'));
      if (!down.headersSent && !down.destroyed) down.respond(out, { waitForTrailers: true });
    });
    let trailers: http2.OutgoingHttpHeaders = {};
    up.on('trailers', (t) => (trailers = t));
    down.on('wantTrailers', () => down.sendTrailers(trailers));
    up.pipe(down);
    up.on('error', () => down.destroy());
    down.on('error', () => up.destroy());
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  return {
    port: (server.address() as net.AddressInfo).port,
    counts,
    close: async () => {
      for (const s of sessions) s?.destroy();
      await new Promise((r) => server.close(r));
    },
  };
}
