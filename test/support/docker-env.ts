// A private, real Docker environment for tests, on loopback only:
// - dockerd with its own socket, data root, exec root, pid file and containerd namespace, no bridge and no
//   iptables changes, so the host's Docker (if any) is not touched. Its HTTP(S)_PROXY points at a closed
//   loopback port, so an accidental pull from a remote registry fails at once instead of leaving the machine.
// - docker-registry (Debian's distribution 2.x) on 127.0.0.1:<free port> with storage in the temp dir.
// - a Node base image made with `docker import` from this machine's own node binary and the libraries
//   `ldd` lists (nothing is pulled from anywhere).
import { execFile, execFileSync, type ChildProcess } from 'node:child_process';
import { spawnOwned } from './reaper.js';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';

const pexec = promisify(execFile);

export interface DockerEnv {
  /** unix:///…/docker.sock — set DOCKER_HOST to this for the docker CLI. */
  dockerHost: string;
  /** 127.0.0.1:<port> */
  registry: string;
  /** Starts one more registry, empty (none of the blobs pushed to the others), stopped with the rest: 127.0.0.1:<port>. */
  freshRegistry(): Promise<string>;
  /** e.g. meshdemo-test/node-base:20 (present in the private daemon). */
  baseImage: string;
  /** How long the parts took to come up. */
  timings: { dockerdMs: number; registryMs: number; baseImageMs: number };
  /** Runs the docker CLI against the private daemon. */
  docker(args: string[], opts?: { timeoutMs?: number }): Promise<{ stdout: string; stderr: string }>;
  /** The temp dir holding everything (logs: dockerd.log, registry.log, registry-N.log). */
  dir: string;
  stop(): Promise<void>;
}

function onPath(bin: string): string | undefined {
  const dirs = (process.env.PATH ?? '').split(path.delimiter).concat(['/usr/sbin', '/usr/bin', '/sbin', '/bin']);
  for (const d of dirs) {
    const p = path.join(d, bin);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Why a private Docker environment cannot be started here, or undefined when it can. */
export function dockerUnavailableReason(): string | undefined {
  if (process.platform !== 'linux') return 'needs Linux';
  if (process.getuid?.() !== 0) return 'dockerd needs root';
  for (const bin of ['docker', 'dockerd', 'docker-registry', 'ldd', 'tar']) {
    if (!onPath(bin)) return `${bin} is not installed (apt-get install docker.io docker-registry, or run test/setup.sh)`;
  }
  return undefined;
}

export function dockerAvailable(): boolean {
  return dockerUnavailableReason() === undefined;
}

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function tail(file: string, lines = 30): string {
  try {
    return fs.readFileSync(file, 'utf8').split('\n').slice(-lines).join('\n');
  } catch {
    return '';
  }
}

async function waitFor(what: string, child: ChildProcess, log: string, probe: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`${what} exited (${child.exitCode ?? child.signalCode}) before it was ready:\n${tail(log)}`);
    }
    if (await probe().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what} not ready within ${timeoutMs} ms:\n${tail(log)}`);
    await sleep(200);
  }
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const t = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(t);
      resolve(true);
    });
  });
}

async function stopChild(child: ChildProcess | undefined, graceMs: number): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  child.kill('SIGTERM');
  if (!(await waitExit(child, graceMs))) {
    child.kill('SIGKILL');
    await waitExit(child, 5000);
  }
}

/** The files of a root filesystem that runs `node`: the binary, the libraries ldd lists, the loader. */
function nodeRootfsFiles(nodeBin: string): Array<{ from: string; to: string }> {
  const files = [{ from: nodeBin, to: '/usr/bin/node' }];
  const out = execFileSync('ldd', [nodeBin], { encoding: 'utf8' });
  for (const line of out.split('\n')) {
    // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x…)"  or  "/lib64/ld-linux-x86-64.so.2 (0x…)"
    const m = /=>\s*(\/\S+)/.exec(line) ?? /^\s*(\/\S+)\s+\(/.exec(line);
    if (m) files.push({ from: m[1], to: m[1] });
  }
  return files;
}

async function importNodeBase(dir: string, tag: string, docker: DockerEnv['docker']): Promise<void> {
  const rootfs = path.join(dir, 'rootfs');
  for (const f of nodeRootfsFiles(process.execPath)) {
    const target = path.join(rootfs, f.to);
    fs.mkdirSync(path.dirname(target), { recursive: true });
    fs.copyFileSync(fs.realpathSync(f.from), target);
    fs.chmodSync(target, 0o755);
  }
  fs.mkdirSync(path.join(rootfs, 'tmp'), { recursive: true });
  fs.chmodSync(path.join(rootfs, 'tmp'), 0o1777);
  fs.mkdirSync(path.join(rootfs, 'etc'), { recursive: true });
  fs.writeFileSync(path.join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/false\nnode:x:1000:1000:node:/app:/bin/false\n');
  fs.writeFileSync(path.join(rootfs, 'etc/group'), 'root:x:0:\nnode:x:1000:\n');
  const tarball = path.join(dir, 'node-base.tar');
  await pexec('tar', ['--numeric-owner', '--owner=0', '--group=0', '-C', rootfs, '-cf', tarball, '.']);
  await docker(['import', '--change', 'ENV PATH=/usr/local/bin:/usr/bin:/bin', '--change', 'CMD ["node"]', tarball, tag], { timeoutMs: 180_000 });
  fs.rmSync(rootfs, { recursive: true, force: true });
  fs.rmSync(tarball, { force: true });
}

export async function startDockerEnv(opts: { baseImage?: string } = {}): Promise<DockerEnv> {
  const reason = dockerUnavailableReason();
  if (reason) throw new Error(`cannot start a private Docker environment: ${reason}`);
  // short path: unix socket paths are limited to 108 bytes
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mdd-'));
  const sock = path.join(dir, 'docker.sock');
  const dockerHost = `unix://${sock}`;
  const dockerdLog = path.join(dir, 'dockerd.log');
  const namespace = `meshdemo-test-${path.basename(dir).slice(4).toLowerCase()}`;
  let dockerd: ChildProcess | undefined;
  const registries: ChildProcess[] = [];

  /** docker-registry with its own storage under `dir/<name>`, on a free loopback port; answers `127.0.0.1:<port>`. */
  const startRegistry = async (name: string): Promise<string> => {
    const port = await freePort();
    const storage = path.join(dir, name);
    fs.mkdirSync(storage, { recursive: true });
    const config = path.join(dir, `${name}.yml`);
    fs.writeFileSync(
      config,
      [
        'version: 0.1',
        'log:',
        '  level: warn',
        'storage:',
        '  filesystem:',
        `    rootdirectory: ${storage}`,
        '  delete:',
        '    enabled: true',
        'http:',
        `  addr: 127.0.0.1:${port}`,
        '',
      ].join('\n'),
    );
    const logFile = path.join(dir, `${name}.log`);
    const rlog = fs.openSync(logFile, 'a');
    const child = spawnOwned('docker-registry', ['serve', config], { stdio: ['ignore', rlog, rlog] });
    registries.push(child);
    fs.closeSync(rlog);
    await waitFor('docker-registry', child, logFile, async () => {
      const res = await fetch(`http://127.0.0.1:${port}/v2/`, { signal: AbortSignal.timeout(2000) });
      return res.status === 200;
    }, 30_000);
    return `127.0.0.1:${port}`;
  };

  const docker: DockerEnv['docker'] = async (args, o = {}) => {
    const { stdout, stderr } = await pexec('docker', args, {
      env: { ...process.env, DOCKER_HOST: dockerHost },
      timeout: o.timeoutMs ?? 120_000,
      maxBuffer: 64 * 1024 * 1024,
    });
    return { stdout, stderr };
  };

  let stopped = false;
  const stop = async () => {
    if (stopped) return;
    stopped = true;
    if (dockerd && dockerd.exitCode === null) {
      try {
        const { stdout } = await docker(['ps', '-aq'], { timeoutMs: 30_000 });
        const ids = stdout.split('\n').filter(Boolean);
        if (ids.length) await docker(['rm', '-f', ...ids], { timeoutMs: 60_000 });
      } catch {
        // the daemon is going away anyway
      }
    }
    for (const child of registries) await stopChild(child, 5000);
    await stopChild(dockerd, 20_000);
    // anything dockerd left mounted under the temp dir (overlay layers, shm) must go before rm -rf
    try {
      const mounts = fs
        .readFileSync('/proc/self/mounts', 'utf8')
        .split('\n')
        .map((l) => l.split(' ')[1]?.replace(/\\040/g, ' '))
        .filter((m): m is string => !!m && (m === dir || m.startsWith(dir + '/')))
        .sort((a, b) => b.length - a.length);
      for (const m of mounts) {
        try {
          execFileSync('umount', ['-l', m], { stdio: 'ignore' });
        } catch {
          // already gone
        }
      }
    } catch {
      // no /proc
    }
    try {
      execFileSync('rm', ['-rf', dir], { stdio: 'ignore' });
    } catch {
      // best effort
    }
  };

  try {
    const t0 = Date.now();
    const dlog = fs.openSync(dockerdLog, 'a');
    // own process groups, killed when this test process exits or dies (test/support/reaper.ts)
    dockerd = spawnOwned(
      'dockerd',
      [
        '--host', dockerHost,
        '--data-root', path.join(dir, 'data'),
        '--exec-root', path.join(dir, 'exec'),
        '--pidfile', path.join(dir, 'dockerd.pid'),
        '--containerd-namespace', namespace,
        '--containerd-plugins-namespace', `${namespace}-plugins`,
        '--bridge', 'none',
        '--iptables=false',
        '--ip-masq=false',
        '--userland-proxy=false',
        '--log-level', 'warn',
      ],
      {
        stdio: ['ignore', dlog, dlog],
        env: {
          ...process.env,
          DOCKER_HOST: dockerHost,
          // any pull from a non-loopback registry fails here, at once, on loopback
          HTTP_PROXY: 'http://127.0.0.1:9',
          HTTPS_PROXY: 'http://127.0.0.1:9',
          NO_PROXY: '127.0.0.1,localhost,::1',
          http_proxy: 'http://127.0.0.1:9',
          https_proxy: 'http://127.0.0.1:9',
          no_proxy: '127.0.0.1,localhost,::1',
        },
      },
    );
    fs.closeSync(dlog);
    await waitFor('dockerd', dockerd, dockerdLog, async () => {
      await docker(['version', '--format', '{{.Server.Version}}'], { timeoutMs: 5000 });
      return true;
    }, 90_000);
    const t1 = Date.now();

    const registry = await startRegistry('registry');
    const t2 = Date.now();

    const baseImage = opts.baseImage ?? 'meshdemo-test/node-base:20';
    await importNodeBase(dir, baseImage, docker);
    const t3 = Date.now();

    return {
      dockerHost,
      registry,
      freshRegistry: () => startRegistry(`registry-${registries.length + 1}`),
      baseImage,
      timings: { dockerdMs: t1 - t0, registryMs: t2 - t1, baseImageMs: t3 - t2 },
      docker,
      dir,
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}
