import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { DownloadError, ExternalCommandError, InterruptedError, PreflightError, ReadinessTimeoutError } from '../core/errors.js';
import { clusterCaSha256, definesContext, kubeconfigKindWrites, kubeconfigPaths } from '../kube/kubeconfig.js';
import type { Context, Step } from '../record/context.js';
import * as docker from '../exec/docker.js';
import { kindClusters, kindCreateCluster, kindExportKubeconfig, kindVersion } from '../exec/kind.js';
import { cachedKindDistrust, cachedKindManifest, cachedKindPath, KIND_MAX_BYTES, kindOnPath, kindSha256 } from '../kind/binary.js';
import { kindConfigYaml, localPortMappings, type PortMapping } from '../kind/config.js';
import { ipv6NetworkMayFail, kindNetworkName } from '../kind/network.js';
import { KIND_VERSION, kindAssetName, kindDownloadUrl, NODE_IMAGE, NODE_KUBERNETES_VERSION } from '../kind/pins.js';
import { lockLocalCluster, readState, removeState, requireMapped, writeState } from '../kind/state.js';
import { localClusterConfigPath } from '../core/cache-layout.js';
import { allDashboardNodePorts, type LocalCluster, type UpSettings } from '../settings.js';

type Settings = Pick<UpSettings, 'local' | 'nodePorts' | 'gatewayNodePort' | 'kindMirror' | 'kindSha256'>;

function local(ctx: Context<Settings>): LocalCluster {
  if (!ctx.settings.local) throw new Error('local-cluster steps run only for a local cluster');
  return ctx.settings.local;
}

/**
 * Before anything is created: Docker answers, and is a Docker kind v0.17.0 can run the pinned 1.19 image on.
 * Known issues (kind's site/content/docs/user/known-issues.md and rootless.md at v0.17.0, and its source):
 * - rootless Docker: kind v0.17 refuses Kubernetes < 1.22 with a rootless provider
 *   (pkg/cluster/internal/kubeadm/config.go: "not compatible with rootless provider") → refused here;
 * - Windows containers cannot run kind → refused;
 * - cgroup v2 hosts (and Docker Desktop ≥ 4.3, which uses cgroup v2) work only with Kubernetes ≥ 1.19: 1.19.16 is fine;
 * - Docker Desktop cannot reach the node's IP: every printed URL goes through a 127.0.0.1 port mapping anyway;
 * - arm64 hosts → refused: the node images are multi-arch, but Istio 1.8.4's images are amd64 only.
 */
export const localPreflight: Step<Settings> = {
  id: 'local-preflight',
  title: 'Preflight: Docker for the local kind cluster',
  readOnly: true,
  async check() {
    return { satisfied: false, detail: 'always runs (read-only)' };
  },
  async run(ctx) {
    let version: docker.DockerVersion;
    try {
      version = await docker.dockerVersion({ signal: ctx.signal });
    } catch (err) {
      if (!(err instanceof PreflightError)) throw err;
      throw new PreflightError(`${err.message}; meshdemo creates its local kind cluster in Docker`, {
        hint: 'start Docker (e.g. `sudo systemctl start docker`, or start Docker Desktop), check DOCKER_HOST / `docker context`, or pass --kubeconfig/--context to use an existing cluster',
        details: err.details,
      });
    }
    const banner = await docker.dockerCliBanner({ signal: ctx.signal });
    if (!banner.startsWith('Docker version')) {
      throw new PreflightError(`\`docker\` is not Docker (docker -v: "${banner}"), so kind v${KIND_VERSION} would use its experimental Podman provider instead, which meshdemo does not support`, {
        hint: 'install Docker Engine or Docker Desktop (and put its docker first on PATH), or pass --context for an existing Kubernetes 1.16–1.19 cluster',
      });
    }
    const breaking = docker.kindLoadBreakingDocker(version.server);
    if (breaking) throw new PreflightError(breaking, { hint: 'upgrade Docker to 25.0.1 or later (or pass --context for an existing cluster)' });
    const info = await docker.dockerInfo({ signal: ctx.signal });
    if (info.osType && info.osType !== 'linux') {
      throw new PreflightError(`Docker runs ${info.osType} containers; kind needs Linux containers`, { hint: 'switch Docker Desktop to Linux containers, or pass --kubeconfig/--context to use an existing cluster' });
    }
    if (info.rootless) {
      throw new PreflightError(`rootless Docker cannot run Kubernetes ${NODE_KUBERNETES_VERSION} with kind v${KIND_VERSION} (kind supports rootless only for Kubernetes 1.22+, which Istio 1.8 does not support)`, {
        hint: 'use a rootful Docker daemon (DOCKER_HOST), or pass --kubeconfig/--context to use an existing Kubernetes 1.16–1.19 cluster',
      });
    }
    // Istio 1.8.4's and the addons' images are amd64 only (arm64 images came with Istio 1.15), and an amd64 kind
    // node does not start under emulation on arm64 hosts (kubernetes-sigs/kind#2632): refused before anything happens
    if (/^(aarch64|arm64)$/i.test(info.architecture)) {
      throw new PreflightError(`Docker runs on ${info.architecture}: Istio 1.8.4's images exist for amd64 only, and kind v${KIND_VERSION} cannot run an amd64 node under emulation`, {
        hint: 'run meshdemo on an amd64 machine, or pass --context for an existing Kubernetes 1.16–1.19 cluster with amd64 nodes',
      });
    }
    if (info.cgroupVersion === '2') ctx.log.debug(`cgroup v2 host: supported for Kubernetes ≥ 1.19 (kind known issues), the node image is ${NODE_KUBERNETES_VERSION}`);
    if (/docker desktop/i.test(info.operatingSystem)) ctx.log.info('Docker Desktop: the node container is not reachable by its IP; URLs use 127.0.0.1 and the mapped ports');
    return `docker ${version.server} (${info.operatingSystem || 'unknown OS'}, cgroup v${info.cgroupVersion || '?'}, ${info.architecture || process.arch})`;
  },
};

async function supportedKindOnPath(ctx: Context<Settings>): Promise<string | undefined> {
  const found = kindOnPath();
  if (!found) return undefined;
  const v = await kindVersion(found, { signal: ctx.signal });
  if (v === KIND_VERSION) return found;
  ctx.log.note(`${found} is kind ${v ? `v${v}` : '(version unknown)'}, not v${KIND_VERSION} whose node image meshdemo pins: using meshdemo's own kind v${KIND_VERSION}`);
  return undefined;
}

/** meshdemo's cached kind, if it is still the file whose download was verified (and of the pinned sha256). */
async function cachedKind(ctx: Context<Settings>): Promise<string | undefined> {
  const distrust = cachedKindDistrust(ctx.options.cacheDir, ctx.settings.kindSha256);
  if (distrust === undefined) return cachedKindPath(ctx.options.cacheDir);
  if (fs.existsSync(cachedKindPath(ctx.options.cacheDir))) ctx.log.debug(`cached kind not used: ${distrust}`);
  return undefined;
}

/** kind from PATH when it is v0.17.0, else the verified download in meshdemo's cache. */
export const kindDownload: Step<Settings> = {
  id: 'kind-download',
  title: `Find or download kind v${KIND_VERSION}`,
  async check(ctx) {
    const l = local(ctx);
    l.kind ??= (await supportedKindOnPath(ctx)) ?? (await cachedKind(ctx));
    if (l.kind) return { satisfied: true, detail: `kind v${KIND_VERSION} at ${l.kind}` };
    return { satisfied: false, detail: `download ${kindDownloadUrl(ctx.settings.kindMirror)} into ${path.dirname(cachedKindPath(ctx.options.cacheDir))}` };
  },
  async run(ctx) {
    const { downloadVerified, fetchText, parseSha256File } = await import('../download/download.js');
    const asset = kindAssetName();
    const url = kindDownloadUrl(ctx.settings.kindMirror, asset);
    if (new URL(url).protocol === 'http:' && !ctx.settings.kindSha256) {
      ctx.log.warn('--kind-mirror uses plain http and no --kind-sha256 is pinned: the checksum comes from the same unauthenticated server as kind, so it cannot detect tampering on the way, and kind runs right after; pin --kind-sha256 or use an https mirror');
    }
    const expected = ctx.settings.kindSha256 ?? parseSha256File(await fetchText(`${url}.sha256sum`, { signal: ctx.signal }), asset);
    const dest = cachedKindPath(ctx.options.cacheDir);
    const { makeDirs, writeManifest } = await import('../download/cache-files.js');
    await makeDirs(path.dirname(dest));
    fs.rmSync(cachedKindManifest(ctx.options.cacheDir), { force: true });
    // downloaded under another name, and made executable only after the checksum matched
    const download = `${dest}.download`;
    const result = await downloadVerified({
      url,
      dest: download,
      expectedSha256: expected,
      maxBytes: KIND_MAX_BYTES,
      signal: ctx.signal,
      onLockWait: (pid) => ctx.log.info(`another meshdemo (pid ${pid}) is downloading kind into this cache: waiting for it`),
      onProgress: (p) => ctx.log.progress(p.received, p.total),
      onRetry: (r) => ctx.log.warn(`download attempt ${r.attempt} failed (${r.reason}); retrying in ${Math.round(r.delayMs)}ms`),
    });
    fs.chmodSync(download, 0o755);
    fs.renameSync(download, dest);
    const v = await kindVersion(dest, { signal: ctx.signal });
    if (v !== KIND_VERSION) {
      fs.rmSync(dest, { force: true });
      throw new DownloadError(`${url} is kind ${v ? `v${v}` : '(no version)'}, not v${KIND_VERSION}`, { hint: 'check --kind-mirror: it must serve the kind releases as GitHub does' });
    }
    await writeManifest(cachedKindManifest(ctx.options.cacheDir), { source: result.sha256, files: { [path.basename(dest)]: result.sha256 } });
    local(ctx).kind = dest;
    return `kind v${KIND_VERSION} (${(result.bytes / 1048576).toFixed(1)} MB${result.resumed ? ', resumed' : ''}) from ${url}, sha256 verified`;
  },
};

function portFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

/** What tells meshdemo's cluster from one created again under its name outside meshdemo (down must not delete that). */
function recordCa(cacheDir: string, name: string, context: string, kubeconfig: string): void {
  const state = readState(cacheDir, name);
  const caSha256 = clusterCaSha256([kubeconfig], context);
  if (state && caSha256 && !state.caSha256) writeState(cacheDir, { ...state, caSha256 });
}

/**
 * kind's `--wait` only warns when the control plane is not Ready in time and still exits 0
 * (pkg/cluster/internal/create/actions/waitforready/waitforready.go at v0.17.0: " • WARNING: Timed out waiting for
 * Ready ⚠️", `return nil`), so meshdemo waits for every node's Ready condition itself, up to --timeout.
 */
async function waitForReadyNodes(ctx: Context<Settings>, name: string): Promise<void> {
  const deadline = Date.now() + ctx.options.timeoutMs;
  const kube = await ctx.kube();
  for (;;) {
    const nodes = await kube.list('v1', 'Node');
    const ready = (n: (typeof nodes)[number]) => (n.status?.conditions ?? []).find((c: any) => c.type === 'Ready');
    const notReady = nodes.filter((n) => ready(n)?.status !== 'True');
    if (nodes.length && !notReady.length) return;
    if (Date.now() >= deadline) {
      throw new ReadinessTimeoutError(`the node(s) of kind cluster "${name}" are not Ready${nodes.length ? `: ${notReady.map((n) => n.metadata.name).join(', ')}` : ' (none registered)'}`, {
        hint: `see why below (kubectl describe node --context kind-${name}); raise --timeout, or meshdemo down and up again to create it afresh`,
        details: notReady.map((n) => `node ${n.metadata.name}: Ready=${ready(n)?.status ?? 'Unknown'}${ready(n)?.reason ? ` ${ready(n).reason}` : ''}${ready(n)?.message ? ` (${ready(n).message})` : ''}`),
      });
    }
    await sleep(1000, undefined, { signal: ctx.signal }).catch(() => {
      throw new InterruptedError();
    });
  }
}

export const localCluster: Step<Settings> = {
  id: 'local-cluster',
  title: 'Create the local kind cluster',
  async check(ctx) {
    const l = local(ctx);
    if (l.kind) l.exists = (await kindClusters(l.kind, { signal: ctx.signal })).includes(l.name);
    else l.exists = false;
    if (!l.exists) {
      // plan works without Docker; up's local-preflight refuses before anything when Docker does not answer
      const network = await kindNetworkToCreate(ctx).catch((err: unknown) => {
        if (err instanceof PreflightError || err instanceof ExternalCommandError) return undefined;
        throw err;
      });
      const first = network ? `, after creating docker network "${network.name}" IPv4-only (Docker ${network.dockerVersion})` : '';
      return { satisfied: false, detail: `${l.reason}: kind create cluster --name ${l.name} (${NODE_IMAGE}), context ${l.context}${first}` };
    }
    if (!definesContext(kubeconfigPaths(ctx.options.kubeconfig).paths, l.context)) {
      return { satisfied: false, detail: `kind cluster "${l.name}" exists, but the kubeconfig has no context ${l.context}: kind export kubeconfig --name ${l.name}` };
    }
    const state = readState(ctx.options.cacheDir, l.name);
    if (state) {
      requireMapped(
        state,
        localPortMappings({ dashboardNodePorts: allDashboardNodePorts(ctx.settings.nodePorts), gatewayHttp2NodePort: ctx.settings.gatewayNodePort }),
        () => 'pass the ports it maps (--node-port/--gateway-node-port as when it was created), or create it again with these: meshdemo down, then meshdemo up',
      );
    }
    return {
      satisfied: true,
      detail: state
        ? `kind cluster "${l.name}" exists (created by meshdemo ${state.createdAt}), ports ${state.mappings.map((m) => `127.0.0.1:${m.hostPort}`).join(', ')}`
        : `kind cluster "${l.name}" exists (not created by meshdemo: its port mappings are unknown, and down never deletes it)`,
    };
  },
  async run(ctx) {
    const l = local(ctx);
    if (!l.kind) throw new ExternalCommandError('no kind binary was resolved before creating the cluster', { hint: 'run meshdemo up again' });
    const lock = await lockLocalCluster(ctx.options.cacheDir, l.name, {
      waitMs: ctx.options.timeoutMs,
      signal: ctx.signal,
      onWait: (pid) => ctx.log.info(`waiting for another meshdemo run (pid ${pid}) that is creating or deleting kind cluster "${l.name}"`),
    });
    try {
      // that run may have created or deleted it meanwhile
      if (lock.waited) l.exists = (await kindClusters(l.kind, { signal: ctx.signal })).includes(l.name);
      return await createOrReuse(ctx, l, l.kind);
    } finally {
      lock.release();
    }
  },
};

/**
 * The network kind would create with IPv6 when none exists, on a Docker where that fails without ip6tables NAT
 * (src/kind/network.ts); undefined when kind may go ahead (an older Docker, or the network exists: kind reuses it).
 */
async function kindNetworkToCreate(ctx: Context<Settings>): Promise<{ name: string; dockerVersion: string } | undefined> {
  const { server } = await docker.dockerVersion({ signal: ctx.signal });
  if (!ipv6NetworkMayFail(server)) return undefined;
  const name = kindNetworkName();
  return (await docker.networkIds(name, { signal: ctx.signal })).length ? undefined : { name, dockerVersion: server };
}

/** The kind network, IPv4-only as kind creates it without IPv6 (same driver and options): kind then reuses it. */
async function createKindNetwork(ctx: Context<Settings>): Promise<void> {
  const network = await kindNetworkToCreate(ctx);
  if (!network) return;
  const onLine = (line: string) => ctx.log.debug(line);
  let made: 'created' | 'exists';
  try {
    made = await docker.createIPv4BridgeNetwork(network.name, await docker.bridgeMtu({ signal: ctx.signal }), { signal: ctx.signal, onLine });
  } catch (err) {
    if (!(err instanceof ExternalCommandError)) throw err;
    throw new ExternalCommandError(`creating the docker network "${network.name}" for kind (IPv4-only) failed`, {
      hint: `see docker's message below; kind v${KIND_VERSION} cannot create it either on Docker ${network.dockerVersion} without ip6tables NAT — fix what docker reports, then run meshdemo up again`,
      details: err.details,
      cause: err,
    });
  }
  if (made === 'created') {
    ctx.log.info(
      `created docker network "${network.name}" IPv4-only, as kind v${KIND_VERSION} creates it without IPv6: its IPv6 network fails on Docker ${network.dockerVersion} hosts without ip6tables NAT (kubernetes-sigs/kind#3677); kind reuses it, and it stays after meshdemo down, as kind leaves it`,
    );
  }
}

/** Under the machine-local lock (src/kind/state.ts lockLocalCluster): from before the state file is written until the cluster exists. */
async function createOrReuse(ctx: Context<Settings>, l: LocalCluster, kind: string): Promise<string> {
  if (l.exists) return exportContextAgain(ctx, l, kind);
  const mappings = localPortMappings({ dashboardNodePorts: allDashboardNodePorts(ctx.settings.nodePorts), gatewayHttp2NodePort: ctx.settings.gatewayNodePort });
  await requirePortsFree(mappings);
  await createKindNetwork(ctx);
  const { configFile, kubeconfig } = recordBeforeCreating(ctx, l, kind, mappings);
  ctx.log.info(`kind create cluster --name ${l.name} --image ${NODE_IMAGE} --config ${configFile}`);
  try {
    await kindCreateCluster(
      kind,
      { name: l.name, image: NODE_IMAGE, configFile, kubeconfig: ctx.options.kubeconfig, waitSeconds: Math.max(1, Math.round(ctx.options.timeoutMs / 1000)) },
      { signal: ctx.signal, onLine: (line) => ctx.log.debug(line) },
    );
  } catch (err) {
    if (!(err instanceof ExternalCommandError)) throw err;
    throw await createFailure(ctx, l, kind, err);
  }
  l.exists = true;
  recordCa(ctx.options.cacheDir, l.name, l.context, kubeconfig);
  ctx.log.info(`kind merged context "${l.context}" into ${kubeconfig} and made it the current context`);
  await waitForReadyNodes(ctx, l.name);
  return `kind cluster "${l.name}" (Kubernetes ${NODE_KUBERNETES_VERSION}), context ${l.context} in ${kubeconfig}; ports ${mappings.map((m) => `${m.name} 127.0.0.1:${m.hostPort}`).join(', ')}`;
}

/** The cluster is there, its context is not (e.g. the kubeconfig was replaced): have kind write it again. */
async function exportContextAgain(ctx: Context<Settings>, l: LocalCluster, kind: string): Promise<string> {
  const kubeconfig = kubeconfigKindWrites(ctx.options.kubeconfig);
  await kindExportKubeconfig(kind, l.name, ctx.options.kubeconfig, { signal: ctx.signal, onLine: (line) => ctx.log.debug(line) });
  recordCa(ctx.options.cacheDir, l.name, l.context, kubeconfig);
  ctx.log.info(`kind merged context "${l.context}" into ${kubeconfig} and made it the current context`);
  return `kind cluster "${l.name}" already existed; context ${l.context} written again into ${kubeconfig}`;
}

async function requirePortsFree(mappings: PortMapping[]): Promise<void> {
  const busy: number[] = [];
  for (const m of mappings) if (!(await portFree(m.hostPort))) busy.push(m.hostPort);
  if (busy.length) {
    throw new PreflightError(`port(s) ${busy.join(', ')} on 127.0.0.1 are in use; the local cluster maps its dashboards and gateway there`, {
      hint: 'free them, or choose others with --node-port NAME=PORT and --gateway-node-port PORT',
    });
  }
}

/**
 * Writes kind's config file and meshdemo's state file, before kind starts, so a run killed mid-creation still
 * leaves down a record to delete by.
 */
function recordBeforeCreating(ctx: Context<Settings>, l: LocalCluster, kind: string, mappings: PortMapping[]): { configFile: string; kubeconfig: string } {
  const configFile = localClusterConfigPath(ctx.options.cacheDir, l.name);
  fs.mkdirSync(path.dirname(configFile), { recursive: true });
  fs.writeFileSync(configFile, kindConfigYaml({ name: l.name, image: NODE_IMAGE, mappings }));
  const kubeconfig = kubeconfigKindWrites(ctx.options.kubeconfig);
  writeState(ctx.options.cacheDir, {
    version: 1,
    name: l.name,
    context: l.context,
    createdAt: new Date().toISOString(),
    kindVersion: KIND_VERSION,
    kind,
    kindSha256: kindSha256(kind),
    nodeImage: NODE_IMAGE,
    kubeconfig,
    configFile,
    mappings,
  });
  return { configFile, kubeconfig };
}

/**
 * After kind create cluster failed: the error to throw, and the record dropped unless kind left the cluster behind.
 * kind deletes what it made when provisioning or an action fails, but not when writing the kubeconfig fails
 * afterwards (pkg/cluster/internal/create/create.go): such a cluster is meshdemo's, and stays recorded — as it
 * does when kind cannot even list the clusters (Docker gone): only a listing without it drops the record.
 */
async function createFailure(ctx: Context<Settings>, l: LocalCluster, kind: string, err: ExternalCommandError): Promise<Error> {
  if (err.details.some((d) => /already exist/.test(d))) {
    removeState(ctx.options.cacheDir, l.name);
    return new ExternalCommandError(`kind cluster "${l.name}" already exists, but kind get clusters did not list it`, { details: err.details, hint: `delete it with kind delete cluster --name ${l.name}, or choose another --cluster-name` });
  }
  let left: string[];
  try {
    left = await kindClusters(kind, { signal: ctx.signal });
  } catch (listErr) {
    if (!(listErr instanceof ExternalCommandError)) throw listErr;
    return new ExternalCommandError(`${err.message}; whether it left cluster "${l.name}" behind is unknown (${listErr.message})`, {
      details: [...err.details, ...listErr.details],
      hint: `meshdemo keeps its record of cluster "${l.name}": once Docker answers, run meshdemo up again (it continues on the cluster or creates it), or meshdemo down to delete it`,
    });
  }
  if (!left.includes(l.name)) {
    removeState(ctx.options.cacheDir, l.name);
    return err;
  }
  return new ExternalCommandError(`${err.message}, after it created cluster "${l.name}"`, {
    details: err.details,
    hint: `fix what kind reports, then run meshdemo up again (it continues on this cluster), or meshdemo down to delete it`,
  });
}

export const LOCAL_CLUSTER_STEPS: Step<Settings>[] = [localPreflight, kindDownload, localCluster];
