// Runs the demo chain on this machine without Kubernetes, as the tutorial's dev profile did:
//   micro-pay (gRPC 18888, health 9092) <- micro-order (9091) <- micro-api (9090), all on 127.0.0.1.
// `npm run services` in the meshdemo repository; each service runs from templates/services/<name>/ as it is.
//
// Options (or environment variables): --host (SERVICES_HOST), --api-port (API_PORT), --order-port (ORDER_PORT),
// --pay-port (PAY_PORT, gRPC), --pay-http-port (PAY_HTTP_PORT). Ctrl-C stops all three.
// Exit codes: 0 stopped by Ctrl-C/SIGTERM, 1 a service failed to start or died, 2 bad options.

import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const DIR = fileURLToPath(new URL('.', import.meta.url));

function fail(message, code) {
  process.stderr.write(`run-local: ${message}\n`);
  process.exit(code);
}

let values;
try {
  ({ values } = parseArgs({
    options: {
      host: { type: 'string', default: process.env.SERVICES_HOST ?? '127.0.0.1' },
      'api-port': { type: 'string', default: process.env.API_PORT ?? '9090' },
      'order-port': { type: 'string', default: process.env.ORDER_PORT ?? '9091' },
      'pay-port': { type: 'string', default: process.env.PAY_PORT ?? '18888' },
      'pay-http-port': { type: 'string', default: process.env.PAY_HTTP_PORT ?? '9092' },
      help: { type: 'boolean', short: 'h' },
    },
  }));
} catch (err) {
  fail(`${err.message} — run with --help for usage`, 2);
}
if (values.help) {
  process.stdout.write('usage: npm run services [-- --host 127.0.0.1 --api-port 9090 --order-port 9091 --pay-port 18888 --pay-http-port 9092]\n');
  process.exit(0);
}
const ports = {};
for (const name of ['api-port', 'order-port', 'pay-port', 'pay-http-port']) {
  const n = Number(values[name]);
  if (!Number.isInteger(n) || n < 1 || n > 65535) fail(`--${name} "${values[name]}" is not a port number — use 1-65535`, 2);
  ports[name] = n;
}
const host = values.host;
const urlHost = host.includes(':') ? `[${host}]` : host;

const services = [
  { name: 'micro-pay', env: { GRPC_PORT: ports['pay-port'], HTTP_PORT: ports['pay-http-port'] }, ready: `http://${urlHost}:${ports['pay-http-port']}/ready` },
  { name: 'micro-order', env: { PORT: ports['order-port'], GRPC_SERVER_HOST: host, GRPC_SERVER_PORT: ports['pay-port'] }, ready: `http://${urlHost}:${ports['order-port']}/ready` },
  { name: 'micro-api', env: { PORT: ports['api-port'], ORDER_URL: `http://${urlHost}:${ports['order-port']}/order/create` }, ready: `http://${urlHost}:${ports['api-port']}/ready` },
];

let stopping = false;
const children = new Map();
const stopped = new AbortController();

function stopAll(code) {
  if (stopping) return;
  stopping = true;
  process.exitCode = code;
  stopped.abort();
  for (const child of children.values()) child.kill('SIGINT'); // SIGINT: the services stop without a drain delay
}

for (const svc of services) {
  const child = spawn(process.execPath, [`${DIR}${svc.name}/server.mjs`], {
    env: { ...process.env, HOST: host, POD_NAME: `${svc.name}-local`, ...Object.fromEntries(Object.entries(svc.env).map(([k, v]) => [k, String(v)])) },
    stdio: ['ignore', 'pipe', 'pipe'],
    // their own process group: Ctrl-C on the terminal reaches only this runner, which stops each service once
    // (a service that got the terminal's SIGINT and then the runner's would take the second as "exit now")
    detached: true,
  });
  children.set(svc.name, child);
  const pad = svc.name.padEnd(11);
  createInterface({ input: child.stdout }).on('line', (line) => process.stdout.write(`${pad} | ${line}\n`));
  createInterface({ input: child.stderr }).on('line', (line) => process.stderr.write(`${pad} | ${line}\n`));
  child.on('exit', (code, signal) => {
    children.delete(svc.name);
    if (!stopping) {
      process.stderr.write(`run-local: ${svc.name} exited (${signal ?? `code ${code}`}) — see its log above (a port in use? pass another with --${svc.name === 'micro-pay' ? 'pay' : svc.name.slice(6)}-port)\n`);
      stopAll(1);
    }
  });
}

process.on('SIGINT', () => stopAll(0));
process.on('SIGTERM', () => stopAll(0));
// however this runner ends, no service outlives it
process.on('exit', () => {
  for (const child of children.values()) child.kill('SIGKILL');
});

async function ready(url) {
  for (;;) {
    if (stopping) return false;
    try {
      // something else may hold the port and never answer: each probe is bounded, and stopping cancels it
      const res = await fetch(url, { signal: AbortSignal.any([AbortSignal.timeout(1000), stopped.signal]) });
      if (res.ok) return true;
    } catch {
      // not listening yet
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const allReady = (await Promise.all(services.map((s) => ready(s.ready)))).every(Boolean);
if (allReady) {
  const api = `http://${urlHost}:${ports['api-port']}/api/order/create`;
  process.stdout.write(
    `run-local: ready — micro-api ${api}, micro-order http://${urlHost}:${ports['order-port']}/order/create, micro-pay grpc ${urlHost}:${ports['pay-port']} (Ctrl-C stops them)\n` +
      `run-local: try  curl -H 'Content-Type: application/json' -X POST -d '{"businessId":"Y2021040819","amount":100,"channel":1}' ${api}\n`,
  );
}
