// A simulated node (what kwok does) against a real API server: registers a Node, binds every unscheduled
// pod to it and writes the pod status a kubelet would write; force-deletes terminating pods.
// Driven by list + watch of all pods, with a full resync every few seconds; survives API server restarts.
//
// Addresses: node InternalIP 127.0.0.1; pod IP = this machine's own address (first of `hostname -I`) or
// the one given — never an invented address, so nothing that dials a pod leaves the machine.
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
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
        'kubernetes.io/arch': 'amd64',
        'beta.kubernetes.io/os': 'linux',
        'beta.kubernetes.io/arch': 'amd64',
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
          cond('Ready', 'True', 'KubeletReady', 'kubelet is posting ready status'),
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
          architecture: 'amd64',
        },
        daemonEndpoints: { kubeletEndpoint: { Port: opts.kubeletPort ?? 10250 } },
      },
    };
  };
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
    if (needStatus) {
      const p = await client.request('PATCH', `/api/v1/nodes/${nodeName}/status`, nodeStatus(), 'application/merge-patch+json');
      if (p.status !== 200) throw new Error(`patch node status: ${p.status} ${p.body}`);
    }
  };

  // ---------------------------------------------------------------- pods
  const desiredStatus = (pod: V1Pod, r: PodReadiness): any => {
    const now = new Date().toISOString();
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

  /** What matters of a status, to decide whether it needs patching. */
  const signature = (s: any): string => {
    const c = (t: string) => {
      const x = (s?.conditions ?? []).find((k: any) => k.type === t);
      return x ? `${x.status}:${x.reason ?? ''}` : '-';
    };
    const cs = (s?.containerStatuses ?? []).map((x: any) => `${x.name}=${x.ready}/${Object.keys(x.state ?? {}).join()}`).join(',');
    const ics = (s?.initContainerStatuses ?? []).length;
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
    const want = desiredStatus(pod, r);
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
