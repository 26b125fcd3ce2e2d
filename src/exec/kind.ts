import { ExternalCommandError, PreflightError } from '../core/errors.js';
import { runCommand, runProbe, type RunOptions } from './run.js';

/**
 * The kind CLI as meshdemo uses it (kind v0.17.0, sigs.k8s.io/kind pkg/cmd/kind/...): argument arrays through
 * runCommand, progress lines streamed to the caller. `bin` is the resolved binary (PATH or meshdemo's cache).
 */
export interface KindCallOptions {
  signal?: AbortSignal;
  onLine?: RunOptions['onLine'];
  timeoutMs?: number;
  env?: Record<string, string | undefined>;
}

/** `kind version` → "0.17.0" (pkg/cmd/kind/version/version.go prints "kind v<version> <go> <os>/<arch>"). */
export async function kindVersion(bin: string, opts: KindCallOptions = {}): Promise<string | undefined> {
  try {
    const r = await runProbe(bin, ['version'], { signal: opts.signal, timeoutMs: opts.timeoutMs ?? 20_000 });
    return /^kind v(\S+)/m.exec(r.stdout)?.[1];
  } catch (err) {
    if (err instanceof PreflightError || err instanceof ExternalCommandError) return undefined;
    throw err;
  }
}

/**
 * `kind get clusters`: one name per line on stdout ("No kind clusters found." goes to stderr). kind lists the node
 * containers with `docker ps -a`, so it fails (exit 1, "failed to list clusters") when Docker does not answer: that
 * is an error here, never "no cluster" (pkg/cluster/internal/providers/docker/provider.go ListClusters at v0.17.0).
 */
export async function kindClusters(bin: string, opts: KindCallOptions = {}): Promise<string[]> {
  try {
    const r = await runCommand(bin, ['get', 'clusters'], { signal: opts.signal, env: opts.env, timeoutMs: opts.timeoutMs ?? 30_000 });
    return r.stdout.split('\n').map((l) => l.trim()).filter(Boolean);
  } catch (err) {
    if (!(err instanceof ExternalCommandError)) throw err;
    const why = err.details.find((d) => d.startsWith('ERROR: '))?.slice('ERROR: '.length);
    throw new ExternalCommandError(`kind get clusters failed${why ? `: ${why}` : ''}, so meshdemo cannot tell which kind clusters exist`, {
      hint: 'check that Docker answers (`docker ps`; start Docker or fix DOCKER_HOST / `docker context`), then run meshdemo again',
      details: err.details,
      cause: err,
    });
  }
}

export interface CreateClusterOptions {
  name: string;
  image: string;
  configFile: string;
  /** --kubeconfig for kind; without it kind merges into the first existing $KUBECONFIG file, else ~/.kube/config. */
  kubeconfig?: string;
  /** --wait: kind waits this long for the control-plane node to be Ready. */
  waitSeconds: number;
}

export async function kindCreateCluster(bin: string, c: CreateClusterOptions, opts: KindCallOptions = {}): Promise<void> {
  const args = ['create', 'cluster', '--name', c.name, '--image', c.image, '--config', c.configFile, '--wait', `${c.waitSeconds}s`];
  if (c.kubeconfig) args.push('--kubeconfig', c.kubeconfig);
  await runCommand(bin, args, { signal: opts.signal, onLine: opts.onLine, env: opts.env, timeoutMs: opts.timeoutMs, tailLines: 20 });
}

/** `kind delete cluster --name N`: deletes the node containers and removes kind-N from the kubeconfig. */
export async function kindDeleteCluster(bin: string, name: string, kubeconfig: string | undefined, opts: KindCallOptions = {}): Promise<void> {
  const args = ['delete', 'cluster', '--name', name];
  if (kubeconfig) args.push('--kubeconfig', kubeconfig);
  await runCommand(bin, args, { signal: opts.signal, onLine: opts.onLine, env: opts.env, timeoutMs: opts.timeoutMs ?? 300_000, tailLines: 20 });
}

/** `kind export kubeconfig --name N`: merges context kind-N into the kubeconfig again and makes it current. */
export async function kindExportKubeconfig(bin: string, name: string, kubeconfig: string | undefined, opts: KindCallOptions = {}): Promise<void> {
  const args = ['export', 'kubeconfig', '--name', name];
  if (kubeconfig) args.push('--kubeconfig', kubeconfig);
  await runCommand(bin, args, { signal: opts.signal, onLine: opts.onLine, env: opts.env, timeoutMs: opts.timeoutMs ?? 60_000 });
}
