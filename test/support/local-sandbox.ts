// A machine of its own for meshdemo's local kind cluster, shared by test/integration/local-cluster.test.ts and
// bench/local-again.ts: a HOME, cache and kind state in a temporary directory, the kind stand-in's release as the
// release server serves it, and `docker network` answered by the network stand-in.
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { testenvBinDir } from './control-plane.js';
import { installDockerNetworkShim, type DockerNetworkShim } from './docker-network-shim.js';
import { kindStandinScript } from './kind-standin.js';

/** What Istio 1.8.4's demo profile and the default addons run, as their manifests name them; Kiali's pull policy is Always. */
export const PRELOADED = ['docker.io/istio/pilot:1.8.4', 'docker.io/istio/proxyv2:1.8.4', 'grafana/grafana:7.2.1', 'docker.io/jaegertracing/all-in-one:1.20', 'jimmidyson/configmap-reload:v0.4.0', 'prom/prometheus:v2.21.0'];
export const KIALI = 'quay.io/kiali/kiali:v1.26';

/** The kind release as GitHub serves it: kind-linux-amd64 and kind-linux-amd64.sha256sum (`<hex>  <name>`). */
export function kindRelease(sha256sum?: string): Record<string, Buffer> {
  const script = Buffer.from(kindStandinScript());
  const hex = createHash('sha256').update(script).digest('hex');
  return { 'v0.17.0/kind-linux-amd64': script, 'v0.17.0/kind-linux-amd64.sha256sum': Buffer.from(sha256sum ?? `${hex}  kind-linux-amd64\n`) };
}

export function readLines(file: string): any[] {
  return fs.existsSync(file) ? fs.readFileSync(file, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : [];
}

export interface Sandbox {
  tmp: string;
  home: string;
  cache: string;
  kindState: string;
  kindLog: string;
  env: Record<string, string | undefined>;
  /** Docker's networks, stood in (test/support/docker-network-shim.ts): first on env.PATH, so no real network is made. */
  network: DockerNetworkShim;
}

/**
 * A HOME, cache and kind state of their own; `docker network …` answered by the network stand-in, as a Docker 28 host
 * with ip6tables NAT (kind v0.17.0 creates its IPv6 network there) unless `network` says otherwise.
 */
export function sandbox(name: string, extra: Record<string, string | undefined> = {}, network: Parameters<typeof installDockerNetworkShim>[1] = { ip6tablesNat: true }): Sandbox {
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), `meshdemo-${name}-`));
  const home = path.join(tmp, 'home');
  fs.mkdirSync(home);
  const kindState = path.join(tmp, 'kind-state');
  const kindLog = path.join(tmp, 'kind.log');
  const env = {
    HOME: home,
    KUBECONFIG: undefined,
    XDG_CACHE_HOME: undefined,
    MESHDEMO_KUBECONFIG: undefined,
    MESHDEMO_CONTEXT: undefined,
    STANDIN_KIND_STATE: kindState,
    STANDIN_KIND_LOG: kindLog,
    STANDIN_KIND_OWNER_PID: String(process.pid),
    MESHDEMO_TESTENV_BIN: testenvBinDir(), // the stand-in's node finds the control plane binaries whatever HOME is
    ...extra,
  };
  const shim = installDockerNetworkShim(path.join(tmp, 'docker-network'), network);
  return { tmp, home, cache: path.join(tmp, 'cache'), kindState, kindLog, env: shim.env(env), network: shim };
}
