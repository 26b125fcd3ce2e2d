// A simulated node (what kwok does) against a real API server: registers a Node, binds every unscheduled
// pod to it and writes the pod status a kubelet would write; force-deletes terminating pods.
// Driven by list + watch of all pods, with a full resync every few seconds; survives API server restarts.
//
// Addresses: node InternalIP 127.0.0.1; pod IP = this machine's own address (first of `hostname -I`) or
// the one given — never an invented address, so nothing that dials a pod leaves the machine.
//
// Images: the node knows what its container runtime holds (NodeImageStore). A container whose image it holds
// starts; otherwise the kubelet pulls it: from a loopback registry (the tests' registry) only what that
// registry serves; `docker.io/meshdemo/*` never (meshdemo's local-only name: nothing of that name is on Docker
// Hub); any other remote reference stands for a public image and is "pulled from the internet" — simulated, never
// sent, and logged by the store (so a test can count the pulls). A pull that fails leaves the container Waiting
// with reason ErrImagePull, then ImagePullBackOff, the pod Pending and never ready, as the kubelet reports it
// (kubelet 1.19/1.20 pkg/kubelet/images/image_manager.go EnsureImageExists: ErrImagePull, then ImagePullBackOff
// while backing off; events "Failed to pull image …", "Error: ErrImagePull", "Error: ImagePullBackOff"). The
// Node's status.images lists what the runtime holds (pkg/kubelet/nodestatus/setters.go Images: RepoDigests and
// RepoTags per image, at most 50), refreshed on each resync.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import * as http from 'node:http';
import * as https from 'node:https';
import { KubeConfig, type V1Pod } from '@kubernetes/client-node';

export type PodReadiness = boolean | 'pending';
export type PodReadinessFn = (pod: V1Pod) => PodReadiness;

export interface NodeSimulator {
  nodeName: string;
  /** Pod IP given to non-hostNetwork pods ('' when none). */
  podIP: string;
  /** Change how pods are treated from now on; already-handled pods are re-evaluated at once. */
  setPodReadiness(fn: PodReadinessFn): void;
  /** The node's container runtime. */
  images: NodeImageStore;
  stop(): Promise<void>;
}

export interface NodeSimulatorOptions {
  nodeName?: string; // default "meshdemo-sim"
  podIP?: string; // default: first address of `hostname -I` (none if that prints nothing)
  externalIP?: string; // an ExternalIP address on the Node, only when given
  internalIP?: string; // the Node's InternalIP and pods' hostIP; default 127.0.0.1 (a loopback address such as 127.0.0.2 stands for a kind node container)
  ready?: PodReadinessFn; // default: every pod ready
  kubeletPort?: number; // status.daemonEndpoints.kubeletEndpoint.Port (default 10250): where a kubelet stand-in listens
  hostnameAddress?: boolean; // list a Hostname address (default true); the API server dials it first for logs/exec
  images?: NodeImageStore; // the node's container runtime (default: an empty one, see createImageStore)
  architecture?: string; // default amd64 (nodeInfo.architecture and the kubernetes.io/arch labels)
  nodeReady?: boolean; // default true; false: the Node stays NotReady as a kubelet without a CNI reports it
  /**
   * The container runtime for pods that run to completion (restartPolicy Never): started once such a pod is Running,
   * resolving to how its container ended; undefined leaves the pod Running, as before. See runToCompletion below.
   */
  run?: (pod: V1Pod) => Promise<ContainerExit> | undefined;
}

/** How a container ended: its exit code and the termination message (what it wrote to terminationMessagePath). */
export interface ContainerExit {
  exitCode: number;
  message?: string;
}

/** A node's container runtime as the kubelet sees it: the images it holds, and pulling one. */
export interface NodeImageStore {
  /** The references it holds, normalised (docker.io/library/x:latest). */
  list(): string[];
  /** Pulls `ref` (held already: nothing, unless `always`): undefined once held, else the runtime's error (as containerd words it). */
  pull(ref: string, opts?: { always?: boolean }): Promise<string | undefined>;
}

/**
 * `docker.io/library/x:latest` for `x`, as containerd names what it holds (distribution's reference
 * normalisation: no registry part means docker.io, a single path element means library/, no tag means latest).
 */
export function normalizeImageRef(ref: string): string {
  const at = ref.indexOf('@');
  const name = at >= 0 ? ref.slice(0, at) : ref;
  const digest = at >= 0 ? ref.slice(at) : '';
  const first = name.split('/')[0];
  const hasHost = name.includes('/') && (first.includes('.') || first.includes(':') || first === 'localhost');
  let full = hasHost ? name : `docker.io/${name.includes('/') ? name : `library/${name}`}`;
  const lastPart = full.slice(full.lastIndexOf('/') + 1);
  if (!digest && !lastPart.includes(':')) full += ':latest';
  return full + digest;
}

function registryHost(normalized: string): string {
  return normalized.split('/')[0];
}

function isLoopbackHost(host: string): boolean {
  const h = host.replace(/:\d+$/, '');
  return h === 'localhost' || /^127\./.test(h);
}

/** HEAD /v2/<repo>/manifests/<tag> on a loopback registry (http): the status code, or the dial error. */
function headManifest(normalized: string): Promise<number | string> {
  const host = registryHost(normalized);
  const rest = normalized.slice(host.length + 1);
  const at = rest.indexOf('@');
  const colon = rest.lastIndexOf(':');
  const [repo, reference] = at >= 0 ? [rest.slice(0, at), rest.slice(at + 1)] : [rest.slice(0, colon), rest.slice(colon + 1)];
  const url = `http://${host}/v2/${repo}/manifests/${reference}`;
  return new Promise((resolve) => {
    const req = http.request(url, { method: 'HEAD', timeout: 5000, agent: false, headers: { accept: 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.oci.image.manifest.v1+json, application/vnd.oci.image.index.v1+json' } }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(new Error('i/o timeout')));
    req.on('error', (e) => resolve(`failed to do request: Head "${url}": ${e.message}`));
    req.end();
  });
}

/**
 * A container runtime's image store. `loadedFile`: a JSON object whose keys are references loaded into the node
 * by other means (what `kind load` writes), read afresh each time. `pulledFile`: where pulled references are kept
 * (a JSON array), so the list survives the simulator; `pullLog`: one line per pull from a remote registry.
 */
export function createImageStore(opts: { loadedFile?: string; pulledFile?: string; pullLog?: string } = {}): NodeImageStore {
  const pulled = new Set<string>();
  const readJson = (file: string | undefined): any => {
    if (!file) return undefined;
    try {
      return JSON.parse(fs.readFileSync(file, 'utf8'));
    } catch {
      return undefined;
    }
  };
  for (const ref of readJson(opts.pulledFile) ?? []) pulled.add(ref);
  const list = () => [...new Set([...Object.keys(readJson(opts.loadedFile) ?? {}).map(normalizeImageRef), ...pulled])].sort();
  const keep = (ref: string) => {
    pulled.add(ref);
    if (opts.pulledFile) fs.writeFileSync(opts.pulledFile, JSON.stringify([...pulled], null, 2));
  };
  return {
    list,
    async pull(ref, pullOpts = {}) {
      const n = normalizeImageRef(ref);
      if (!pullOpts.always && list().includes(n)) return undefined;
      const host = registryHost(n);
      // containerd's words (remotes/docker/resolver.go) under the CRI's "failed to pull and unpack image"
      const failed = (why: string) => `rpc error: code = Unknown desc = failed to pull and unpack image "${n}": failed to resolve reference "${n}": ${why}`;
      if (isLoopbackHost(host)) {
        const status = await headManifest(n);
        if (status === 200) {
          keep(n);
          return undefined;
        }
        if (typeof status === 'string') return failed(status);
        return failed(status === 404 ? `${n}: not found` : `unexpected status code ${status}`);
      }
      if (n.startsWith('docker.io/meshdemo/')) {
        return failed('pull access denied, repository does not exist or may require authorization: server message: insufficient_scope: authorization failed');
      }
      if (opts.pullLog) fs.appendFileSync(opts.pullLog, `${JSON.stringify({ pulled: n, at: new Date().toISOString() })}\n`);
      keep(n);
      return undefined;
    },
  };
}

/** First address printed by `hostname -I`, or '' if none. */
export function machineAddress(): string {
  try {
    return execFileSync('hostname', ['-I'], { encoding: 'utf8', timeout: 5000 }).trim().split(/\s+/)[0] ?? '';
  } catch {
    return '';
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Resp {
  status: number;
  body: string;
}

class Client {
  private agent: https.Agent;
  constructor(
    private server: string,
    private reqOpts: https.RequestOptions,
  ) {
    this.agent = new https.Agent({ keepAlive: true, maxSockets: 8 });
  }

  private options(method: string, extraHeaders: Record<string, string | number> = {}): https.RequestOptions {
    return {
      ...this.reqOpts,
      method,
      agent: this.agent,
      headers: { ...(this.reqOpts.headers as object), Accept: 'application/json', ...extraHeaders },
    };
  }

  request(method: string, path: string, body?: unknown, contentType = 'application/json'): Promise<Resp> {
    return new Promise((resolve, reject) => {
      const data = body === undefined ? undefined : JSON.stringify(body);
      const headers: Record<string, string | number> = {};
      if (data !== undefined) {
        headers['Content-Type'] = contentType;
        headers['Content-Length'] = Buffer.byteLength(data);
      }
      const req = https.request(new URL(path, this.server), { ...this.options(method, headers), timeout: 15_000 }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      });
      req.on('timeout', () => req.destroy(new Error(`timeout ${method} ${path}`)));
      req.on('error', reject);
      req.end(data);
    });
  }

  /** Streams a watch; resolves when it ends (server close, error, or abort). */
  watch(path: string, onEvent: (ev: { type: string; object: any }) => void, signal: AbortSignal): Promise<void> {
    return new Promise((resolve) => {
      if (signal.aborted) return resolve();
      // no keep-alive agent: a watch holds its socket for its whole life
      const req = https.request(new URL(path, this.server), { ...this.options('GET'), agent: false, signal }, (res) => {
        if (res.statusCode !== 200) {
          res.resume();
          res.on('end', () => resolve());
          res.on('error', () => resolve());
          return;
        }
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          buf += chunk;
          let i: number;
          while ((i = buf.indexOf('\n')) >= 0) {
            const line = buf.slice(0, i).trim();
            buf = buf.slice(i + 1);
            if (!line) continue;
            try {
              onEvent(JSON.parse(line));
            } catch {
              /* ignore a malformed line */
            }
          }
        });
        res.on('end', () => resolve());
        res.on('error', () => resolve());
        res.on('close', () => resolve());
      });
      req.on('error', () => resolve());
      req.end();
    });
  }

  close(): void {
    this.agent.destroy();
  }
}

function fakeDigest(s: string): string {
  return createHash('sha256').update(s).digest('hex');
}

export async function startNodeSimulator(kubeconfigPath: string, opts: NodeSimulatorOptions = {}): Promise<NodeSimulator> {
  const kc = new KubeConfig();
  kc.loadFromFile(kubeconfigPath);
  const cluster = kc.getCurrentCluster();
  if (!cluster) throw new Error(`no current cluster in ${kubeconfigPath}`);
  const reqOpts: https.RequestOptions = {};
  await kc.applyToHTTPSOptions(reqOpts);
  const client = new Client(cluster.server, reqOpts);

  const nodeName = opts.nodeName ?? 'meshdemo-sim';
  const podIP = opts.podIP ?? machineAddress();
  const internalIP = opts.internalIP ?? '127.0.0.1';
  let readiness: PodReadinessFn = opts.ready ?? (() => true);
  const images = opts.images ?? createImageStore();
  const debug = !!process.env.MESHDEMO_TESTENV_DEBUG;
  const log = (msg: string) => {
    if (debug) process.stderr.write(`[node-simulator ${nodeName}] ${msg}\n`);
  };

  // ---------------------------------------------------------------- node
  const nodeBody = {
    apiVersion: 'v1',
    kind: 'Node',
    metadata: {
      name: nodeName,
      labels: {
        'kubernetes.io/hostname': nodeName,
        'kubernetes.io/os': 'linux',
        'kubernetes.io/arch': opts.architecture ?? 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': opts.architecture ?? 'amd64',
        type: 'meshdemo-simulated',
      },
    },
    spec: {},
  };
  const nodeStatus = () => {
    const now = new Date().toISOString();
    const cond = (type: string, status: string, reason: string, message: string) => ({
      type,
      status,
      reason,
      message,
      lastHeartbeatTime: now,
      lastTransitionTime: now,
    });
    const resources = { cpu: '8', memory: '32Gi', pods: '110', 'ephemeral-storage': '100Gi' };
    return {
      status: {
        addresses: [
          { type: 'InternalIP', address: internalIP },
          ...(opts.externalIP ? [{ type: 'ExternalIP', address: opts.externalIP }] : []),
          ...(opts.hostnameAddress === false ? [] : [{ type: 'Hostname', address: nodeName }]),
        ],
        capacity: resources,
        allocatable: resources,
        conditions: [
          cond('MemoryPressure', 'False', 'KubeletHasSufficientMemory', 'kubelet has sufficient memory available'),
          cond('DiskPressure', 'False', 'KubeletHasNoDiskPressure', 'kubelet has no disk pressure'),
          cond('PIDPressure', 'False', 'KubeletHasSufficientPID', 'kubelet has sufficient PID available'),
          opts.nodeReady === false
            ? cond('Ready', 'False', 'KubeletNotReady', 'runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized')
            : cond('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
        ],
        nodeInfo: {
          machineID: fakeDigest(nodeName).slice(0, 32),
          systemUUID: fakeDigest(`uuid-${nodeName}`).slice(0, 32),
          bootID: fakeDigest(`boot-${nodeName}`).slice(0, 32),
          kernelVersion: '6.1.0',
          osImage: 'Debian GNU/Linux 12 (bookworm)',
          containerRuntimeVersion: 'containerd://1.4.0',
          kubeletVersion: 'v1.20.2',
          kubeProxyVersion: 'v1.20.2',
          operatingSystem: 'linux',
          architecture: opts.architecture ?? 'amd64',
        },
        daemonEndpoints: { kubeletEndpoint: { Port: opts.kubeletPort ?? 10250 } },
        images: nodeImages(),
      },
    };
  };
  /** setters.go Images: one entry per image, its names (repo digests, then repo tags) and size; at most 50. */
  const nodeImages = () => images.list().slice(0, 50).map((ref) => ({ names: [ref], sizeBytes: 10_000_000 + (parseInt(fakeDigest(ref).slice(0, 6), 16) % 90_000_000) }));
  let reportedImages = '';
  const ensureNode = async (): Promise<void> => {
    const get = await client.request('GET', `/api/v1/nodes/${nodeName}`);
    let needStatus = true;
    if (get.status === 404) {
      const c = await client.request('POST', '/api/v1/nodes', nodeBody);
      if (c.status !== 201 && c.status !== 409) throw new Error(`create node: ${c.status} ${c.body}`);
    } else if (get.status === 200) {
      const ready = (JSON.parse(get.body).status?.conditions ?? []).find((c: any) => c.type === 'Ready');
      needStatus = ready?.status !== 'True';
    } else {
      throw new Error(`get node: ${get.status} ${get.body}`);
    }
    const held = JSON.stringify(images.list());
    if (needStatus || held !== reportedImages) {
      const p = await client.request('PATCH', `/api/v1/nodes/${nodeName}/status`, needStatus ? nodeStatus() : { status: { images: nodeImages() } }, 'application/merge-patch+json');
      if (p.status !== 200) throw new Error(`patch node status: ${p.status} ${p.body}`);
      reportedImages = held;
    }
  };

  // ---------------------------------------------------------------- image pulls
  /** Per pod uid and container: when its pull first failed, and why. */
  const pullFailures = new Map<string, { since: number; message: string; backOffReported: boolean }>();
  const RETRY_MS = 2000;
  const lastTry = new Map<string, number>();
  /** Pulls what the pod's containers need (at most one try per RETRY_MS); the failures, by container name. */
  const ensureImages = async (pod: V1Pod): Promise<Map<string, { reason: 'ErrImagePull' | 'ImagePullBackOff'; message: string }>> => {
    const out = new Map<string, { reason: 'ErrImagePull' | 'ImagePullBackOff'; message: string }>();
    const uid = pod.metadata?.uid ?? '';
    // a container that has started already needs its image no more (removing the image later does not stop it)
    const started = new Set(
      [...(pod.status?.initContainerStatuses ?? []), ...(pod.status?.containerStatuses ?? [])].filter((cs) => cs.state?.running || cs.state?.terminated).map((cs) => `${cs.name}=${cs.image}`),
    );
    for (const c of [...(pod.spec?.initContainers ?? []), ...(pod.spec?.containers ?? [])]) {
      if (started.has(`${c.name}=${c.image}`)) continue;
      const key = `${uid}/${c.name}`;
      const image = c.image ?? '';
      const failure = pullFailures.get(key);
      if (failure && Date.now() - (lastTry.get(key) ?? 0) < RETRY_MS) {
        out.set(c.name, failure.backOffReported || Date.now() - failure.since >= RETRY_MS ? { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` } : { reason: 'ErrImagePull', message: failure.message });
        continue;
      }
      lastTry.set(key, Date.now());
      // imagePullPolicy Always: the kubelet pulls whatever the node holds (images/image_manager.go shouldPullImage)
      const error = c.imagePullPolicy !== 'Always' && images.list().includes(normalizeImageRef(image)) ? undefined : await images.pull(image, { always: c.imagePullPolicy === 'Always' });
      if (!error) {
        pullFailures.delete(key);
        continue;
      }
      if (!failure) {
        pullFailures.set(key, { since: Date.now(), message: error, backOffReported: false });
        void podEvent(pod, c.name, `Failed to pull image "${image}": ${error}`);
        void podEvent(pod, c.name, 'Error: ErrImagePull');
        out.set(c.name, { reason: 'ErrImagePull', message: error });
      } else {
        if (!failure.backOffReported) {
          failure.backOffReported = true;
          void podEvent(pod, c.name, 'Error: ImagePullBackOff');
        }
        out.set(c.name, { reason: 'ImagePullBackOff', message: `Back-off pulling image "${image}"` });
      }
    }
    return out;
  };
  /** A Warning event "Failed" from the kubelet about one container (kubelet's events.FailedToPullImage / ErrImagePull). */
  const podEvent = async (pod: V1Pod, container: string, message: string): Promise<void> => {
    const md = pod.metadata!;
    const now = new Date().toISOString();
    const isInit = (pod.spec?.initContainers ?? []).some((c) => c.name === container);
    const e = await client.request('POST', `/api/v1/namespaces/${md.namespace}/events`, {
      apiVersion: 'v1',
      kind: 'Event',
      metadata: { name: `${md.name}.${fakeDigest(`${md.uid}/${container}/${message}`).slice(0, 16)}`, namespace: md.namespace },
      involvedObject: { apiVersion: 'v1', kind: 'Pod', namespace: md.namespace, name: md.name, uid: md.uid, fieldPath: `spec.${isInit ? 'initContainers' : 'containers'}{${container}}` },
      reason: 'Failed',
      message,
      type: 'Warning',
      source: { component: 'kubelet', host: nodeName },
      firstTimestamp: now,
      lastTimestamp: now,
      count: 1,
    }).catch((err: Error) => ({ status: 0, body: err.message }));
    if (e.status !== 201 && e.status !== 409) log(`event for ${md.namespace}/${md.name}: ${e.status} ${e.body}`);
  };

  // ---------------------------------------------------------------- pods
  const desiredStatus = (pod: V1Pod, r: PodReadiness, pulls: Map<string, { reason: string; message: string }> = new Map()): any => {
    const now = new Date().toISOString();
    if (r !== 'pending' && pulls.size) return waitingForImages(pod, pulls, now);
    if (r === 'pending') {
      return {
        phase: 'Pending',
        conditions: [
          {
            type: 'PodScheduled',
            status: 'False',
            reason: 'Unschedulable',
            message: '0/1 nodes are available: 1 Insufficient cpu.',
            lastProbeTime: null,
            lastTransitionTime: now,
          },
        ],
      };
    }
    const since = (pod.status?.startTime as unknown as string | undefined) ?? now;
    const ready = r === true;
    const containers = pod.spec?.containers ?? [];
    const initContainers = pod.spec?.initContainers ?? [];
    const ip = pod.spec?.hostNetwork ? internalIP : podIP;
    const cond = (type: string, ok: boolean, reason?: string, message?: string) => ({
      type,
      status: ok ? 'True' : 'False',
      lastProbeTime: null,
      lastTransitionTime: now,
      ...(reason ? { reason } : {}),
      ...(message ? { message } : {}),
    });
    const notReady = `containers with unready status: [${containers.map((c) => c.name).join(' ')}]`;
    const id = (name: string) => `containerd://${fakeDigest(`${pod.metadata?.uid}/${name}`)}`;
    const imageID = (image: string) => `docker-pullable://${image.split('@')[0]}@sha256:${fakeDigest(image)}`;
    return {
      phase: 'Running',
      hostIP: internalIP,
      ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}),
      startTime: since,
      qosClass: pod.status?.qosClass,
      conditions: [
        cond('Initialized', true),
        cond('Ready', ready, ready ? undefined : 'ContainersNotReady', ready ? undefined : notReady),
        cond('ContainersReady', ready, ready ? undefined : 'ContainersNotReady', ready ? undefined : notReady),
        cond('PodScheduled', true),
      ],
      ...(initContainers.length
        ? {
            initContainerStatuses: initContainers.map((c) => ({
              name: c.name,
              image: c.image,
              imageID: imageID(c.image ?? ''),
              containerID: id(c.name),
              ready: true,
              restartCount: 0,
              state: { terminated: { exitCode: 0, reason: 'Completed', startedAt: since, finishedAt: since, containerID: id(c.name) } },
              lastState: {},
            })),
          }
        : {}),
      containerStatuses: containers.map((c) =>
        ready
          ? {
              name: c.name,
              image: c.image,
              imageID: imageID(c.image ?? ''),
              containerID: id(c.name),
              ready: true,
              started: true,
              restartCount: 0,
              state: { running: { startedAt: since } },
              lastState: {},
            }
          : {
              name: c.name,
              image: c.image,
              imageID: '',
              ready: false,
              started: false,
              restartCount: 0,
              state: {
                waiting: {
                  reason: 'ImagePullBackOff',
                  message: `Back-off pulling image "${c.image}"`,
                },
              },
              lastState: {},
            },
      ),
    };
  };

  /**
   * A pod whose images could not all be pulled (kubelet_pods.go generateAPIPodStatus / getPhase): Pending, the
   * failing containers Waiting with ErrImagePull or ImagePullBackOff; while an init container waits, the others
   * wait with PodInitializing and the pod is not Initialized.
   */
  const waitingForImages = (pod: V1Pod, pulls: Map<string, { reason: string; message: string }>, now: string): any => {
    const since = (pod.status?.startTime as unknown as string | undefined) ?? now;
    const containers = pod.spec?.containers ?? [];
    const initContainers = pod.spec?.initContainers ?? [];
    const initBlocked = initContainers.some((c) => pulls.has(c.name));
    const ip = pod.spec?.hostNetwork ? internalIP : podIP;
    const cond = (type: string, ok: boolean, reason?: string, message?: string) => ({ type, status: ok ? 'True' : 'False', lastProbeTime: null, lastTransitionTime: now, ...(reason ? { reason, message } : {}) });
    const waiting = (c: { name: string; image?: string }, initDone: boolean) => {
      const pull = pulls.get(c.name);
      return {
        name: c.name,
        image: c.image,
        imageID: '',
        ready: false,
        restartCount: 0,
        state: { waiting: pull ? { reason: pull.reason, message: pull.message } : initBlocked && !initDone ? { reason: 'PodInitializing' } : { reason: 'ContainerCreating' } },
        lastState: {},
      };
    };
    const notReady = `containers with unready status: [${containers.map((c) => c.name).join(' ')}]`;
    return {
      phase: 'Pending',
      hostIP: internalIP,
      ...(ip ? { podIP: ip, podIPs: [{ ip }] } : {}),
      startTime: since,
      qosClass: pod.status?.qosClass,
      conditions: [
        initBlocked ? cond('Initialized', false, 'ContainersNotInitialized', `containers with incomplete status: [${initContainers.map((c) => c.name).join(' ')}]`) : cond('Initialized', true),
        cond('Ready', false, 'ContainersNotReady', notReady),
        cond('ContainersReady', false, 'ContainersNotReady', notReady),
        cond('PodScheduled', true),
      ],
      ...(initContainers.length ? { initContainerStatuses: initContainers.map((c) => waiting(c, true)) } : {}),
      containerStatuses: containers.map((c) => ({ ...waiting(c, false), started: false })),
    };
  };

  /** What matters of a status, to decide whether it needs patching. */
  const signature = (s: any): string => {
    const c = (t: string) => {
      const x = (s?.conditions ?? []).find((k: any) => k.type === t);
      return x ? `${x.status}:${x.reason ?? ''}` : '-';
    };
    const st = (x: any) => `${x.name}=${x.ready}/${Object.keys(x.state ?? {}).join()}:${x.state?.waiting?.reason ?? ''}`;
    const cs = (s?.containerStatuses ?? []).map(st).join(',');
    const ics = (s?.initContainerStatuses ?? []).map(st).join(',');
    return [s?.phase, s?.podIP ?? '', c('PodScheduled'), c('Ready'), c('ContainersReady'), cs, ics].join('|');
  };

  const podPath = (pod: V1Pod) => `/api/v1/namespaces/${pod.metadata!.namespace}/pods/${pod.metadata!.name}`;

  const reconcile = async (pod: V1Pod): Promise<void> => {
    const md = pod.metadata;
    if (!md?.name || !md.namespace) return;
    const bound = pod.spec?.nodeName;
    if (bound && bound !== nodeName) return; // someone else's pod
    if (md.deletionTimestamp) {
      const d = await client.request('DELETE', `${podPath(pod)}`, {
        apiVersion: 'v1',
        kind: 'DeleteOptions',
        gracePeriodSeconds: 0,
        preconditions: { uid: md.uid },
      });
      if (d.status >= 300 && d.status !== 404 && d.status !== 409) log(`delete ${md.namespace}/${md.name}: ${d.status} ${d.body}`);
      return;
    }
    if (pod.status?.phase === 'Succeeded' || pod.status?.phase === 'Failed') return;
    let r: PodReadiness;
    try {
      r = readiness(pod);
    } catch (e) {
      log(`readiness function threw for ${md.namespace}/${md.name}: ${(e as Error).message}`);
      r = false;
    }
    if (r === 'pending' && bound) r = false; // a bound pod cannot become unscheduled again
    // the pod is (or is about to be) bound here: this node's kubelet pulls its images
    const pulls = r === true ? await ensureImages(pod) : new Map();
    const want = desiredStatus(pod, r, pulls);
    if (signature(want) === signature(pod.status)) return;
    if (r !== 'pending' && !bound) {
      const b = await client.request('POST', `${podPath(pod)}/binding`, {
        apiVersion: 'v1',
        kind: 'Binding',
        metadata: { name: md.name, namespace: md.namespace, uid: md.uid },
        target: { apiVersion: 'v1', kind: 'Node', name: nodeName },
      });
      if (b.status !== 201 && b.status !== 200) {
        log(`bind ${md.namespace}/${md.name}: ${b.status} ${b.body}`);
        return; // conflict (already bound) / gone: the next event or resync tells
      }
    }
    const p = await client.request('PATCH', `${podPath(pod)}/status`, { status: want }, 'application/merge-patch+json');
    if (p.status !== 200) log(`patch status ${md.namespace}/${md.name}: ${p.status} ${p.body}`);
    else if (want.phase === 'Running' && r === true) runToCompletion(pod, want);
  };

  /**
   * A restartPolicy Never pod whose container `opts.run` runs: once it ends, the status the kubelet writes
   * (kubelet 1.20 pkg/kubelet/kubelet_pods.go getPhase: every container terminated, Succeeded when all exited 0,
   * else Failed; convertToAPIContainerStatuses: state.terminated with exitCode, reason Completed or Error and the
   * message read from terminationMessagePath, kuberuntime_container.go getTerminationMessage; the Ready condition
   * False with reason PodCompleted, status/generate.go).
   */
  const started = new Set<string>();
  const runToCompletion = (pod: V1Pod, running: any) => {
    const uid = pod.metadata?.uid ?? '';
    if (!opts.run || pod.spec?.restartPolicy !== 'Never' || started.has(uid)) return;
    const exit = opts.run(pod);
    if (!exit) return;
    started.add(uid);
    void exit.then(async ({ exitCode, message }) => {
      const finishedAt = new Date().toISOString();
      const cond = (type: string) => ({ type, status: 'False', reason: 'PodCompleted', lastProbeTime: null, lastTransitionTime: finishedAt });
      const status = {
        phase: exitCode === 0 ? 'Succeeded' : 'Failed',
        conditions: [running.conditions[0], cond('Ready'), cond('ContainersReady'), running.conditions[3]],
        containerStatuses: running.containerStatuses.map((cs: any) => ({
          ...cs,
          ready: false,
          started: false,
          state: { terminated: { exitCode, reason: exitCode === 0 ? 'Completed' : 'Error', ...(message ? { message } : {}), startedAt: cs.state.running.startedAt, finishedAt, containerID: cs.containerID } },
        })),
      };
      const p = await client.request('PATCH', `${podPath(pod)}/status`, { status }, 'application/merge-patch+json');
      if (p.status !== 200) log(`patch status ${pod.metadata?.namespace}/${pod.metadata?.name}: ${p.status} ${p.body}`);
    }, (err: Error) => log(`run ${pod.metadata?.namespace}/${pod.metadata?.name}: ${err.message}`));
  };

  // ---------------------------------------------------------------- loop
  let stopped = false;
  let watchAbort: AbortController | undefined;
  let wake: (() => void) | undefined;
  const queue = new Map<string, V1Pod>(); // latest object per pod, processed in order
  let draining: Promise<void> | undefined;
  const drain = (): Promise<void> => {
    draining ??= (async () => {
      while (queue.size && !stopped) {
        const [key, pod] = queue.entries().next().value as [string, V1Pod];
        queue.delete(key);
        try {
          await reconcile(pod);
        } catch (e) {
          log(`reconcile ${key}: ${(e as Error).message}`);
        }
      }
    })().finally(() => {
      draining = undefined;
      if (queue.size && !stopped) void drain();
    });
    return draining;
  };
  const enqueue = (pod: V1Pod) => {
    const key = `${pod.metadata?.namespace}/${pod.metadata?.name}`;
    queue.set(key, pod);
    void drain();
  };

  const RESYNC_MS = 5000;
  const loop = async () => {
    let nodeOk = false;
    while (!stopped) {
      try {
        if (!nodeOk) {
          await ensureNode();
          nodeOk = true;
        }
        const list = await client.request('GET', '/api/v1/pods');
        if (list.status !== 200) throw new Error(`list pods: ${list.status} ${list.body.slice(0, 200)}`);
        const parsed = JSON.parse(list.body);
        for (const pod of parsed.items ?? []) enqueue(pod);
        await drain();
        if (stopped) break;
        watchAbort = new AbortController();
        const ac = watchAbort;
        const timer = setTimeout(() => ac.abort(), RESYNC_MS);
        wake = () => ac.abort();
        await client.watch(
          `/api/v1/pods?watch=1&resourceVersion=${parsed.metadata.resourceVersion}&timeoutSeconds=${RESYNC_MS / 1000 + 5}`,
          (ev) => {
            if (ev.type === 'ADDED' || ev.type === 'MODIFIED') enqueue(ev.object);
            else if (ev.type === 'ERROR') ac.abort(); // e.g. 410 Gone: relist
          },
          ac.signal,
        );
        clearTimeout(timer);
        nodeOk = false; // re-check the node on each resync (cheap; recreates it if someone deleted it)
      } catch (e) {
        log((e as Error).message);
        nodeOk = false;
        await sleep(500);
      }
    }
  };

  // Register the node before returning, so callers can rely on it existing (retry while the API starts).
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      await ensureNode();
      break;
    } catch (e) {
      if (Date.now() > deadline) {
        client.close();
        throw new Error(`node simulator: could not register node ${nodeName}: ${(e as Error).message}`);
      }
      await sleep(500);
    }
  }
  const running = loop();

  return {
    nodeName,
    podIP,
    setPodReadiness(fn: PodReadinessFn) {
      readiness = fn;
      wake?.(); // relist at once so every pod is re-evaluated
    },
    images,
    async stop() {
      if (stopped) return;
      stopped = true;
      watchAbort?.abort();
      client.close(); // fails requests in flight, so a hung API server cannot delay stop()
      await running;
      await draining;
      client.close();
    },
  };
}
