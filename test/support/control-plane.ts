// A real Kubernetes 1.20.2 control plane (etcd + kube-apiserver + kube-controller-manager) on loopback,
// one temporary directory and a fresh set of free ports per instance. Recipe: /work/shared/testenv.md.
//
// Every byte stays on this machine: all listeners are on 127.0.0.1, the service range is 127.96.0.0/16
// (so every ClusterIP, e.g. an admission webhook's, is a loopback address).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import yaml from 'js-yaml';
import { spawnOwned } from './reaper.js';

export const KUBE_VERSION = '1.20.2';

export interface WriteKubeconfigOptions {
  /** API server URL written into the cluster entry (default: the control plane's own `server`). */
  server?: string;
  /** Current context: "admin" (default) or "viewer". Both contexts are always written. */
  context?: string;
  /** CA file the cluster entry trusts (default: the control plane's `caFile`), e.g. a proxy's certificate. */
  caFile?: string;
  /** Extra fields merged into the cluster entry (e.g. `{ 'tls-server-name': 'x' }`, `{ 'proxy-url': '...' }`). */
  extra?: object;
}

export interface ControlPlane {
  /** https://127.0.0.1:<port> */
  server: string;
  /** The API server's self-signed certificate bundle (trusted as CA; no insecure-skip). */
  caFile: string;
  /** Token of user "admin" in group system:masters. */
  adminToken: string;
  /** Token of user "viewer", bound to the `view` ClusterRole (ClusterRoleBinding "viewer"). */
  viewToken: string;
  /**
   * Client certificates (`--client-ca-file`): `admin` is kubeadm's admin.conf user (CN kubernetes-admin, O
   * system:masters), as kind writes it; `frontProxy` (CN front-proxy-client) may name the user of a request it
   * forwards in X-Remote-User / X-Remote-Group (`--requestheader-*`, as kube-aggregator does). PEM files.
   */
  clientCerts: { caFile: string; admin: { certFile: string; keyFile: string }; frontProxy: { caFile: string; certFile: string; keyFile: string } };
  /** Kubeconfig with contexts "admin" (current) and "viewer". */
  kubeconfigPath: string;
  /** Temporary directory of this control plane (logs: etcd.log, kube-apiserver.log, kube-controller-manager.log). */
  dir: string;
  /** Write a kubeconfig variant (both contexts; a different server/CA, current context or extra cluster fields). */
  writeKubeconfig(path: string, opts?: WriteKubeconfigOptions): Promise<void>;
  /** Stop the API server alone (fault tests). etcd and the controller manager keep running. */
  stopApiServer(): Promise<void>;
  /** Start the API server again on the same port against the same etcd, and wait until it is ready. */
  startApiServer(): Promise<void>;
  /** Kill etcd, kube-apiserver and kube-controller-manager by PID and remove `dir`. Idempotent. */
  stop(): Promise<void>;
}

export interface StartControlPlaneOptions {
  /** Run kube-controller-manager (default true). Without it, no ServiceAccounts, ReplicaSets, pods, GC... */
  controllerManager?: boolean;
  /** Readiness deadline per process, in ms (default 60 000). */
  timeoutMs?: number;
}

/** Directory holding kube-apiserver and kube-controller-manager. */
export function testenvBinDir(): string {
  if (process.env.MESHDEMO_TESTENV_BIN) return process.env.MESHDEMO_TESTENV_BIN;
  const cache = process.env.MESHDEMO_TESTENV_CACHE || path.join(os.homedir(), '.cache', 'meshdemo-testenv');
  return path.join(cache, `v${KUBE_VERSION}`);
}

function isExecutable(p: string): boolean {
  try {
    fs.accessSync(p, fs.constants.X_OK);
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** Path of etcd: MESHDEMO_TESTENV_ETCD, else `etcd` on PATH, else /usr/bin/etcd; undefined if none. */
export function etcdPath(): string | undefined {
  const candidates = [
    process.env.MESHDEMO_TESTENV_ETCD,
    ...(process.env.PATH ?? '').split(path.delimiter).filter(Boolean).map((d) => path.join(d, 'etcd')),
    '/usr/bin/etcd',
  ];
  return candidates.find((c): c is string => !!c && isExecutable(c));
}

/** True when kube-apiserver, kube-controller-manager and etcd are all present (and openssl, which sa.key needs). */
export function controlPlaneAvailable(): boolean {
  const bin = testenvBinDir();
  return (
    isExecutable(path.join(bin, 'kube-apiserver')) &&
    isExecutable(path.join(bin, 'kube-controller-manager')) &&
    etcdPath() !== undefined &&
    spawnSync('openssl', ['version'], { stdio: 'ignore' }).status === 0
  );
}

// ---------------------------------------------------------------------------------------------------------
// Process bookkeeping: every process we start is killed by PID on stop(), on process exit, and (if this
// Node process is killed with SIGKILL) by a small watchdog that notices its stdin closing.

const livePids = new Set<number>();
let exitHookInstalled = false;

function installExitHook(): void {
  if (exitHookInstalled) return;
  exitHookInstalled = true;
  process.on('exit', () => {
    for (const pid of livePids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
  });
  // Default SIGINT/SIGTERM handling terminates without running 'exit' listeners: kill children first,
  // then re-raise with the default disposition so the process still dies the same way.
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    const handler = () => {
      for (const pid of livePids) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      if (process.listenerCount(sig) === 1) {
        process.removeListener(sig, handler);
        process.kill(process.pid, sig);
      } else {
        process.removeListener(sig, handler);
      }
    };
    process.on(sig, handler);
  }
}

interface Proc {
  name: string;
  child: ChildProcess;
  pid: number;
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  exitInfo?: { code: number | null; signal: NodeJS.Signals | null };
}

function startProcess(name: string, cmd: string, args: string[], logFile: string, pidFile: string): Proc {
  installExitHook();
  const fd = fs.openSync(logFile, 'a');
  fs.writeSync(fd, `\n==== ${new Date().toISOString()} ${cmd} ${args.join(' ')}\n`);
  // also the leader of its own process group, which dies with this test process (test/support/reaper.ts)
  const child = spawnOwned(cmd, args, { stdio: ['ignore', fd, fd], env: { ...process.env } });
  fs.closeSync(fd);
  if (child.pid === undefined) throw new Error(`could not start ${name} (${cmd})`);
  const pid = child.pid;
  livePids.add(pid);
  fs.appendFileSync(pidFile, `${pid}\n`);
  const proc: Proc = {
    name,
    child,
    pid,
    logFile,
    exited: new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        livePids.delete(pid);
        proc.exitInfo = { code, signal };
        resolve({ code, signal });
      });
    }),
  };
  child.once('error', () => {
    /* reported through 'exit' / readiness errors */
  });
  child.unref();
  return proc;
}

async function killProcess(p: Proc | undefined, graceMs = 5000): Promise<void> {
  if (!p || p.exitInfo) return;
  p.child.ref(); // children are unref'd; while we wait for this one to exit, it must keep the event loop alive
  try {
    process.kill(p.pid, 'SIGTERM');
  } catch {
    return;
  }
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), graceMs)));
  const first = await Promise.race([p.exited, timeout]);
  clearTimeout(timer);
  if (first === 'timeout') {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      /* gone */
    }
    await Promise.race([p.exited, new Promise((r) => (timer = setTimeout(r, 2000)))]);
    clearTimeout(timer);
  }
}

/** Starts a watchdog that kills the PIDs listed in pidFile and removes dir when this process dies. */
function startWatchdog(pidFile: string, dir: string): ChildProcess {
  const script =
    'cat >/dev/null; ' +
    'for p in $(cat "$1" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done; ' +
    'sleep 1; rm -rf "$2"';
  const child = spawn('/bin/sh', ['-c', script, 'meshdemo-watchdog', pidFile, dir], {
    stdio: ['pipe', 'ignore', 'ignore'],
    detached: true, // not killed together with our process group by a terminal ^C before it can clean up
  });
  child.unref();
  (child.stdin as unknown as net.Socket | null)?.unref?.();
  child.once('error', () => {});
  return child;
}

async function tail(file: string, lines = 40): Promise<string> {
  try {
    const text = await fsp.readFile(file, 'utf8');
    return text.split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

// ---------------------------------------------------------------------------------------------------------

/** Free TCP ports on 127.0.0.1 (held open together so they are distinct). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((resolve, reject) => {
        s.once('error', reject);
        s.listen(0, '127.0.0.1', () => resolve());
      });
      ports.push((s.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(() => r(undefined)))));
  }
}

function run(cmd: string, args: string[], cwd?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr!.on('data', (d) => (err += d));
    child.once('error', reject);
    child.once('exit', (code) =>
      code === 0 ? resolve() : reject(new Error(`${cmd} ${args.join(' ')} failed (${code}): ${err.trim()}`)),
    );
  });
}

export interface HttpResult {
  status: number;
  body: string;
  json<T = any>(): T;
}

/** One HTTPS request to the API server (JSON body if given). Rejects only on transport errors. */
export function apiRequest(
  server: string,
  opts: { ca?: string | Buffer; token?: string; method?: string; path: string; body?: unknown; contentType?: string; timeoutMs?: number; agent?: https.Agent },
): Promise<HttpResult> {
  return new Promise((resolve, reject) => {
    const url = new URL(opts.path, server);
    const data = opts.body === undefined ? undefined : typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    const headers: http.OutgoingHttpHeaders = { Accept: 'application/json' };
    if (opts.token) headers.Authorization = `Bearer ${opts.token}`;
    if (data !== undefined) {
      headers['Content-Type'] = opts.contentType ?? 'application/json';
      headers['Content-Length'] = Buffer.byteLength(data);
    }
    const req = https.request(
      url,
      { method: opts.method ?? 'GET', headers, ca: opts.ca, agent: opts.agent, timeout: opts.timeoutMs ?? 10_000 },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const body = Buffer.concat(chunks).toString('utf8');
          resolve({ status: res.statusCode ?? 0, body, json: () => JSON.parse(body) });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error(`timeout: ${opts.method ?? 'GET'} ${url.href}`)));
    req.on('error', reject);
    req.end(data);
  });
}

function httpGet(url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve(res.statusCode ?? 0));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(
  what: string,
  procs: Proc[],
  deadlineMs: number,
  check: () => Promise<boolean | string>,
): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let last = '';
  for (;;) {
    for (const p of procs) {
      if (p.exitInfo) {
        throw new Error(
          `${p.name} exited (code ${p.exitInfo.code}, signal ${p.exitInfo.signal}) while waiting for ${what}.\n` +
            `--- tail of ${p.logFile} ---\n${await tail(p.logFile)}`,
        );
      }
    }
    try {
      const r = await check();
      if (r === true) return;
      if (typeof r === 'string') last = r;
    } catch (e) {
      last = (e as Error).message;
    }
    if (Date.now() > deadline) {
      const logs = await Promise.all(procs.map(async (p) => `--- tail of ${p.logFile} ---\n${await tail(p.logFile)}`));
      throw new Error(`timed out after ${deadlineMs / 1000}s waiting for ${what} (last: ${last || 'n/a'}).\n${logs.join('\n')}`);
    }
    await sleep(200);
  }
}

/**
 * Start etcd, kube-apiserver and (unless opts.controllerManager === false) kube-controller-manager,
 * wait until they are ready, bind the viewer, and (with the controller manager) wait for the `default`
 * ServiceAccount in `default` and its token. Call stop() in an after()/t.after() hook.
 */
export async function startControlPlane(opts: StartControlPlaneOptions = {}): Promise<ControlPlane> {
  if (!controlPlaneAvailable()) {
    throw new Error(`control plane binaries not found in ${testenvBinDir()} (or etcd/openssl missing): run test/setup.sh`);
  }
  const withKcm = opts.controllerManager ?? true;
  const timeoutMs = opts.timeoutMs ?? 60_000;
  const bin = testenvBinDir();
  const etcdBin = etcdPath()!;
  const dir = await fsp.mkdtemp(path.join(os.tmpdir(), 'meshdemo-cp-'));
  const pidFile = path.join(dir, 'pids');
  await fsp.writeFile(pidFile, '');
  const watchdog = startWatchdog(pidFile, dir);

  const procs: { etcd?: Proc; api?: Proc; kcm?: Proc } = {};
  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      await killProcess(procs.kcm);
      await killProcess(procs.api);
      await killProcess(procs.etcd);
      if (watchdog.pid !== undefined) {
        try {
          process.kill(watchdog.pid, 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await fsp.rm(dir, { recursive: true, force: true });
    })();
    return stopping;
  };

  try {
    const [etcdPort, peerPort, apiPort, kcmPort] = await freePorts(4);
    const server = `https://127.0.0.1:${apiPort}`;
    const certDir = path.join(dir, 'certs');
    const caFile = path.join(certDir, 'apiserver.crt');
    const adminToken = randomBytes(24).toString('hex');
    const viewToken = randomBytes(24).toString('hex');
    const tokensFile = path.join(dir, 'tokens.csv');
    await fsp.mkdir(certDir);
    await fsp.writeFile(tokensFile, `${adminToken},admin,admin,"system:masters"\n${viewToken},viewer,viewer\n`, { mode: 0o600 });
    const saKey = path.join(dir, 'sa.key');
    const saPub = path.join(dir, 'sa.pub');
    await run('openssl', ['genrsa', '-out', saKey, '2048']);
    await run('openssl', ['rsa', '-in', saKey, '-pubout', '-out', saPub]);
    const clientCerts = await makeClientCerts(certDir);

    // --- etcd
    const etcdUrl = `http://127.0.0.1:${etcdPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    procs.etcd = startProcess(
      'etcd',
      etcdBin,
      [
        '--name=default',
        `--data-dir=${path.join(dir, 'etcd')}`,
        `--listen-client-urls=${etcdUrl}`,
        `--advertise-client-urls=${etcdUrl}`,
        `--listen-peer-urls=${peerUrl}`,
        `--initial-advertise-peer-urls=${peerUrl}`,
        `--initial-cluster=default=${peerUrl}`,
      ],
      path.join(dir, 'etcd.log'),
      pidFile,
    );
    await waitFor('etcd /health', [procs.etcd], timeoutMs, async () => (await httpGet(`${etcdUrl}/health`)) === 200);

    // --- kube-apiserver
    const apiArgs = [
      `--etcd-servers=${etcdUrl}`,
      '--advertise-address=127.0.0.1',
      '--bind-address=127.0.0.1',
      `--secure-port=${apiPort}`,
      `--cert-dir=${certDir}`,
      `--token-auth-file=${tokensFile}`,
      `--client-ca-file=${clientCerts.caFile}`,
      `--requestheader-client-ca-file=${clientCerts.frontProxy.caFile}`,
      '--requestheader-allowed-names=front-proxy-client',
      '--requestheader-username-headers=X-Remote-User',
      '--requestheader-group-headers=X-Remote-Group',
      '--requestheader-extra-headers-prefix=X-Remote-Extra-',
      '--authorization-mode=RBAC',
      `--service-account-key-file=${saPub}`,
      `--service-account-signing-key-file=${saKey}`,
      '--service-account-issuer=https://kubernetes.default.svc',
      '--service-cluster-ip-range=127.96.0.0/16',
      '--service-node-port-range=30000-32767',
      '--allow-privileged=true',
      // kubelet calls (logs, exec, port-forward) go to the node's InternalIP (loopback here), never to a Hostname
      // address that would be looked up in DNS
      '--kubelet-preferred-address-types=InternalIP',
    ];
    const apiLog = path.join(dir, 'kube-apiserver.log');
    let caPem: Buffer | undefined;
    const waitApiReady = async () => {
      await waitFor('kube-apiserver /readyz', [procs.etcd!, procs.api!], timeoutMs, async () => {
        if (!caPem) {
          if (!fs.existsSync(caFile)) return 'no certificate yet';
          caPem = await fsp.readFile(caFile);
        }
        const r = await apiRequest(server, { ca: caPem, token: adminToken, path: '/readyz', timeoutMs: 3000 });
        return r.status === 200 || `readyz ${r.status}: ${r.body.slice(0, 300)}`;
      });
    };
    const startApi = async () => {
      procs.api = startProcess('kube-apiserver', path.join(bin, 'kube-apiserver'), apiArgs, apiLog, pidFile);
      await waitApiReady();
    };
    await startApi();
    const ca = caPem!;

    const kubeconfigDoc = (o: WriteKubeconfigOptions = {}) => ({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'meshdemo-test', cluster: { server: o.server ?? server, 'certificate-authority': o.caFile ?? caFile, ...(o.extra ?? {}) } }],
      users: [
        { name: 'admin', user: { token: adminToken } },
        { name: 'viewer', user: { token: viewToken } },
      ],
      contexts: [
        { name: 'admin', context: { cluster: 'meshdemo-test', user: 'admin', namespace: 'default' } },
        { name: 'viewer', context: { cluster: 'meshdemo-test', user: 'viewer', namespace: 'default' } },
      ],
      'current-context': o.context ?? 'admin',
      preferences: {},
    });
    const writeKubeconfig = async (p: string, o?: WriteKubeconfigOptions) => {
      await fsp.mkdir(path.dirname(p), { recursive: true });
      await fsp.writeFile(p, yaml.dump(kubeconfigDoc(o)), { mode: 0o600 });
    };
    const kubeconfigPath = path.join(dir, 'kubeconfig');
    await writeKubeconfig(kubeconfigPath);

    // --- viewer → ClusterRole view
    const crb = await apiRequest(server, {
      ca,
      token: adminToken,
      method: 'POST',
      path: '/apis/rbac.authorization.k8s.io/v1/clusterrolebindings',
      body: {
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'ClusterRoleBinding',
        metadata: { name: 'viewer' },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
        subjects: [{ apiGroup: 'rbac.authorization.k8s.io', kind: 'User', name: 'viewer' }],
      },
    });
    if (crb.status !== 201 && crb.status !== 409) throw new Error(`binding viewer failed: ${crb.status} ${crb.body}`);

    // --- kube-controller-manager
    if (withKcm) {
      procs.kcm = startProcess(
        'kube-controller-manager',
        path.join(bin, 'kube-controller-manager'),
        [
          `--kubeconfig=${kubeconfigPath}`,
          `--service-account-private-key-file=${saKey}`,
          `--root-ca-file=${caFile}`,
          '--use-service-account-credentials=false',
          '--leader-elect=false',
          '--controllers=*,-nodelifecycle',
          '--bind-address=127.0.0.1',
          `--secure-port=${kcmPort}`,
          '--port=0',
        ],
        path.join(dir, 'kube-controller-manager.log'),
        pidFile,
      );
      // Pods are refused until the ServiceAccount exists and (1.20) has its token secret.
      await waitFor('ServiceAccount default/default and its token', [procs.etcd, procs.api!, procs.kcm], timeoutMs, async () => {
        const r = await apiRequest(server, { ca, token: adminToken, path: '/api/v1/namespaces/default/serviceaccounts/default' });
        if (r.status !== 200) return `serviceaccount: ${r.status}`;
        return (r.json().secrets?.length ?? 0) > 0 || 'serviceaccount has no token secret yet';
      });
    }

    return {
      server,
      caFile,
      adminToken,
      viewToken,
      clientCerts,
      kubeconfigPath,
      dir,
      writeKubeconfig,
      async stopApiServer() {
        await killProcess(procs.api, 3000); // its endpoint reconciler can hang a graceful stop for 10 s+
      },
      async startApiServer() {
        if (procs.api && !procs.api.exitInfo) return;
        await startApi();
      },
      stop,
    };
  } catch (e) {
    await stop();
    throw e;
  }
}

/** Two CAs, each with one client certificate signed by it: the admin user's and the front proxy's. */
async function makeClientCerts(dir: string): Promise<ControlPlane['clientCerts']> {
  const f = (name: string) => path.join(dir, name);
  const ca = async (name: string, cn: string) => run('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.crt`), '-days', '2', '-subj', `/CN=${cn}`]);
  const signed = async (name: string, subject: string, caName: string) => {
    await run('openssl', ['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', f(`${name}.key`), '-out', f(`${name}.csr`), '-subj', subject]);
    await fsp.writeFile(f(`${name}.ext`), 'extendedKeyUsage=clientAuth\n');
    await run('openssl', ['x509', '-req', '-in', f(`${name}.csr`), '-CA', f(`${caName}.crt`), '-CAkey', f(`${caName}.key`), '-CAcreateserial', '-out', f(`${name}.crt`), '-days', '2', '-extfile', f(`${name}.ext`)]);
  };
  await ca('client-ca', 'kubernetes');
  await ca('front-proxy-ca', 'front-proxy-ca');
  await signed('admin', '/O=system:masters/CN=kubernetes-admin', 'client-ca');
  await signed('front-proxy-client', '/CN=front-proxy-client', 'front-proxy-ca');
  return {
    caFile: f('client-ca.crt'),
    admin: { certFile: f('admin.crt'), keyFile: f('admin.key') },
    frontProxy: { caFile: f('front-proxy-ca.crt'), certFile: f('front-proxy-client.crt'), keyFile: f('front-proxy-client.key') },
  };
}

/** A JSON request to the control plane as admin (or with `token`): the status and the parsed body. */
export async function kubeJson(
  cp: ControlPlane,
  path: string,
  opts: { method?: string; body?: unknown; contentType?: string; token?: string } = {},
): Promise<{ status: number; body: any }> {
  const res = await apiRequest(cp.server, { ca: fs.readFileSync(cp.caFile), token: opts.token ?? cp.adminToken, path, method: opts.method, body: opts.body, contentType: opts.contentType });
  return { status: res.status, body: res.body ? JSON.parse(res.body) : undefined };
}

/** The token the controller manager issues to a ServiceAccount (its token Secret, 1.20), waited for. */
export async function serviceAccountToken(cp: ControlPlane, namespace: string, name: string): Promise<string> {
  for (let i = 0; i < 100; i++) {
    const secrets = (await kubeJson(cp, `/api/v1/namespaces/${namespace}/serviceaccounts/${name}`)).body?.secrets ?? [];
    if (secrets.length) return Buffer.from((await kubeJson(cp, `/api/v1/namespaces/${namespace}/secrets/${secrets[0].name}`)).body.data.token, 'base64').toString('utf8');
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`ServiceAccount ${namespace}/${name} got no token`);
}
