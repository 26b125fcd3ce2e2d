import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ExternalCommandError, PreflightError } from '../core/errors.js';
import { runCommand, type RunOptions, type RunResult } from './run.js';

/**
 * The Docker CLI (and the kind / minikube image loaders) as meshdemo uses them. Everything goes through
 * runCommand: argument arrays, no shell, cancellation, and ExternalCommandError with docker's last lines.
 * The daemon is whatever the user's docker CLI talks to (DOCKER_HOST, docker context); credentials stay
 * with the CLI's own config (`docker login` is the user's job) and are never read or printed here.
 */
export interface DockerCallOptions {
  signal?: AbortSignal;
  /** Each line of the tool's output (meshdemo streams it to the step's debug log). */
  onLine?: (line: string, stream: 'stdout' | 'stderr') => void;
  env?: Record<string, string | undefined>;
  timeoutMs?: number;
}

const DOCKER = 'docker';

function run(file: string, args: string[], opts: DockerCallOptions, extra: Partial<RunOptions> = {}): Promise<RunResult> {
  return runCommand(file, args, { signal: opts.signal, onLine: opts.onLine, env: opts.env, timeoutMs: opts.timeoutMs, tailLines: 20, ...extra });
}

export interface DockerVersion {
  client: string;
  server: string;
}

/**
 * `docker version`: the client is installed and its daemon answers. Anything else is a PreflightError
 * (exit 3) that says which of the two is missing.
 */
export async function dockerVersion(opts: DockerCallOptions = {}): Promise<DockerVersion> {
  let result: RunResult;
  try {
    result = await run(DOCKER, ['version', '--format', '{{.Client.Version}}|{{.Server.Version}}'], opts, { timeoutMs: opts.timeoutMs ?? 20_000 });
  } catch (err) {
    if (err instanceof PreflightError) {
      throw new PreflightError('docker is not installed or not on PATH; meshdemo builds the demo images with the Docker CLI', {
        hint: 'install Docker (or pass --skip-build with --image for each service)',
        cause: err,
      });
    }
    if (err instanceof ExternalCommandError) {
      const where = process.env.DOCKER_HOST ? ` at DOCKER_HOST=${process.env.DOCKER_HOST}` : '';
      throw new PreflightError(`the Docker daemon${where} is not reachable`, {
        hint: 'start Docker (e.g. `sudo systemctl start docker`), check DOCKER_HOST / `docker context`, or pass --skip-build with --image for each service',
        details: err.details,
        cause: err,
      });
    }
    throw err;
  }
  const [client = '', server = ''] = result.stdout.trim().split('|');
  if (!server) {
    throw new PreflightError('the Docker daemon did not report its version', { hint: 'check that `docker version` works', details: result.tail });
  }
  return { client, server };
}

/**
 * Docker 25.0.0's `docker save` writes archives that `kind load docker-image` cannot import (moby/moby#47150, fixed in
 * 25.0.1): a message for that daemon version, else undefined.
 */
export function kindLoadBreakingDocker(serverVersion: string): string | undefined {
  return serverVersion === '25.0.0' ? `Docker 25.0.0's docker save breaks kind load docker-image (moby/moby#47150)` : undefined;
}

/**
 * The first line of `docker -v`: kind v0.17.0 takes `docker` for Docker only when it starts with "Docker version"
 * (pkg/cluster/internal/providers/docker/util.go IsAvailable); Podman's docker shim prints "podman version …", and
 * kind then switches to its experimental Podman provider (pkg/cluster/provider.go DetectNodeProvider).
 */
export async function dockerCliBanner(opts: DockerCallOptions = {}): Promise<string> {
  const r = await run(DOCKER, ['-v'], { ...opts, onLine: undefined }, { timeoutMs: opts.timeoutMs ?? 20_000 });
  return r.stdout.split('\n')[0].trim();
}

/** Is this image (name:tag or id) in the daemon's local image store? Read-only. */
export async function imageExists(ref: string, opts: DockerCallOptions = {}): Promise<boolean> {
  return (await imageId(ref, opts)) !== undefined;
}

/** The local image id of `ref`, or undefined when the daemon does not have it. */
export async function imageId(ref: string, opts: DockerCallOptions = {}): Promise<string | undefined> {
  const result = await run(DOCKER, ['image', 'inspect', '--format', '{{.Id}}', ref], { ...opts, onLine: undefined }, {
    okExitCodes: [1],
    timeoutMs: opts.timeoutMs ?? 30_000,
  });
  if (result.exitCode !== 0) {
    // exit 1 is "No such image"; anything else on stderr (daemon gone) is a real failure
    if (/no such (image|object)/i.test(result.stderr)) return undefined;
    throw new ExternalCommandError(`docker image inspect ${ref} failed`, { details: result.tail, hint: 'is the Docker daemon running?' });
  }
  return result.stdout.trim() || undefined;
}

export interface BuildOptions {
  /** The context directory; ignored when contextTar is given. */
  contextDir?: string;
  /** The context as a tar, sent on stdin (`docker build -`): nothing is copied to disk first. */
  contextTar?: Uint8Array;
  /** One or more names for the result (`-t` each). */
  tags: string[];
  buildArgs?: Record<string, string>;
  labels?: Record<string, string>;
  /** `--platform linux/<arch>`: the cluster nodes' architecture, not the build machine's. */
  platform?: string;
}

/**
 * `docker build` of a prepared context. `--pull=false`: a base image that is present locally is used as is,
 * nothing is pulled unless the daemon lacks it.
 */
export async function build(b: BuildOptions, opts: DockerCallOptions = {}): Promise<void> {
  const args = ['build', '--pull=false'];
  if (b.platform) args.push('--platform', b.platform);
  for (const t of b.tags) args.push('-t', t);
  for (const [k, v] of Object.entries(b.buildArgs ?? {})) args.push('--build-arg', `${k}=${v}`);
  for (const [k, v] of Object.entries(b.labels ?? {})) args.push('--label', `${k}=${v}`);
  if (b.contextTar === undefined && b.contextDir === undefined) throw new Error('docker build needs a context');
  args.push(b.contextTar ? '-' : b.contextDir!);
  // buildx (the default builder since Docker 23) attaches provenance attestations to the image, which `kind load`
  // then cannot import from the containerd image store ("content digest … not found", kubernetes-sigs/kind#3795);
  // the legacy builder ignores this variable
  await run(DOCKER, args, { ...opts, env: { BUILDX_NO_DEFAULT_ATTESTATIONS: '1', ...opts.env } }, b.contextTar ? { input: b.contextTar } : {});
}

export async function tag(source: string, target: string, opts: DockerCallOptions = {}): Promise<void> {
  await run(DOCKER, ['tag', source, target], opts, { timeoutMs: opts.timeoutMs ?? 60_000 });
}

/** `docker push`; authentication is whatever `docker login` left in the CLI's config. */
export async function push(ref: string, opts: DockerCallOptions = {}): Promise<void> {
  await run(DOCKER, ['push', ref], opts);
}

/**
 * `docker pull --platform <platform> <ref>` (credentials: whatever `docker login` left). Docker Hub's pull limit
 * (anonymous: by address, Docker's usage docs) answers `toomanyrequests`: an error that names `docker login`.
 */
export async function pull(ref: string, platform: string | undefined, opts: DockerCallOptions = {}): Promise<void> {
  const args = ['pull'];
  if (platform) args.push('--platform', platform);
  args.push(ref);
  try {
    await run(DOCKER, args, opts);
  } catch (err) {
    if (err instanceof ExternalCommandError && err.details.some((d) => /toomanyrequests/i.test(d))) {
      throw new ExternalCommandError(`docker pull ${ref} was refused by the registry's pull rate limit (toomanyrequests)`, {
        hint: 'run `docker login` (an account gets a higher limit than anonymous pulls), or wait for the limit to reset, then re-run meshdemo up',
        details: err.details,
        cause: err,
      });
    }
    throw err;
  }
}

/**
 * kind v0.17.0 imports `docker save`'s archive into each node with `ctr images import --all-platforms`, which needs every
 * manifest the archive's index names (pkg/cluster/nodeutils/util.go LoadImageArchive). Docker's containerd image store
 * (Docker Desktop; new Docker 29 installs) saves an image's whole index while holding only the pulled platform's
 * content, or an attestation manifest it never stores: the import fails with ctr's "content digest … not found"
 * (kubernetes-sigs/kind#3795, #4066).
 */
const MISSING_CONTENT = /ctr: content digest (sha256:[0-9a-f]{64}): not found/;

const CONTAINERD_STORE = "Docker's containerd image store, kubernetes-sigs/kind#3795";

/** Is `err` kindLoad's own account of a failed fallback (which callers pass on as it is, hint included)? */
export function kindLoadFallbackFailed(err: unknown): boolean {
  return err instanceof ExternalCommandError && err.message.startsWith('kind load docker-image ') && err.message.includes(CONTAINERD_STORE);
}

/** How an image went into the nodes: kind load docker-image, or (after the failure above) one platform's archive. */
export type KindLoadWay = 'docker-image' | 'image-archive';

/**
 * `kind load docker-image <ref> --name <cluster>` (kind skips nodes that already have that image id). When kind's import
 * fails on a content digest missing from the archive, `docker save --platform <platform>` (Docker 28+) writes only the
 * nodes' platform, and `kind load image-archive` imports that.
 */
export async function kindLoad(ref: string, cluster: string, opts: DockerCallOptions & { kind?: string; platform?: string } = {}): Promise<KindLoadWay> {
  const kind = opts.kind ?? 'kind';
  let missing: string | undefined;
  try {
    await run(kind, ['load', 'docker-image', ref, '--name', cluster], opts);
    return 'docker-image';
  } catch (err) {
    missing = err instanceof ExternalCommandError ? err.details.map((d) => MISSING_CONTENT.exec(d)?.[1]).find(Boolean) : undefined;
    if (!missing || !opts.platform) throw err;
    opts.onLine?.(`kind could not import ${ref}: the archive docker save wrote lacks content digest ${missing}; saving ${opts.platform} only`, 'stderr');
  }
  const dir = await mkdtemp(path.join(os.tmpdir(), 'meshdemo-image-'));
  try {
    const archive = path.join(dir, 'image.tar');
    try {
      await run(DOCKER, ['save', '--platform', opts.platform, '-o', archive, ref], opts);
      await run(kind, ['load', 'image-archive', archive, '--name', cluster], opts);
    } catch (err) {
      if (!(err instanceof ExternalCommandError)) throw err;
      throw new ExternalCommandError(`kind load docker-image ${ref} failed: docker save's archive lacks content digest ${missing} (${CONTAINERD_STORE}), and loading ${opts.platform} alone failed too (${err.message})`, {
        hint: 'Docker 28 or later saves one platform (docker save --platform); or switch off the containerd image store ("containerd-snapshotter": false under "features" in daemon.json) and restart Docker',
        details: err.details,
        cause: err,
      });
    }
    return 'image-archive';
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** `minikube image load <ref> -p <profile>` (minikube >= 1.18). */
export async function minikubeLoad(ref: string, opts: DockerCallOptions & { profile?: string } = {}): Promise<void> {
  const args = ['image', 'load', ref];
  if (opts.profile) args.push('-p', opts.profile);
  await run('minikube', args, opts);
}

/** `minikube version --short` ("v1.25.0", cmd/minikube/cmd/version.go) as [major, minor, patch]. */
export async function minikubeVersion(opts: DockerCallOptions = {}): Promise<[number, number, number]> {
  const r = await run('minikube', ['version', '--short'], { ...opts, onLine: undefined }, { timeoutMs: opts.timeoutMs ?? 20_000 });
  const m = /v?(\d+)\.(\d+)\.(\d+)/.exec(r.stdout);
  if (!m) throw new ExternalCommandError(`minikube version --short printed no version: ${JSON.stringify(r.stdout.trim().slice(0, 80))}`, { details: r.tail });
  return [Number(m[1]), Number(m[2]), Number(m[3])];
}

/**
 * The images the minikube profile's runtime holds (`minikube image ls -p <profile>`, v1.19+: one reference per
 * line, cmd/minikube/cmd/image.go); undefined when minikube cannot list them.
 */
export async function minikubeImages(opts: DockerCallOptions & { profile?: string } = {}): Promise<string[] | undefined> {
  const args = ['image', 'ls'];
  if (opts.profile) args.push('-p', opts.profile);
  try {
    const r = await run('minikube', args, { ...opts, onLine: undefined }, { timeoutMs: opts.timeoutMs ?? 60_000 });
    return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  } catch (err) {
    if (err instanceof PreflightError || err instanceof ExternalCommandError) return undefined;
    throw err;
  }
}

/** Is `tool` runnable (`<tool> version` exits 0)? For preflight checks of kind / minikube. */
export async function toolAnswers(tool: 'kind' | 'minikube', opts: DockerCallOptions & { binary?: string } = {}): Promise<boolean> {
  try {
    await run(opts.binary ?? tool, ['version'], opts, { timeoutMs: opts.timeoutMs ?? 20_000 });
    return true;
  } catch (err) {
    if (err instanceof PreflightError || err instanceof ExternalCommandError) return false;
    throw err;
  }
}

export interface DockerInfo {
  /** "1" or "2" (empty on old daemons). */
  cgroupVersion: string;
  /** SecurityOptions holds "name=rootless" (what kind checks, pkg/cluster/internal/providers/docker/provider.go). */
  rootless: boolean;
  /** "linux" or "windows" (Windows containers cannot run kind). */
  osType: string;
  /** e.g. "Docker Desktop", "Debian GNU/Linux 13 (trixie)". */
  operatingSystem: string;
  architecture: string;
}

/** `docker info --format '{{json .}}'`, as kind reads it; the daemon must answer (call dockerVersion first for its message). */
export async function dockerInfo(opts: DockerCallOptions = {}): Promise<DockerInfo> {
  const result = await run(DOCKER, ['info', '--format', '{{json .}}'], { ...opts, onLine: undefined }, { timeoutMs: opts.timeoutMs ?? 20_000 });
  let info: any;
  try {
    info = JSON.parse(result.stdout);
  } catch {
    throw new PreflightError('`docker info` did not print JSON', { hint: 'check that `docker info --format "{{json .}}"` works', details: result.tail });
  }
  const options: string[] = Array.isArray(info.SecurityOptions) ? info.SecurityOptions : [];
  return {
    cgroupVersion: String(info.CgroupVersion ?? ''),
    rootless: options.some((o) => o.split(',').includes('name=rootless')),
    osType: String(info.OSType ?? ''),
    operatingSystem: String(info.OperatingSystem ?? ''),
    architecture: String(info.Architecture ?? ''),
  };
}

/**
 * The ids of the Docker networks named exactly `name`, as kind v0.17.0 asks (`docker network ls
 * --filter=name=^<name>$ --format={{.ID}}`, pkg/cluster/internal/providers/docker/network.go networksWithName).
 */
export async function networkIds(name: string, opts: DockerCallOptions = {}): Promise<string[]> {
  const anchored = `^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`;
  const r = await run(DOCKER, ['network', 'ls', `--filter=name=${anchored}`, '--format={{.ID}}'], { ...opts, onLine: undefined }, { timeoutMs: opts.timeoutMs ?? 30_000 });
  return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
}

/** The MTU of Docker's default `bridge` network, 0 when it has none or no such network (network.go getDefaultNetworkMTU). */
export async function bridgeMtu(opts: DockerCallOptions = {}): Promise<number> {
  try {
    const r = await run(DOCKER, ['network', 'inspect', 'bridge', '-f', '{{ index .Options "com.docker.network.driver.mtu" }}'], { ...opts, onLine: undefined }, { timeoutMs: opts.timeoutMs ?? 30_000 });
    const lines = r.stdout.split('\n').filter(Boolean);
    const mtu = lines.length === 1 ? Number(lines[0].trim()) : NaN;
    return Number.isInteger(mtu) && mtu > 0 ? mtu : 0;
  } catch (err) {
    if (err instanceof ExternalCommandError) return 0;
    throw err;
  }
}

/**
 * The bridge network kind v0.17.0 creates when IPv6 is unavailable: `docker network create -d=bridge -o
 * com.docker.network.bridge.enable_ip_masquerade=true [-o com.docker.network.driver.mtu=<bridge's>] <name>`, without
 * `--ipv6 --subnet` (network.go createNetwork; kind sets no label). 'exists' when another process created it meanwhile
 * (the daemon's "network with name … already exists", which kind takes for success too: isNetworkAlreadyExistsError).
 */
export async function createIPv4BridgeNetwork(name: string, mtu: number, opts: DockerCallOptions = {}): Promise<'created' | 'exists'> {
  const args = ['network', 'create', '-d=bridge', '-o', 'com.docker.network.bridge.enable_ip_masquerade=true'];
  if (mtu > 0) args.push('-o', `com.docker.network.driver.mtu=${mtu}`);
  args.push(name);
  try {
    await run(DOCKER, args, opts, { timeoutMs: opts.timeoutMs ?? 60_000 });
    return 'created';
  } catch (err) {
    if (err instanceof ExternalCommandError && err.details.some((d) => /network with name .* already exists/.test(d))) return 'exists';
    throw err;
  }
}
