// The demo chain as real processes on 127.0.0.1, each service run from templates/services/<name>/server.mjs as
// it is (what `npm run services` does), with any number of micro-order instances behind a round-robin forwarder
// (test/support/round-robin.ts, standing in for the sidecar's load balancing), and any number of micro-pay
// instances behind a per-request HTTP/2 forwarder (test/support/h2-round-robin.ts).
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { startRoundRobin, type RoundRobin } from './round-robin.js';
import { startH2RoundRobin, type H2RoundRobin } from './h2-round-robin.js';

const TEMPLATES = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../../templates/services');

export async function freePorts(n: number): Promise<number[]> {
  const servers = await Promise.all(
    Array.from({ length: n }, async () => {
      const srv = net.createServer().listen(0, '127.0.0.1');
      await once(srv, 'listening');
      return srv;
    }),
  );
  const ports = servers.map((s) => (s.address() as net.AddressInfo).port);
  await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  return ports;
}

const freePort = async () => (await freePorts(1))[0];

/** One demo service (templates/services/<name>/server.mjs) as a process on 127.0.0.1, configured by env as its Deployment configures it. */
export function spawnService(name: string, env: Record<string, string | number>): ChildProcess {
  return spawn(process.execPath, [path.join(TEMPLATES, name, 'server.mjs')], {
    env: { PATH: process.env.PATH ?? '', HOST: '127.0.0.1', SHUTDOWN_DELAY_MS: '0', LOG_LEVEL: 'warn', ...Object.fromEntries(Object.entries(env).map(([k, v]) => [k, String(v)])) },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
}

/** Resolves once a demo service answers /ready on 127.0.0.1:port (tries for about 15 s). */
export async function serviceReady(port: number): Promise<void> {
  for (let i = 0; i < 300; i++) {
    if (await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.ok, () => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing became ready on 127.0.0.1:${port}`);
}

export interface LocalChain {
  /** micro-api's order endpoint */
  url: string;
  /** POD_NAME of each micro-order instance */
  orderPods: string[];
  /** POD_NAME of each micro-pay instance */
  payPods: string[];
  balancer: RoundRobin;
  payBalancer: H2RoundRobin;
  stop(): Promise<void>;
}

export async function startLocalChain(opts: { orderInstances?: number; payInstances?: number; env?: Partial<Record<'micro-api' | 'micro-order' | 'micro-pay', Record<string, string>>> } = {}): Promise<LocalChain> {
  const children: ChildProcess[] = [];
  const run = (name: string, env: Record<string, string | number>) => children.push(spawnService(name, env));
  const apiPort = await freePort();
  const payPods: string[] = [];
  const payGrpcPorts: number[] = [];
  const payHttpPorts: number[] = [];
  for (let i = 0; i < (opts.payInstances ?? 1); i++) {
    const [grpcPort, httpPort] = [await freePort(), await freePort()];
    const pod = `micro-pay-v1-6d4b7c9f5-${'abcdefgh'[i]}2m4q`;
    run('micro-pay', { GRPC_PORT: grpcPort, HTTP_PORT: httpPort, POD_NAME: pod, ...opts.env?.['micro-pay'] });
    payPods.push(pod);
    payGrpcPorts.push(grpcPort);
    payHttpPorts.push(httpPort);
  }
  const payBalancer = await startH2RoundRobin(payGrpcPorts.map((p) => `http://127.0.0.1:${p}`));
  const orderPods: string[] = [];
  const orderPorts: number[] = [];
  for (let i = 0; i < (opts.orderInstances ?? 1); i++) {
    const port = await freePort();
    const pod = `micro-order-v1-7c8f9d6b5-${'abcdefgh'[i]}${'abcdefgh'[i]}k7x`;
    run('micro-order', { PORT: port, GRPC_SERVER_HOST: '127.0.0.1', GRPC_SERVER_PORT: payBalancer.port, POD_NAME: pod, ...opts.env?.['micro-order'] });
    orderPods.push(pod);
    orderPorts.push(port);
  }
  const balancer = await startRoundRobin(orderPorts.map((p) => `http://127.0.0.1:${p}`));
  run('micro-api', { PORT: apiPort, ORDER_URL: `${balancer.url}/order/create`, POD_NAME: 'micro-api-5f7d8c9b4-q9w8e', ...opts.env?.['micro-api'] });
  const stop = async () => {
    for (const c of children) c.kill('SIGKILL');
    await balancer.close();
    await payBalancer.close();
  };
  try {
    await Promise.all([...payHttpPorts, ...orderPorts, apiPort].map(serviceReady));
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: `http://127.0.0.1:${apiPort}/api/order/create`, orderPods, payPods, balancer, payBalancer, stop };
}
