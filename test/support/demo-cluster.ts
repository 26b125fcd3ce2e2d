// One demo cluster per suite: a temporary directory, a REAL control plane (control-plane.ts), a simulated node
// (node-simulator.ts), a release-shaped Istio archive (release-archive.ts) served by a REAL local release server
// (release-server.ts), a private dockerd and registry (docker-env.ts) when asked — and meshdemo already pointed at
// that cluster and a cache dir of its own. The parts start side by side (the control plane, the archive and the
// Docker environment do not wait for each other) and stop together.
//
//   describe('…', { skip: skipUnless('control-plane') }, () => {
//     const demo = withDemoCluster({ name: 'istio', release: 'server' });
//     it('…', async () => {
//       const r = await demo.meshdemo(['up', '--no-app', '--yes', '--istio-mirror', demo.server.url]);
//       assert.equal((await demo.api('/api/v1/namespaces/istio-system')).status, 200);
//     });
//   });
import { after, before } from 'node:test';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runMeshdemo, type CliResult } from './cli.js';
import { kubeJson, startControlPlane, type ControlPlane, type StartControlPlaneOptions } from './control-plane.js';
import { startDockerEnv, type DockerEnv } from './docker-env.js';
import { startNodeSimulator, type NodeSimulator, type NodeSimulatorOptions } from './node-simulator.js';
import { buildReleaseArchive, DEFAULT_VERSION, type ReleaseArchive } from './release-archive.js';
import { startReleaseServer, type ReleaseServer } from './release-server.js';

export interface DemoClusterOptions {
  /** The temporary directory is `<os tmpdir>/meshdemo-<name>-XXXXXX`. */
  name: string;
  /** The control plane's options (default: with the controller manager); false: none — meshdemo then gets a kubeconfig that does not exist. */
  controlPlane?: StartControlPlaneOptions | false;
  /**
   * The simulated node's options (default: one node with its defaults when the controller manager runs, none
   * without it); false: no node. A function is called once the temporary directory exists (to put an image
   * store's files there, or to start a kubelet stand-in first).
   */
  node?: NodeSimulatorOptions | false | ((tmp: string) => NodeSimulatorOptions | Promise<NodeSimulatorOptions>);
  /** 'archive': a release archive built in `<tmp>/release`; 'server': also served as `<version>/<name>` by a release server. Default: neither. */
  release?: 'archive' | 'server' | false;
  /** More files the release server serves (path → file or bytes), beside the archive. */
  assets?: Record<string, Buffer | string>;
  /** A private dockerd and registry; meshdemo runs with its DOCKER_HOST. */
  docker?: boolean;
  /** What every `meshdemo()` run gets after `--kubeconfig`/`--cache-dir` (e.g. `--timeout 3m`, `--json`), its environment and its time limit. */
  meshdemo?: {
    args?: string[];
    env?: Record<string, string | undefined> | ((demo: DemoCluster) => Record<string, string | undefined>);
    timeoutMs?: number;
  };
}

export type MeshdemoOptions = NonNullable<Parameters<typeof runMeshdemo>[1]> & {
  /** Instead of the demo cluster's kubeconfig. */
  kubeconfig?: string;
  /** Instead of `<tmp>/cache`. */
  cacheDir?: string;
};

export interface DemoCluster {
  /** The temporary directory (removed by stop()). */
  readonly tmp: string;
  /** `<tmp>/cache`, meshdemo's `--cache-dir`. */
  readonly cache: string;
  /** The control plane's kubeconfig, or a path in tmp that does not exist (no control plane). */
  readonly kubeconfig: string;
  readonly cp: ControlPlane;
  readonly sim: NodeSimulator;
  readonly archive: ReleaseArchive;
  readonly server: ReleaseServer;
  readonly docker: DockerEnv;
  /** meshdemo run as a user runs it (cli.ts runMeshdemo), with `--kubeconfig <kubeconfig> --cache-dir <cache>` and the suite's defaults. */
  meshdemo(args: string[], opts?: MeshdemoOptions): Promise<CliResult>;
  /** A JSON request to the API server as admin (control-plane.ts kubeJson). */
  api(path: string, method?: string, body?: unknown, contentType?: string): Promise<{ status: number; body: any }>;
  /** A fresh control plane and node in place of the current ones (after a test that may have left objects behind). */
  restartCluster(): Promise<void>;
  /** Stops everything started and removes tmp. Idempotent. */
  stop(): Promise<void>;
}

interface Parts {
  tmp?: string;
  cp?: ControlPlane;
  sim?: NodeSimulator;
  archive?: ReleaseArchive;
  server?: ReleaseServer;
  docker?: DockerEnv;
}

/** The first rejection of settled promises, thrown once all have settled (so nothing is left starting unseen). */
async function allStarted(promises: Array<Promise<unknown> | undefined>): Promise<void> {
  const failed = (await Promise.allSettled(promises)).find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) throw failed.reason;
}

function demoCluster(opts: DemoClusterOptions, parts: Parts): { demo: DemoCluster; start(): Promise<void> } {
  const part = <K extends keyof Parts>(key: K, option: string): NonNullable<Parts[K]> => {
    const value = parts[key];
    if (value === undefined) throw new Error(`demo cluster "${opts.name}": no ${key} (not started yet, or not asked for: ${option})`);
    return value as NonNullable<Parts[K]>;
  };
  const nodeOptions = async (): Promise<NodeSimulatorOptions | undefined> => {
    const withKcm = opts.controlPlane !== false && opts.controlPlane?.controllerManager !== false;
    if (opts.node === false || (opts.node === undefined && !withKcm)) return undefined;
    return typeof opts.node === 'function' ? opts.node(part('tmp', 'start')) : (opts.node ?? {});
  };
  const startCluster = async () => {
    if (opts.controlPlane === false) return;
    const node = await nodeOptions();
    parts.cp = await startControlPlane(opts.controlPlane ?? {});
    if (node) parts.sim = await startNodeSimulator(parts.cp.kubeconfigPath, node);
  };
  const stopCluster = async () => {
    await parts.sim?.stop();
    await parts.cp?.stop();
    parts.sim = undefined;
    parts.cp = undefined;
  };
  const startRelease = async () => {
    if (!opts.release) return;
    const archive = (parts.archive = await buildReleaseArchive({ outDir: path.join(part('tmp', 'start'), 'release') }));
    if (opts.release === 'server') parts.server = await startReleaseServer({ [`${DEFAULT_VERSION}/${archive.name}`]: archive.path, ...opts.assets });
  };
  const startDocker = async () => {
    if (opts.docker) parts.docker = await startDockerEnv();
  };
  let stopping: Promise<void> | undefined;

  const demo = {
    get tmp() {
      return part('tmp', 'start');
    },
    get cache() {
      return path.join(demo.tmp, 'cache');
    },
    get kubeconfig() {
      return opts.controlPlane === false ? path.join(demo.tmp, 'no-such-kubeconfig') : part('cp', 'controlPlane').kubeconfigPath;
    },
    get cp() {
      return part('cp', 'controlPlane');
    },
    get sim() {
      return part('sim', 'node');
    },
    get archive() {
      return part('archive', "release: 'archive'");
    },
    get server() {
      return part('server', "release: 'server'");
    },
    get docker() {
      return part('docker', 'docker: true');
    },
    meshdemo(args: string[], run: MeshdemoOptions = {}) {
      const { kubeconfig = demo.kubeconfig, cacheDir = demo.cache, env, ...rest } = run;
      const defaults = opts.meshdemo ?? {};
      const suiteEnv = typeof defaults.env === 'function' ? defaults.env(demo) : defaults.env;
      return runMeshdemo(['--kubeconfig', kubeconfig, '--cache-dir', cacheDir, ...(defaults.args ?? []), ...args], {
        timeoutMs: defaults.timeoutMs,
        ...rest,
        env: { ...(parts.docker ? { DOCKER_HOST: parts.docker.dockerHost } : {}), ...suiteEnv, ...env },
      });
    },
    api(p: string, method = 'GET', body?: unknown, contentType?: string) {
      return kubeJson(demo.cp, p, { method, body, contentType });
    },
    async restartCluster() {
      await stopCluster();
      await startCluster();
    },
    stop() {
      stopping ??= (async () => {
        await allStarted([stopCluster(), parts.server?.close(), parts.docker?.stop()]);
        if (parts.tmp) fs.rmSync(parts.tmp, { recursive: true, force: true });
      })();
      return stopping;
    },
  };
  const start = async () => {
    parts.tmp = fs.mkdtempSync(path.join(os.tmpdir(), `meshdemo-${opts.name}-`));
    try {
      await allStarted([startCluster(), startRelease(), startDocker()]);
    } catch (err) {
      await demo.stop();
      throw err;
    }
  };
  return { demo, start };
}

/** Starts a demo cluster now; the caller stops it (stop()), also when a test fails. */
export async function startDemoCluster(opts: DemoClusterOptions): Promise<DemoCluster> {
  const { demo, start } = demoCluster(opts, {});
  await start();
  return demo;
}

/**
 * A demo cluster for the enclosing describe(): started in a before() hook and stopped in an after() hook, both
 * registered here (so a suite's own before() hooks, registered after this call, run once it is up). Its parts are
 * read through the handle, which throws if one is asked for before it started or that the options left out.
 */
export function withDemoCluster(opts: DemoClusterOptions): DemoCluster {
  const { demo, start } = demoCluster(opts, {});
  before(start);
  after(() => demo.stop());
  return demo;
}
