/**
 * A STAND-IN for kind v0.17.0 — not the real binary: kind needs node images, and no image can be pulled here.
 * Served by the tests' release server as `kind-linux-amd64` (a sh script that execs this file with Node, see
 * kindStandinScript below). Each behaviour imitates kind v0.17.0 (github.com/kubernetes-sigs/kind at tag v0.17.0);
 * the source file is named beside it.
 *
 *   kind version                    stdout "kind v0.17.0 go1.19.2 linux/amd64" ("0.17.0" with -q)   (pkg/cmd/kind/version/version.go)
 *   kind get clusters               names on stdout, or "No kind clusters found." on stderr, exit 0; stopped nodes count
 *                                   (docker ps -a: pkg/cluster/internal/providers/docker/provider.go ListClusters);
 *                                   exit 1 "failed to list clusters" when Docker (DOCKER_HOST) does not answer
 *                                                                                      (pkg/cmd/kind/get/clusters/clusters.go)
 *   kind create cluster [--name N] [--image I] [--config F] [--wait D] [--kubeconfig K] [--retain]
 *       starts a "node": a detached background process running the REAL test control plane (etcd, kube-apiserver,
 *       kube-controller-manager; test/support/control-plane.ts) and the node simulator with a Node "<N>-control-plane"
 *       whose InternalIP is 127.0.0.2 (standing for the node container's address); binds every extraPortMapping's
 *       hostPort on its listenAddress (as docker-proxy does, so a taken port fails creation as with Docker); keeps the
 *       config it was given; merges cluster/user/context "kind-<N>" into the kubeconfig and makes it current. Before
 *       the nodes, the docker network "kind" as kind v0.17.0 ensures it (reused when listed, else created with IPv6;
 *       network.go ensureNetwork) — only when `docker` reaches the tests' network stand-in (docker-network-shim.ts),
 *       recorded in <state>/<N>/network.json; without it no network step is taken (no real network may be made here).
 *   kind delete cluster [--name N] [--kubeconfig K]  stops that process, removes kind-<N> from the kubeconfig(s); exit 0
 *       even when no such cluster exists                                                  (pkg/cluster/internal/delete/delete.go)
 *   kind export kubeconfig [--name N] [--kubeconfig K]   merges kind-<N> again and makes it current; "Set kubectl context to …"
 *                                                                                      (pkg/cmd/kind/export/kubeconfig/kubeconfig.go)
 *   kind load docker-image IMAGE... [--name N] [--nodes N,...]  asks the real Docker daemon (DOCKER_HOST) for each image's
 *       ID first ("image: … not present locally"), then needs the cluster's nodes ("no nodes found for cluster …"); an
 *       image whose ID the node has under another tag is re-tagged, not loaded      (pkg/cmd/kind/load/docker-image/docker-image.go);
 *       what needs loading is saved with the real `docker save` and imported as ctr does: an archive whose index names
 *       content it lacks fails with "ctr: content digest … not found"                (pkg/cluster/nodeutils/util.go)
 *   kind load image-archive FILE [--name N] [--nodes N,...]  the same import of a given archive
 *                                                                                      (pkg/cmd/kind/load/image-archive/image-archive.go)
 * A cluster whose node process is gone (a stopped container; or kept by --retain after a failed create) still exists
 * for kind: listed, refused by create, deleted by delete; export and load fail on it with kind's `docker exec` error.
 * Global flags -v/--verbosity, -q/--quiet (silences stderr) and --loglevel (deprecated) (pkg/cmd/kind/root.go,
 * cmd/kind/app/main.go checkQuiet). Config files are decoded strictly: unknown fields are refused
 * (pkg/internal/apis/config/encoding/load.go yamlUnmarshalStrict); --wait is a Go duration (pflag DurationVar).
 * Errors: "ERROR: <message>" on stderr, exit 1 (cmd/kind/app/main.go logError). Progress goes to stderr, as kind's logger
 * does, in its no-terminal form: " • <phase>  ..." then " ✓ <phase>" (pkg/internal/cli/status.go).
 *
 * Deviations that cannot be avoided here: the API server is the test control plane's 1.20.2 behind a proxy
 * (test/support/version-proxy.ts) that reports the node image's version (v1.19.16) on /version; the client certificate
 * kind writes (kubeadm's admin user) is verified by that proxy and passed on with the API server's front-proxy headers.
 *
 * Env:
 *   STANDIN_KIND_STATE=<dir>     where clusters live (required): <dir>/<name>/{config.yaml,node.json,images.json,node.log,pid};
 *                                the node's image store (test/support/node-simulator.ts): images.json (loaded by `kind load`,
 *                                reference → image id), pulled.json and pulls.log (what its kubelet pulled from a registry)
 *   STANDIN_KIND_OWNER_PID=<pid> the node process stops by itself once this process is gone (no orphans when a test dies)
 *   STANDIN_KIND_LOG=<file>      one line per invocation: JSON array of argv
 *   STANDIN_KIND_VERSION=<v>     version `kind version` reports (default 0.17.0), to stand for another kind on PATH
 *   STANDIN_KIND_NODE_NOT_READY=1  the node's kubelet never reports Ready (as without a working CNI)
 *   STANDIN_KIND_NODE_ARCH=<arch>  the node's architecture (default amd64), as an arm64 node image would report it
 *   KIND_CLUSTER_NAME            default cluster name, as kind honours it (pkg/internal/cli/override.go)
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import yaml from 'js-yaml';
import { NETWORK_SHIM_MARKER } from './docker-network-shim.js';

export const STANDIN_KIND_VERSION = '0.17.0';
export const KIND_STANDIN_JS = fileURLToPath(import.meta.url);
export const NODE_ADDRESS = '127.0.0.2';

class KindError extends Error {}

/** -q / --quiet: kind swaps its logger for a no-op one and discards stderr (cmd/kind/app/main.go Run). */
let quiet = false;
const errLine = (line: string) => {
  if (!quiet) process.stderr.write(`${line}\n`);
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The sh script served as kind-linux-amd64: runs this file with this Node binary. */
export function kindStandinScript(): string {
  const q = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
  return ['#!/bin/sh', '# Stand-in for kind v0.17.0 written by meshdemo\'s tests: NOT the real kind (test/support/kind-standin.ts).', `exec ${q(process.execPath)} ${q(KIND_STANDIN_JS)} "$@"`, ''].join('\n');
}

function stateRoot(): string {
  const dir = process.env.STANDIN_KIND_STATE;
  if (!dir) throw new KindError('STANDIN_KIND_STATE is not set (test stand-in)');
  return dir;
}

function clusterDir(name: string): string {
  return path.join(stateRoot(), name);
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/**
 * Clusters that have a node at all, running or not: kind lists node containers with `docker ps -a`
 * (pkg/cluster/internal/providers/docker/provider.go ListClusters / ListNodes), so a stopped node still counts.
 */
function existingClusters(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .filter((n) => fs.existsSync(path.join(root, n, 'pid')))
    .sort();
}

/** The docker exec error kind reports for a node container that is not running (pkg/exec/types.go RunError). */
function nodeNotRunning(name: string, command: string, wrap: string): KindError {
  return new KindError(
    `${wrap}: command "docker exec --privileged ${name}-control-plane ${command}" failed with error: exit status 1\n\nCommand Output: Error response from daemon: Container ${name}-control-plane is not running`,
  );
}

/** Clusters whose node process runs. */
export function runningClusters(root: string): string[] {
  if (!fs.existsSync(root)) return [];
  return fs
    .readdirSync(root)
    .filter((n) => {
      const pidFile = path.join(root, n, 'pid');
      return fs.existsSync(pidFile) && alive(Number(fs.readFileSync(pidFile, 'utf8')));
    })
    .sort();
}

// ------------------------------------------------------------------------------------------------ flags (cobra/pflag)

/** kind's persistent flags, accepted by every command (pkg/cmd/kind/root.go). */
const GLOBAL_VALUE = ['verbosity', 'loglevel'];
const GLOBAL_BOOL = ['quiet'];
const GLOBAL_SHORT: Record<string, string> = { '-v': 'verbosity', '-q': 'quiet' };

function parseFlags(argv: string[], commandValue: string[], commandBool: string[], commandShort: Record<string, string> = {}): { flags: Map<string, string>; args: string[] } {
  const value = [...commandValue, ...GLOBAL_VALUE];
  const bool = [...commandBool, ...GLOBAL_BOOL];
  const short = { ...commandShort, ...GLOBAL_SHORT };
  const flags = new Map<string, string>();
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    let a = argv[i];
    if (a === '--') {
      args.push(...argv.slice(i + 1));
      break;
    }
    if (/^-[a-zA-Z]$/.test(a) && short[a]) a = `--${short[a]}`;
    if (!a.startsWith('--')) {
      if (a.startsWith('-') && a !== '-') throw new KindError(`unknown shorthand flag: '${a.slice(1, 2)}' in ${a}`);
      args.push(a);
      continue;
    }
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(2, eq) : a.slice(2);
    if (value.includes(name)) {
      const v = eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined) throw new KindError(`flag needs an argument: --${name}`);
      flags.set(name, v);
    } else if (bool.includes(name)) {
      flags.set(name, eq > 0 ? a.slice(eq + 1) : 'true');
    } else {
      throw new KindError(`unknown flag: --${name}`);
    }
  }
  if (flags.has('verbosity') && !/^-?\d+$/.test(flags.get('verbosity')!)) {
    throw new KindError(`invalid argument "${flags.get('verbosity')}" for "-v, --verbosity" flag: strconv.ParseInt: parsing "${flags.get('verbosity')}": invalid syntax`);
  }
  // root.go runE: the deprecated --loglevel still works, with a warning
  if (flags.has('loglevel')) errLine('WARNING: --loglevel is deprecated, please switch to -v and -q!');
  return { flags, args };
}

const GO_UNIT = '(ns|us|µs|μs|ms|s|m|h)';
const GO_DURATION = new RegExp(`^[-+]?((\\d+(\\.\\d*)?|\\.\\d+)${GO_UNIT})+$`);

/** --wait is a pflag DurationVar: Go's time.ParseDuration, so "300" (no unit) is refused. Returns seconds. */
function parseWait(v: string | undefined): number {
  if (v === undefined || v === '0' || v === '') return 0;
  if (!GO_DURATION.test(v)) {
    const why = /^[-+]?[\d.]+$/.test(v) ? `time: missing unit in duration "${v}"` : `time: invalid duration "${v}"`;
    throw new KindError(`invalid argument "${v}" for "--wait" flag: ${why}`);
  }
  const scale: Record<string, number> = { ns: 1e-9, us: 1e-6, µs: 1e-6, μs: 1e-6, ms: 1e-3, s: 1, m: 60, h: 3600 };
  let seconds = 0;
  for (const m of v.matchAll(new RegExp(`(\\d+(?:\\.\\d*)?|\\.\\d+)${GO_UNIT}`, 'g'))) seconds += Number(m[1]) * scale[m[2]];
  return v.startsWith('-') ? -seconds : seconds;
}

/** Go's Duration.String() of a whole number of seconds (waitforready.go formatDuration rounds to the second). */
function goDuration(seconds: number): string {
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const r = s % 60;
  if (h) return `${h}h${m}m${r}s`;
  if (m) return `${m}m${r}s`;
  return `${r}s`;
}

/** --name, else KIND_CLUSTER_NAME, else (create) the config's name, else "kind" (pkg/internal/cli/override.go). */
function clusterName(flags: Map<string, string>, configName?: string): string {
  return flags.get('name') || process.env.KIND_CLUSTER_NAME || configName || 'kind';
}

// ------------------------------------------------------------------------------------------------ kubeconfig

/** pkg/cluster/internal/kubeconfig/internal/kubeconfig/paths.go */
function kubeconfigPaths(explicit: string | undefined): string[] {
  if (explicit) return [explicit];
  const list = [...new Set((process.env.KUBECONFIG ?? '').split(path.delimiter).filter(Boolean))];
  if (list.length) return list;
  return [path.join(process.env.HOME || os.homedir(), '.kube', 'config')];
}

function pathForMerge(explicit: string | undefined): string {
  const p = kubeconfigPaths(explicit);
  if (p.length === 1) return p[0];
  return p.find((f) => fs.existsSync(f) && fs.statSync(f).isFile()) ?? p[p.length - 1];
}

function readKubeconfig(file: string): any {
  if (!fs.existsSync(file)) return {};
  return (yaml.load(fs.readFileSync(file, 'utf8')) as any) ?? {};
}

/** write.go: MkdirAll 0755, file 0600. */
function writeKubeconfig(file: string, doc: any): void {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  fs.writeFileSync(file, yaml.dump(doc), { mode: 0o600 });
}

/** lock.go: <file>.lock made with O_EXCL, as client-go does; a lock someone else holds fails the write. */
function withLock<T>(file: string, fn: () => T): T {
  fs.mkdirSync(path.dirname(file), { recursive: true, mode: 0o755 });
  try {
    fs.closeSync(fs.openSync(`${file}.lock`, 'wx', 0));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') throw new KindError(`failed to lock config file: open ${file}.lock: file exists`);
    throw e;
  }
  try {
    return fn();
  } finally {
    fs.rmSync(`${file}.lock`, { force: true });
  }
}

/** merge.go: insert or replace cluster, user and context "kind-<name>", set current-context; apiVersion/kind kept or added. */
function mergeKubeconfig(explicit: string | undefined, name: string, node: NodeInfo): string {
  const file = pathForMerge(explicit);
  return withLock(file, () => mergeInto(file, name, node));
}

function mergeInto(file: string, name: string, node: NodeInfo): string {
  const doc = readKubeconfig(file);
  const key = `kind-${name}`;
  const upsert = (list: any[] | undefined, entry: any) => {
    const out = [...(list ?? [])];
    const i = out.findIndex((e) => e?.name === key);
    if (i >= 0) out[i] = entry;
    else out.push(entry);
    return out;
  };
  doc.clusters = upsert(doc.clusters, { name: key, cluster: { server: node.server, 'certificate-authority-data': fs.readFileSync(node.caFile).toString('base64') } });
  // kubeconfig.go get: the node's /etc/kubernetes/admin.conf (kubeadm's admin user: a client certificate, CN
  // kubernetes-admin, O system:masters), renamed kind-<name> (internal/kubeconfig/helpers.go KINDFromRawKubeadm)
  doc.users = upsert(doc.users, {
    name: key,
    user: { 'client-certificate-data': fs.readFileSync(node.adminCertFile).toString('base64'), 'client-key-data': fs.readFileSync(node.adminKeyFile).toString('base64') },
  });
  doc.contexts = upsert(doc.contexts, { name: key, context: { cluster: key, user: key } });
  doc['current-context'] = key;
  doc.apiVersion ??= 'v1';
  doc.kind ??= 'Config';
  doc.preferences ??= {};
  writeKubeconfig(file, doc);
  return file;
}

/** remove.go: drop kind-<name> from every kubeconfig path (each locked first), unset current-context if it was that. */
function removeFromKubeconfigs(explicit: string | undefined, name: string): void {
  for (const file of kubeconfigPaths(explicit)) withLock(file, () => removeFrom(file, name));
}

function removeFrom(file: string, name: string): void {
  const key = `kind-${name}`;
  if (!fs.existsSync(file)) return;
  const doc = readKubeconfig(file);
  let mutated = false;
  for (const k of ['clusters', 'users', 'contexts']) {
    const before = (doc[k] ?? []).length;
    doc[k] = (doc[k] ?? []).filter((e: any) => e?.name !== key);
    if (doc[k].length !== before) mutated = true;
  }
  if (doc['current-context'] === key) {
    doc['current-context'] = '';
    mutated = true;
  }
  if (mutated) writeKubeconfig(file, doc);
}

// ------------------------------------------------------------------------------------------------ config (v1alpha4)

interface Mapping {
  containerPort: number;
  hostPort: number;
  listenAddress: string;
  protocol: string;
}

/** The v1alpha4 types' yaml fields (pkg/apis/config/v1alpha4/types.go), for the strict decode. */
const V1ALPHA4_FIELDS: Record<string, string[]> = {
  Cluster: ['kind', 'apiVersion', 'name', 'nodes', 'networking', 'featureGates', 'runtimeConfig', 'kubeadmConfigPatches', 'kubeadmConfigPatchesJSON6902', 'containerdConfigPatches', 'containerdConfigPatchesJSON6902'],
  Node: ['role', 'image', 'labels', 'extraMounts', 'extraPortMappings', 'kubeadmConfigPatches', 'kubeadmConfigPatchesJSON6902'],
  Networking: ['ipFamily', 'apiServerPort', 'apiServerAddress', 'podSubnet', 'serviceSubnet', 'disableDefaultCNI', 'kubeProxyMode'],
  PortMapping: ['containerPort', 'hostPort', 'listenAddress', 'protocol'],
  Mount: ['containerPath', 'hostPath', 'readOnly', 'selinuxRelabel', 'propagation'],
};

/** The line yaml.v3 would name: the first line that holds `key:` (1-based). */
function lineOf(raw: string, key: string): number {
  const i = raw.split('\n').findIndex((l) => new RegExp(`^\\s*(-\\s+)?${key}\\s*:`).test(l));
  return i + 1;
}

/** encoding/load.go yamlUnmarshalStrict (KnownFields): every unknown field, and ports that are not int32, are errors. */
function strictDecodeErrors(doc: any, raw: string): string[] {
  const errs: string[] = [];
  const fields = (obj: any, type: string) => {
    if (!obj || typeof obj !== 'object' || Array.isArray(obj)) return;
    for (const k of Object.keys(obj)) if (!V1ALPHA4_FIELDS[type].includes(k)) errs.push(`  line ${lineOf(raw, k)}: field ${k} not found in type v1alpha4.${type}`);
  };
  fields(doc, 'Cluster');
  fields(doc.networking, 'Networking');
  for (const n of Array.isArray(doc.nodes) ? doc.nodes : []) {
    fields(n, 'Node');
    for (const m of Array.isArray(n?.extraMounts) ? n.extraMounts : []) fields(m, 'Mount');
    for (const m of Array.isArray(n?.extraPortMappings) ? n.extraPortMappings : []) {
      fields(m, 'PortMapping');
      for (const k of ['containerPort', 'hostPort']) {
        const v = m?.[k];
        if (v !== undefined && v !== null && !(Number.isInteger(v) && v >= -2147483648 && v <= 2147483647)) {
          errs.push(`  line ${lineOf(raw, k)}: cannot unmarshal !!${typeof v === 'string' ? 'str' : typeof v === 'number' ? 'float' : 'map'} \`${v}\` into int32`);
        }
      }
    }
  }
  return errs;
}

/** validate.go validatePort: -1 (the backend picks) up to 65535. */
function portError(p: number | undefined): string | undefined {
  const v = p ?? 0;
  return v < -1 || v > 65535 ? `invalid port number: ${v}` : undefined;
}

/**
 * pkg/internal/apis/config/encoding/load.go (read, apiVersion then kind, strict decode) and validate.go (node roles,
 * ports, at least one control-plane node). Errors are returned without kind's "failed to create cluster: " prefix.
 */
function loadConfig(file: string | undefined): { name?: string; images: string[]; mappings: Mapping[]; raw: string; invalid: string[] } {
  if (!file) return { images: [], mappings: [], raw: '', invalid: [] };
  let raw: string;
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch {
    throw new KindError(`failed to create cluster: error reading file: open ${file}: no such file or directory`);
  }
  const doc = yaml.load(raw) as any;
  if (doc?.apiVersion !== 'kind.x-k8s.io/v1alpha4') throw new KindError(`failed to create cluster: unknown apiVersion: ${doc?.apiVersion ?? ''}`);
  if (doc?.kind !== 'Cluster') throw new KindError(`failed to create cluster: unknown kind ${doc?.kind ?? ''} for apiVersion: ${doc.apiVersion}`);
  const decode = strictDecodeErrors(doc, raw);
  if (decode.length) throw new KindError(`failed to create cluster: unable to decode config: yaml: unmarshal errors:\n${decode.join('\n')}`);
  const nodes: any[] = doc.nodes ?? [{ role: 'control-plane' }];
  // validate.go runs after the name is known and alreadyExists; its findings are returned for createCluster to raise in that order
  const invalid: string[] = [];
  nodes.forEach((n, i) => {
    const errs: string[] = [];
    if (n.role !== 'control-plane' && n.role !== 'worker') errs.push(`"${n.role ?? ''}" is not a valid node role`);
    for (const m of n.extraPortMappings ?? []) {
      const h = portError(m.hostPort);
      if (h) errs.push(`invalid hostPort: ${h}`);
      const c = portError(m.containerPort);
      if (c) errs.push(`invalid containerPort: ${c}`);
    }
    if (errs.length) invalid.push(`invalid configuration for node ${i}: ${errs.length === 1 ? errs[0] : `[${errs.join(', ')}]`}`);
  });
  if (!nodes.some((n) => n.role === 'control-plane')) invalid.push('must have at least one control-plane node');
  const mappings: Mapping[] = [];
  for (const n of nodes) {
    for (const m of n.extraPortMappings ?? []) {
      mappings.push({ containerPort: m.containerPort ?? 0, hostPort: m.hostPort ?? 0, listenAddress: m.listenAddress || '0.0.0.0', protocol: m.protocol || 'TCP' });
    }
  }
  return { name: doc.name, images: nodes.map((n) => n.image).filter(Boolean), mappings, raw, invalid };
}

// ------------------------------------------------------------------------------------------------ commands

interface NodeInfo {
  /** Whether the node's kubelet reports Ready (STANDIN_KIND_NODE_NOT_READY: never). */
  ready: boolean;
  server: string;
  caFile: string;
  /** The control plane's admin token: for the tests' own requests, never written into a kubeconfig. */
  adminToken: string;
  adminCertFile: string;
  adminKeyFile: string;
  image: string;
  mappings: Mapping[];
}

function log(argv: string[]): void {
  if (process.env.STANDIN_KIND_LOG) fs.appendFileSync(process.env.STANDIN_KIND_LOG, JSON.stringify(argv) + '\n');
}

/** pkg/internal/cli/status.go without a terminal: " • <phase>  ..." when it starts, " ✓ <phase>" / " ✗ <phase>" when it ends. */
function status() {
  let current = '';
  const end = (ok: boolean) => {
    if (current) errLine(` ${ok ? '✓' : '✗'} ${current}`);
    current = '';
  };
  return {
    start(phase: string) {
      end(true);
      current = phase;
      errLine(` • ${phase}  ...`);
    },
    end,
  };
}

async function createCluster(argv: string[]): Promise<void> {
  const { flags, args } = parseFlags(argv, ['name', 'config', 'image', 'wait', 'kubeconfig'], ['retain'], { '-n': 'name' });
  if (args.length) throw new KindError(`unknown command "${args[0]}" for "kind create cluster"`);
  const wait = parseWait(flags.get('wait'));
  const config = loadConfig(flags.get('config'));
  const name = clusterName(flags, config.name);
  // create.go Cluster: alreadyExists (docker ps -a: a stopped node counts), then Config.Validate
  if (existingClusters(stateRoot()).includes(name)) throw new KindError(`failed to create cluster: node(s) already exist for a cluster with the name "${name}"`);
  const invalid = [...(/^[a-z0-9.-]+$/.test(name) ? [] : [`'${name}' is not a valid cluster name, cluster names must match \`^[a-z0-9.-]+$\``]), ...config.invalid];
  if (invalid.length) throw new KindError(`failed to create cluster: ${invalid.length === 1 ? invalid[0] : `[${invalid.join(', ')}]`}`);
  // --image overrides every node's image (create.go fixupOptions); default image of v0.17.0 otherwise
  const image = flags.get('image') || config.images[0] || 'kindest/node:v1.25.3@sha256:f52781bc0d7a19fb6c405c2af83abfeb311f130707a0e219175677e366cc45d1';
  const dir = clusterDir(name);
  const st = status();
  errLine(`Creating cluster "${name}" ...\n`);
  // providers/docker/images.go ensureNodeImages: the friendly name drops the digest
  st.start(`Ensuring node image (${image.split('@sha256:')[0]}) 🖼`);
  if (!/^kindest\/node:v[\d.]+(@sha256:[0-9a-f]{64})?$/.test(image)) {
    st.end(false);
    throw new KindError(`failed to create cluster: failed to pull image "${image}": command "docker pull ${image}" failed with error: exit status 1`);
  }
  const network = ensureNetwork();
  st.start('Preparing nodes 📦 ');
  // providers/docker/provision.go generatePortMappings: TCP, UDP or SCTP, exactly as spelled
  const badProtocol = config.mappings.find((m) => !['TCP', 'UDP', 'SCTP'].includes(m.protocol));
  if (badProtocol) {
    st.end(false);
    throw new KindError(`failed to create cluster: unknown port mapping protocol: ${badProtocol.protocol}`);
  }
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  if (config.raw) fs.writeFileSync(path.join(dir, 'config.yaml'), config.raw);
  if (network) fs.writeFileSync(path.join(dir, 'network.json'), JSON.stringify(network));
  fs.writeFileSync(path.join(dir, 'args.json'), JSON.stringify(argv));
  // the "node container": a detached process that outlives this command, like a container outlives `kind create`
  const logFd = fs.openSync(path.join(dir, 'node.log'), 'a');
  const child = spawn(process.execPath, [KIND_STANDIN_JS, '__node', name, image], { detached: true, stdio: ['ignore', logFd, logFd], env: process.env });
  fs.closeSync(logFd);
  child.unref();
  fs.writeFileSync(path.join(dir, 'pid'), String(child.pid));
  const nodeFile = path.join(dir, 'node.json');
  const errorFile = path.join(dir, 'node-error');
  for (;;) {
    if (fs.existsSync(nodeFile)) break;
    if (fs.existsSync(errorFile) || !alive(child.pid!)) {
      const why = fs.existsSync(errorFile) ? fs.readFileSync(errorFile, 'utf8').trim() : 'the node exited';
      st.end(false);
      // create.go: on failure the cluster is deleted unless --retain (then its stopped node stays, listed by get clusters)
      if (!flags.has('retain')) await stopNode(name);
      throw new KindError(`failed to create cluster: ${why}`);
    }
    await sleep(200);
  }
  const node = JSON.parse(fs.readFileSync(nodeFile, 'utf8')) as NodeInfo;
  st.start('Writing configuration 📜');
  st.start('Starting control-plane 🕹️');
  st.start('Installing CNI 🔌');
  st.start('Installing StorageClass 💾');
  st.end(true);
  // actions/waitforready: skipped entirely for --wait 0; a node not Ready in time is only a warning, and create
  // goes on and exits 0 (waitforready.go: " • WARNING: Timed out waiting for Ready ⚠️", return nil)
  if (wait > 0) {
    st.start(`Waiting ≤ ${goDuration(wait)} for control-plane = Ready ⏳`);
    if (node.ready) {
      st.end(true);
      errLine(' • Ready after 1s 💚');
    } else {
      await sleep(wait * 1000);
      st.end(false);
      errLine(' • WARNING: Timed out waiting for Ready ⚠️');
    }
  }
  // create.go: the kubeconfig export comes after the actions and does not delete the cluster when it fails;
  // createcluster.go wraps every error of provider.Create in "failed to create cluster"
  try {
    mergeKubeconfig(flags.get('kubeconfig'), name, node);
  } catch (e) {
    if (e instanceof KindError) throw new KindError(`failed to create cluster: ${e.message}`);
    throw e;
  }
  // create.go logUsage / logSalutation
  const sample = `kubectl cluster-info --context kind-${name}${flags.get('kubeconfig') ? ` --kubeconfig ${flags.get('kubeconfig')}` : ''}`;
  errLine(`Set kubectl context to "kind-${name}"`);
  errLine(`You can now use your cluster with:\n\n${sample}\n`);
  errLine('Have a nice day! 👋');
}

/**
 * Does `docker network …` reach the tests' network stand-in (test/support/docker-network-shim.ts)? Its env names it
 * (STANDIN_DOCKER_NETWORK_SHIM), and the first `docker` on PATH is it, or a test's script that passes calls on to it.
 */
function networkShimOnPath(): boolean {
  const shim = process.env.STANDIN_DOCKER_NETWORK_SHIM;
  if (!shim) return false;
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const file = path.join(dir, 'docker');
    try {
      fs.accessSync(file, fs.constants.X_OK);
    } catch {
      continue;
    }
    const text = fs.statSync(file).size < 65536 ? fs.readFileSync(file, 'utf8') : '';
    return text.includes(NETWORK_SHIM_MARKER) || text.includes(path.join(shim, 'docker'));
  }
  return false;
}

/** pkg/exec/helpers.go PrettyCommand: the command as kind prints it, each argument shell-quoted when it needs it. */
function prettyCommand(args: string[]): string {
  return ['docker', ...args].map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : `'${a.replace(/'/g, `'"'"'`)}'`)).join(' ');
}

/** kind's RunError (pkg/exec/types.go): the command, its exit status, and what it printed. */
class RunError extends KindError {
  constructor(
    args: string[],
    status: number,
    readonly output: string,
  ) {
    super(`command "${prettyCommand(args)}" failed with error: exit status ${status}\n\nCommand Output: ${output.trim()}`);
  }
}

/** `docker …` as kind's exec.Command runs it (the docker first on PATH). */
function dockerRun(args: string[]): string {
  try {
    return execFileSync('docker', args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
  } catch (e) {
    const err = e as { status?: number; stdout?: string; stderr?: string };
    throw new RunError(args, err.status ?? 1, `${err.stdout ?? ''}${err.stderr ?? ''}`);
  }
}

/** network.go generateULASubnetFromName: fc00::/8 plus bytes 2–7 of sha1(name, attempt as little-endian int32), /64. */
function ulaSubnet(name: string, attempt: number): string {
  const le = Buffer.alloc(4);
  le.writeInt32LE(attempt);
  const d = createHash('sha1').update(name).update(le).digest();
  return `${[0xfc00, (d[2] << 8) | d[3], (d[4] << 8) | d[5], (d[6] << 8) | d[7]].map((x) => x.toString(16)).join(':')}::/64`;
}

/**
 * providers/docker/provider.go Provision → network.go ensureNetwork at v0.17.0: the network "kind" (or
 * KIND_EXPERIMENTAL_DOCKER_NETWORK, with kind's two warnings) is reused as it is when `docker network ls
 * --filter=name=^kind$ --format={{.ID}}` lists one; else created as a bridge with masquerading, the default bridge's
 * MTU and an IPv6 ULA subnet; only "Cannot read IPv6 setup for bridge" makes kind try once more without IPv6. Any other
 * failure (Docker 27/28 without ip6tables NAT, kind#3748) fails the cluster: "failed to ensure docker network".
 * The stand-in takes this step only when the `docker` first on PATH is the tests' network stand-in
 * (test/support/docker-network-shim.ts): a real bridge network would take a private-range address here. What it did
 * is recorded in <state>/<cluster>/network.json: {name, created: false} when it reused one (kind looks no further),
 * else {name, created: true, ipv6}: whether the network it made has IPv6.
 */
function ensureNetwork(): { name: string; created: boolean; ipv6?: boolean } | undefined {
  if (!networkShimOnPath()) return undefined;
  let name = 'kind';
  if (process.env.KIND_EXPERIMENTAL_DOCKER_NETWORK) {
    errLine('WARNING: Overriding docker network due to KIND_EXPERIMENTAL_DOCKER_NETWORK');
    errLine('WARNING: Here be dragons! This is not supported currently.');
    name = process.env.KIND_EXPERIMENTAL_DOCKER_NETWORK;
  }
  // the node image's status line stays open: create.go returns Provision's error without ending it
  const fail = (e: unknown): never => {
    if (e instanceof KindError) throw new KindError(`failed to create cluster: failed to ensure docker network: ${e.message}`);
    throw e;
  };
  try {
    const ids = dockerRun(['network', 'ls', `--filter=name=^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`, '--format={{.ID}}']).trim();
    if (ids) return { name, created: false };
  } catch (e) {
    fail(e);
  }
  let mtu = 0;
  try {
    const lines = dockerRun(['network', 'inspect', 'bridge', '-f', '{{ index .Options "com.docker.network.driver.mtu" }}']).split('\n').filter(Boolean);
    mtu = lines.length === 1 ? Number(lines[0]) || 0 : 0;
  } catch {
    // getDefaultNetworkMTU: no MTU option then
  }
  const args = (ipv6: boolean) => ['network', 'create', '-d=bridge', '-o', 'com.docker.network.bridge.enable_ip_masquerade=true', ...(mtu > 0 ? ['-o', `com.docker.network.driver.mtu=${mtu}`] : []), ...(ipv6 ? ['--ipv6', '--subnet', ulaSubnet(name, 0)] : []), name];
  try {
    dockerRun(args(true));
    return { name, created: true, ipv6: true };
  } catch (e) {
    const output = e instanceof RunError ? e.output : '';
    if (!output.startsWith('Error response from daemon: Cannot read IPv6 setup for bridge')) fail(e);
  }
  try {
    dockerRun(args(false));
  } catch (e) {
    fail(e);
  }
  return { name, created: true, ipv6: false };
}

async function stopNode(name: string): Promise<void> {
  const dir = clusterDir(name);
  const pidFile = path.join(dir, 'pid');
  if (fs.existsSync(pidFile)) {
    const pid = Number(fs.readFileSync(pidFile, 'utf8'));
    if (alive(pid)) {
      process.kill(pid, 'SIGTERM');
      for (let i = 0; i < 150 && alive(pid); i++) await sleep(100);
      if (alive(pid)) process.kill(pid, 'SIGKILL');
    }
  }
  fs.rmSync(dir, { recursive: true, force: true });
}

async function deleteCluster(argv: string[]): Promise<void> {
  const { flags, args } = parseFlags(argv, ['name', 'kubeconfig'], [], { '-n': 'name' });
  if (args.length) throw new KindError(`unknown command "${args[0]}" for "kind delete cluster"`);
  const name = clusterName(flags);
  errLine(`Deleting cluster "${name}" ...`);
  // delete.go: a kubeconfig that cannot be updated is logged, the nodes are deleted anyway, and the exit is 0
  try {
    removeFromKubeconfigs(flags.get('kubeconfig'), name);
  } catch (e) {
    if (!(e instanceof KindError)) throw e;
    errLine(`failed to update kubeconfig: ${e.message}`);
  }
  await stopNode(name);
}

function exportKubeconfig(argv: string[]): void {
  const { flags, args } = parseFlags(argv, ['name', 'kubeconfig'], ['internal'], { '-n': 'name' });
  if (args.length) throw new KindError(`unknown command "${args[0]}" for "kind export kubeconfig"`);
  const name = clusterName(flags);
  const nodeFile = path.join(clusterDir(name), 'node.json');
  // pkg/cluster/internal/kubeconfig/kubeconfig.go get: no node at all, or a node it cannot exec into
  if (!existingClusters(stateRoot()).includes(name)) {
    throw new KindError(`could not locate any control plane nodes for cluster named '${name}'. Use the --name option to select a different cluster`);
  }
  if (!runningClusters(stateRoot()).includes(name) || !fs.existsSync(nodeFile)) throw nodeNotRunning(name, 'cat /etc/kubernetes/admin.conf', 'failed to get cluster internal kubeconfig');
  mergeKubeconfig(flags.get('kubeconfig'), name, JSON.parse(fs.readFileSync(nodeFile, 'utf8')) as NodeInfo);
  errLine(`Set kubectl context to "kind-${name}"`);
}

/**
 * kind lists clusters by asking Docker (providers/docker/provider.go ListClusters: `docker ps -a --filter
 * label=io.x-k8s.kind.cluster …`); when that fails — Docker down — `get clusters` fails with exit 1, "ERROR: failed
 * to list clusters: command "docker ps …" failed with error: exit status 1" and docker's output (cmd/kind/app/main.go
 * logError: "\nCommand Output: …"). The stand-in runs that very command against the test's Docker (DOCKER_HOST); the
 * names come from the stand-in's state (its nodes are no containers). Without DOCKER_HOST (tests with no Docker at
 * all) Docker is taken to answer.
 */
function listClustersOrFail(): string[] {
  if (process.env.DOCKER_HOST) {
    const args = ['ps', '-a', '--filter', 'label=io.x-k8s.kind.cluster', '--format', '{{.Label "io.x-k8s.kind.cluster"}}'];
    try {
      execFileSync('docker', args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 });
    } catch (e) {
      const output = `${(e as { stdout?: Buffer }).stdout ?? ''}${(e as { stderr?: Buffer }).stderr ?? ''}`;
      throw new KindError(`failed to list clusters: command "${prettyCommand(args)}" failed with error: exit status ${(e as { status?: number }).status ?? 1}\n\nCommand Output: ${output.trim()}`);
    }
  }
  return existingClusters(stateRoot());
}

function getClusters(argv: string[]): void {
  const { args } = parseFlags(argv, [], []);
  if (args.length) throw new KindError(`unknown command "${args[0]}" for "kind get clusters"`);
  const names = listClustersOrFail();
  if (!names.length) errLine('No kind clusters found.');
  for (const n of names) process.stdout.write(`${n}\n`);
}

/** docker-image.go sanitizeImage: the name containerd lists, e.g. meshdemo/x:1 → docker.io/meshdemo/x:1. */
function sanitizeImage(image: string): string {
  let out = image.includes('/') ? image : `library/${image}`;
  const i = out.indexOf('/');
  if (i === -1 || (!/[.:]/.test(out.slice(0, i)) && out.slice(0, i) !== 'localhost')) out = `docker.io/${out}`;
  if (!out.includes(':')) out += ':latest';
  return out;
}

/**
 * kind's save (docker-image.go): `docker save -o <TempDir "images-tar">/images.tar <images...>` with the docker on PATH;
 * a failure is kind's RunError (pkg/exec/local.go: the command's combined output becomes "Command Output").
 */
function dockerSave(images: string[], dir: string): string {
  const tar = path.join(dir, 'images.tar');
  try {
    execFileSync('docker', ['save', '-o', tar, ...images], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    const output = `${(e as { stdout?: Buffer }).stdout ?? ''}${(e as { stderr?: Buffer }).stderr ?? ''}`.trim();
    throw new KindError(`command "docker save -o ${tar} ${images.join(' ')}" failed with error: exit status ${(e as { status?: number }).status ?? 1}\n\nCommand Output: ${output}`);
  }
  return tar;
}

const tarEntries = (archive: string) => new Set(execFileSync('tar', ['-tf', archive], { encoding: 'utf8' }).split('\n').map((e) => e.replace(/^\.\//, '')).filter(Boolean));
const tarJson = (archive: string, entry: string) => JSON.parse(execFileSync('tar', ['-xOf', archive, entry], { encoding: 'utf8', maxBuffer: 64 << 20 }));

/**
 * nodeutils.LoadImageArchive (pkg/cluster/nodeutils/util.go at v0.17.0): the node's containerd config names the
 * snapshotter (a stopped node fails there), then `ctr --namespace=k8s.io images import --all-platforms --digests
 * --snapshotter=<it> -` reads the archive from stdin through `docker exec --privileged -i` (providers/docker/node.go).
 * With --all-platforms ctr needs the content of every manifest an OCI index.json names, and of each manifest's config
 * and layers: the first one the archive lacks fails the import with "ctr: content digest <digest>: not found" (what
 * Docker's containerd image store produces, kubernetes-sigs/kind#3795). Docker's legacy manifest.json names the
 * images (RepoTags) and their ids (the config's digest). Returns reference → image id.
 */
function ctrImport(archive: string, cluster: string, running: boolean): Record<string, string> {
  if (!running) throw nodeNotRunning(cluster, 'containerd config dump', 'failed to detect containerd snapshotter');
  const entries = tarEntries(archive);
  const missing = (digest: string) =>
    new KindError(
      `failed to load image: command "docker exec --privileged -i ${cluster}-control-plane ctr --namespace=k8s.io images import --all-platforms --digests --snapshotter=overlayfs -" failed with error: exit status 1\n\nCommand Output: ctr: content digest ${digest}: not found`,
    );
  const blob = (digest: string) => `blobs/${digest.replace(':', '/')}`;
  const walk = (d: { mediaType?: string; digest: string }) => {
    if (!entries.has(blob(d.digest))) throw missing(d.digest);
    const doc = tarJson(archive, blob(d.digest));
    if (Array.isArray(doc.manifests)) for (const child of doc.manifests) walk(child);
    else for (const part of [doc.config, ...(doc.layers ?? [])].filter(Boolean)) if (!entries.has(blob(part.digest))) throw missing(part.digest);
  };
  if (entries.has('index.json')) for (const d of tarJson(archive, 'index.json').manifests ?? []) walk(d);
  const images: Record<string, string> = {};
  if (entries.has('manifest.json')) {
    for (const m of tarJson(archive, 'manifest.json')) for (const tag of m.RepoTags ?? []) images[tag] = `sha256:${path.basename(m.Config).replace(/\.json$/, '')}`;
  }
  return images;
}

function loadDockerImage(argv: string[]): void {
  const { flags, args } = parseFlags(argv, ['name', 'nodes'], [], { '-n': 'name' });
  if (!args.length) throw new KindError('a list of image names is required');
  const name = clusterName(flags);
  const images = [...new Set(args)]; // removeDuplicates
  // first: every image must be in the local Docker ("docker image inspect -f {{ .Id }}")
  const ids = images.map((image) => {
    try {
      return execFileSync('docker', ['image', 'inspect', '-f', '{{ .Id }}', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
    } catch {
      throw new KindError(`image: "${image}" not present locally`);
    }
  });
  // then: the cluster's nodes (a stopped node is still one), and --nodes must name them
  if (!existingClusters(stateRoot()).includes(name)) throw new KindError(`no nodes found for cluster "${name}"`);
  const node = `${name}-control-plane`;
  for (const wanted of (flags.get('nodes') ?? '').split(',').filter(Boolean)) {
    if (wanted !== node) throw new KindError(`unknown node: "${wanted}"`);
  }
  const running = runningClusters(stateRoot()).includes(name);
  const file = path.join(clusterDir(name), 'images.json');
  const loaded: Record<string, string> = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
  let needsLoad = false;
  images.forEach((image, i) => {
    const id = ids[i];
    // checkIfImageReTagRequired: the tags the node has for this image ID
    const tags = running ? new Set(Object.entries(loaded).filter(([, v]) => v === id).map(([ref]) => sanitizeImage(ref))) : new Set<string>();
    if (tags.size && tags.has(sanitizeImage(image))) {
      errLine(`Image: "${image}" with ID "${id}" found to be already present on all nodes.`);
    } else if (tags.size) {
      errLine(`Image with ID: ${id} already present on the node ${node} but is missing the tag ${sanitizeImage(image)}. re-tagging...`);
      loaded[image] = id;
    } else {
      errLine(`Image: "${image}" with ID "${id}" not yet present on node "${node}", loading...`);
      needsLoad = true;
      loaded[image] = id;
    }
  });
  if (needsLoad) {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'images-tar'));
    try {
      ctrImport(dockerSave(images, dir), name, running);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }
  fs.writeFileSync(file, JSON.stringify(loaded, null, 2));
}

/**
 * `kind load image-archive <IMAGE.tar> [--name N] [--nodes N,...]` (pkg/cmd/kind/load/image-archive/image-archive.go):
 * os.Stat of the file (Go's "stat <file>: no such file or directory"), the cluster's nodes, then the same import into
 * every selected node, whatever it already holds.
 */
function loadImageArchive(argv: string[]): void {
  const { flags, args } = parseFlags(argv, ['name', 'nodes'], [], { '-n': 'name' });
  if (!args.length) throw new KindError('name of image archive is required');
  const archive = args[0];
  if (!fs.existsSync(archive)) throw new KindError(`stat ${archive}: no such file or directory`);
  const name = clusterName(flags);
  if (!existingClusters(stateRoot()).includes(name)) throw new KindError(`no nodes found for cluster "${name}"`);
  for (const wanted of (flags.get('nodes') ?? '').split(',').filter(Boolean)) {
    if (wanted !== `${name}-control-plane`) throw new KindError(`unknown node: ${wanted}`);
  }
  const imported = ctrImport(archive, name, runningClusters(stateRoot()).includes(name));
  const file = path.join(clusterDir(name), 'images.json');
  const loaded: Record<string, string> = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : {};
  fs.writeFileSync(file, JSON.stringify({ ...loaded, ...imported }, null, 2));
}

/** The "node container": the real control plane, the simulated node, the host port bindings; until SIGTERM. */
async function runNode(name: string, image: string): Promise<void> {
  const dir = clusterDir(name);
  const { startControlPlane } = await import('./control-plane.js');
  const { createImageStore, startNodeSimulator } = await import('./node-simulator.js');
  const { startVersionProxy } = await import('./version-proxy.js');
  const configFile = path.join(dir, 'config.yaml');
  const config = loadConfig(fs.existsSync(configFile) ? configFile : undefined);
  const servers: net.Server[] = [];
  let cp: Awaited<ReturnType<typeof startControlPlane>> | undefined;
  let sim: Awaited<ReturnType<typeof startNodeSimulator>> | undefined;
  let proxy: Awaited<ReturnType<typeof startVersionProxy>> | undefined;
  let stopping = false;
  const stop = async (code: number) => {
    if (stopping) return;
    stopping = true;
    for (const s of servers) s.close();
    await proxy?.close().catch(() => {});
    await sim?.stop().catch(() => {});
    await cp?.stop().catch(() => {});
    process.exit(code);
  };
  process.on('SIGTERM', () => void stop(0));
  process.on('SIGINT', () => void stop(0));
  const owner = Number(process.env.STANDIN_KIND_OWNER_PID);
  if (owner) setInterval(() => !alive(owner) && void stop(0), 1000).unref();
  try {
    // docker-proxy binds each hostPort first: a taken port fails the container's start
    for (const m of config.mappings) {
      const server = net.createServer((sock) => sock.destroy());
      await new Promise<void>((resolve, reject) => {
        server.once('error', (e: NodeJS.ErrnoException) =>
          reject(new Error(`command "docker run --name ${name}-control-plane ..." failed with error: exit status 125 (Bind for ${m.listenAddress}:${m.hostPort} failed: port is already allocated: ${e.code})`)),
        );
        server.listen(m.hostPort, m.listenAddress, () => resolve());
      });
      servers.push(server);
    }
    cp = await startControlPlane();
    // the node's containerd: what `kind load` put there (images.json), what it pulled itself (pulled.json, pulls.log)
    const images = createImageStore({ loadedFile: path.join(dir, 'images.json'), pulledFile: path.join(dir, 'pulled.json'), pullLog: path.join(dir, 'pulls.log') });
    const ready = !process.env.STANDIN_KIND_NODE_NOT_READY;
    sim = await startNodeSimulator(cp.kubeconfigPath, { nodeName: `${name}-control-plane`, internalIP: NODE_ADDRESS, images, nodeReady: ready, architecture: process.env.STANDIN_KIND_NODE_ARCH || 'amd64' });
    // the API server answers /version with the node image's Kubernetes version, as the image's kube-apiserver would
    const version = /^kindest\/node:(v\d+\.\d+\.\d+)/.exec(image)?.[1];
    if (version) proxy = await startVersionProxy(cp, version);
    const info: NodeInfo = { ready, server: proxy?.server ?? cp.server, caFile: proxy?.caFile ?? cp.caFile, adminToken: cp.adminToken, adminCertFile: cp.clientCerts.admin.certFile, adminKeyFile: cp.clientCerts.admin.keyFile, image, mappings: config.mappings };
    fs.writeFileSync(path.join(dir, 'node.json.tmp'), JSON.stringify(info));
    fs.renameSync(path.join(dir, 'node.json.tmp'), path.join(dir, 'node.json'));
  } catch (e) {
    fs.writeFileSync(path.join(dir, 'node-error'), (e as Error).message.split('\n')[0]);
    await stop(1);
  }
  setInterval(() => {}, 1 << 30);
}

export async function main(argv: string[]): Promise<number> {
  log(argv);
  if (argv[0] === '__node') {
    await runNode(argv[1], argv[2]);
    return -1;
  }
  // cmd/kind/app/main.go checkQuiet: -q / --quiet anywhere silences stderr, errors included
  quiet = argv.some((x) => x === '-q' || x === '--quiet' || x === '--quiet=true');
  // the global flags may come before the command too (pkg/cmd/kind/root.go persistent flags)
  const words: string[] = [];
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const depth = words[0] === 'version' ? 1 : 2;
    if (words.length < depth && !argv[i].startsWith('-')) words.push(argv[i]);
    else if (words.length < depth && ['-v', '--verbosity', '--loglevel'].includes(argv[i])) rest.push(argv[i], argv[++i]);
    else rest.push(argv[i]);
  }
  const [a, b] = words;
  try {
    if (a === 'version') {
      const { args } = parseFlags(rest, [], []);
      if (args.length) throw new KindError(`unknown command "${args[0]}" for "kind version"`);
      const v = process.env.STANDIN_KIND_VERSION || STANDIN_KIND_VERSION;
      // version.go: with -q only the semver
      process.stdout.write(quiet ? `${v}\n` : `kind v${v} go1.19.2 linux/amd64\n`);
      return 0;
    }
    if (a === 'create' && b === 'cluster') await createCluster(rest);
    else if (a === 'delete' && b === 'cluster') await deleteCluster(rest);
    else if (a === 'get' && b === 'clusters') getClusters(rest);
    else if (a === 'load' && b === 'docker-image') loadDockerImage(rest);
    else if (a === 'load' && b === 'image-archive') loadImageArchive(rest);
    else if (a === 'export' && b === 'kubeconfig') exportKubeconfig(rest);
    else throw new KindError(`unknown command "${[a, b].filter(Boolean).join(' ')}" for "kind"`);
    return 0;
  } catch (e) {
    if (!(e instanceof KindError)) throw e;
    errLine(`ERROR: ${e.message}`);
    return 1;
  }
}

if (process.argv[1] && pathToFileURL(process.argv[1]).href === import.meta.url) {
  void main(process.argv.slice(2)).then((code) => {
    if (code >= 0) process.exit(code);
  });
}

/** Test teardown: stop every stand-in cluster under `root` (their node processes and control planes). */
export async function stopStandinClusters(root: string): Promise<void> {
  if (!fs.existsSync(root)) return;
  const previous = process.env.STANDIN_KIND_STATE;
  process.env.STANDIN_KIND_STATE = root;
  try {
    for (const name of fs.readdirSync(root)) await stopNode(name);
  } finally {
    if (previous === undefined) delete process.env.STANDIN_KIND_STATE;
    else process.env.STANDIN_KIND_STATE = previous;
  }
}

/** Writes `<dir>/kind`, the stand-in as an executable to put first on PATH. */
export function installKindStandin(dir: string): string {
  const file = path.join(dir, 'kind');
  fs.writeFileSync(file, kindStandinScript(), { mode: 0o755 });
  return file;
}

/**
 * A cluster that exists for `get clusters` and `load docker-image` without a control plane, for tests that only load
 * images: its "node container" is an idle child process, stopped by stopStandinClusters(root).
 */
export function registerIdleCluster(root: string, name: string): void {
  const dir = path.join(root, name);
  fs.mkdirSync(dir, { recursive: true });
  const child = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1 << 30)'], { stdio: 'ignore' });
  child.unref();
  fs.writeFileSync(path.join(dir, 'pid'), String(child.pid));
}

export interface KindOnPath {
  /** The temporary directory holding `kind` (first on PATH) and, with `log`, `calls.log`. */
  bin: string;
  /** The stand-in's state (STANDIN_KIND_STATE): `<bin>/clusters`. */
  state: string;
  /** Puts PATH and the stand-in's variables back, stops the clusters under state and removes bin. */
  restore(): Promise<void>;
}

/**
 * For tests that run steps in this process: the stand-in first on this process's PATH, with an idle cluster
 * `cluster` (registerIdleCluster); with `log`, every call is logged to `<bin>/calls.log` (STANDIN_KIND_LOG).
 */
export function kindStandinOnPath(cluster: string, opts: { log?: boolean } = {}): KindOnPath {
  const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'meshdemo-kind-standin-'));
  const state = path.join(bin, 'clusters');
  installKindStandin(bin);
  registerIdleCluster(state, cluster);
  const saved = { PATH: process.env.PATH, STANDIN_KIND_STATE: process.env.STANDIN_KIND_STATE, STANDIN_KIND_LOG: process.env.STANDIN_KIND_LOG };
  process.env.PATH = `${bin}${path.delimiter}${process.env.PATH}`;
  process.env.STANDIN_KIND_STATE = state;
  if (opts.log) process.env.STANDIN_KIND_LOG = path.join(bin, 'calls.log');
  return {
    bin,
    state,
    async restore() {
      for (const [name, value] of Object.entries(saved)) {
        if (value === undefined) delete process.env[name];
        else process.env[name] = value;
      }
      await stopStandinClusters(state);
      fs.rmSync(bin, { recursive: true, force: true });
    },
  };
}
