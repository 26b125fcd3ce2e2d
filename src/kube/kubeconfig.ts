import fs from 'node:fs';
import type https from 'node:https';
import os from 'node:os';
import path from 'node:path';
import type { KubeConfig } from '@kubernetes/client-node';
import yaml from 'js-yaml';
import { createHash } from 'node:crypto';
import { PreflightError, UsageError } from '../core/errors.js';
import { urlCredentials } from '../core/secrets.js';

/*
 * The one owner of the kubeconfig: which files kubectl reads and which one kind writes, reading them, merging them
 * as kubectl does, and looking a context up. Everything else asks this module.
 */

export interface ResolvedKubeconfig {
  /** client-node's KubeConfig for the resolved context, loaded on first use (port-forward, auth plugins). */
  kubeConfig(): Promise<KubeConfig>;
  /**
   * The context's TLS options and credentials on a request, as KubeConfig.applyToHTTPSOptions does. Users with
   * a token or a client certificate are handled here; exec and auth-provider plugins, basic auth, proxy-url and
   * plain-http clusters go through client-node itself.
   */
  applyToHTTPSOptions(opts: https.RequestOptions): Promise<void>;
  /** The cluster has a proxy-url: requests must use the proxying agent applyToHTTPSOptions sets. */
  proxied: boolean;
  paths: string[];
  contextName: string;
  server: string;
  /** The cluster entry's extension provider, e.g. "minikube.sigs.k8s.io" (minikube writes it for every profile). */
  clusterProvider?: string;
  /**
   * Credentials found in the kubeconfig, to be masked in all output; those a plugin produces at request time are
   * added (and passed to onSecret) when they appear.
   */
  secrets: string[];
}

/** kubectl's precedence: --kubeconfig, then KUBECONFIG (a path list), then ~/.kube/config. Never a silent localhost fallback. */
export function kubeconfigPaths(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): { paths: string[]; source: string } {
  if (flag) return { paths: [flag], source: '--kubeconfig' };
  if (env.KUBECONFIG) {
    const paths = env.KUBECONFIG.split(path.delimiter).filter(Boolean);
    if (paths.length) return { paths, source: 'KUBECONFIG' };
  }
  return { paths: [path.join(env.HOME || os.homedir(), '.kube', 'config')], source: 'the default ~/.kube/config' };
}

/**
 * Which file kind merges its context into: --kubeconfig, else the first existing $KUBECONFIG file (else the last),
 * else ~/.kube/config (kind's pkg/cluster/internal/kubeconfig/internal/kubeconfig/paths.go, pathForMerge).
 */
export function kubeconfigKindWrites(explicit: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (explicit) return explicit;
  const list = [...new Set((env.KUBECONFIG ?? '').split(path.delimiter).filter(Boolean))];
  if (list.length === 1) return list[0];
  if (list.length > 1) return list.find((f) => fs.existsSync(f) && fs.statSync(f).isFile()) ?? list[list.length - 1];
  return path.join(env.HOME || os.homedir(), '.kube', 'config');
}

/**
 * One kubeconfig file as its YAML document, for the questions asked before a client exists (which context is
 * current, is a context defined): 'missing' when there is no file, 'unreadable' for a directory, an unreadable
 * file or invalid YAML — loadKubeconfig reports those with their fix.
 */
export function readKubeconfigFile(file: string): { status: 'ok'; doc: any } | { status: 'missing' | 'unreadable' } {
  try {
    if (!fs.statSync(file).isFile()) return { status: 'unreadable' };
    return { status: 'ok', doc: yaml.load(fs.readFileSync(file, 'utf8')) ?? {} };
  } catch (err) {
    return { status: (err as NodeJS.ErrnoException).code === 'ENOENT' ? 'missing' : 'unreadable' };
  }
}

/** The current context as kubectl merges files: the first file that sets one. */
export function currentContext(paths: string[]): string | undefined {
  for (const file of paths) {
    const read = readKubeconfigFile(file);
    const current = read.status === 'ok' ? read.doc?.['current-context'] : undefined;
    if (typeof current === 'string' && current) return current;
  }
  return undefined;
}

/** Does any of the files define `context`? */
export function definesContext(paths: string[], context: string): boolean {
  return paths.some((file) => findContext(file, context) !== undefined);
}

/** sha256 of the certificate-authority-data of the cluster that `context` names, in the first of `files` that defines it. */
export function clusterCaSha256(files: string[], context: string): string | undefined {
  for (const file of files) {
    const found = findContext(file, context);
    if (!found) continue;
    const ca = found.cluster?.cluster?.['certificate-authority-data'];
    return typeof ca === 'string' && ca ? createHash('sha256').update(ca).digest('hex') : undefined;
  }
  return undefined;
}

function findContext(file: string, context: string): { context: any; cluster?: any } | undefined {
  const read = readKubeconfigFile(file);
  if (read.status !== 'ok') return undefined;
  const entry = (Array.isArray(read.doc?.contexts) ? read.doc.contexts : []).find((c: any) => c?.name === context);
  if (!entry) return undefined;
  return { context: entry, cluster: (Array.isArray(read.doc?.clusters) ? read.doc.clusters : []).find((c: any) => c?.name === entry.context?.cluster) };
}

/**
 * Every credential a kubeconfig user holds, as it could show up in output: tokens (also read from token-file, as
 * client-node's findToken does), the basic-auth password, auth-provider tokens and secrets (also an auth-provider's
 * tokenFile contents), every argument and environment value of an exec plugin (a `--client-secret=…` or an
 * env value under any name may be a credential, and the plugin's stderr may echo them), and the client key —
 * from client-key-data or the client-key file — base64 and decoded, with each line of its PEM body.
 */
export function credentialsOf(user: any): string[] {
  const found: string[] = [];
  const add = (v: unknown) => {
    if (typeof v === 'string' && v.trim()) found.push(v, v.trim());
  };
  const readFile = (file: unknown) => {
    if (typeof file !== 'string' || !file) return undefined;
    try {
      return fs.readFileSync(file, 'utf8');
    } catch {
      return undefined; // an unreadable file fails later, where it is used, with its own message
    }
  };
  add(user.token);
  add(user.password);
  const config = user.authProvider?.config ?? {};
  for (const [k, v] of Object.entries(config)) {
    if (/token|secret|password/i.test(k) && !/file$/i.test(k)) add(v);
  }
  add(readFile(config.tokenFile ?? config['token-file']));
  for (const e of (user.exec?.env as Array<{ name?: string; value?: string }> | undefined) ?? []) add(e?.value);
  for (const arg of (user.exec?.args as unknown[] | undefined) ?? []) {
    if (typeof arg !== 'string') continue;
    // a flag's name is no secret, its value is: "--client-secret=x" adds x, "--client-secret" "x" adds x
    const eq = arg.indexOf('=');
    if (arg.startsWith('-')) {
      if (eq > 0) add(arg.slice(eq + 1));
    } else add(arg);
  }
  if (typeof user.keyData === 'string' && user.keyData) {
    add(user.keyData);
    found.push(...keyLines(Buffer.from(user.keyData, 'base64').toString('utf8')));
  }
  found.push(...keyLines(readFile(user.keyFile)));
  return [...new Set(found)];
}

/** A PEM private key, whole and line by line (a stack trace or an error may quote any line of it). */
export function keyLines(pem: string | Buffer | undefined): string[] {
  const text = pem === undefined ? '' : String(pem);
  if (!text.trim()) return [];
  return [text, text.trim(), ...text.split('\n').map((l) => l.trim()).filter((l) => l.length >= 8 && !l.startsWith('-----'))];
}

/**
 * What a request ended up carrying once client-node applied a plugin user (exec, auth-provider, basic auth): the
 * bearer token or basic credentials and a client key an exec plugin returned. They exist only at request time.
 */
function requestCredentials(o: https.RequestOptions): string[] {
  const found: string[] = [];
  const authorization = (o.headers as Record<string, unknown> | undefined)?.Authorization ?? (o.headers as Record<string, unknown> | undefined)?.authorization;
  if (typeof authorization === 'string') {
    const [scheme, value] = authorization.split(/\s+/, 2);
    if (value) {
      found.push(value);
      if (/^basic$/i.test(scheme)) found.push(...Buffer.from(value, 'base64').toString('utf8').split(':').slice(1));
    }
  }
  if (typeof o.auth === 'string') found.push(...o.auth.split(':').slice(1));
  if (typeof o.key === 'string' || Buffer.isBuffer(o.key)) found.push(...keyLines(o.key));
  return found.filter((v) => v.length >= 4);
}

/** The entries of every file, merged as kubectl does: the first entry of a name wins, the first current-context wins. */
interface MergedKubeconfig {
  clusters: any[];
  users: any[];
  contexts: any[];
  currentContext: string;
}

export async function loadKubeconfig(opts: { kubeconfig?: string; context?: string; onSecret?: (secret: string) => void }): Promise<ResolvedKubeconfig> {
  const { paths, source } = kubeconfigPaths(opts.kubeconfig);
  const readable = existingFiles(paths, source);
  const { merged, secrets } = mergeFiles(readable);
  const { contextName, cluster, user } = lookupContext(merged, opts.context ?? merged.currentContext);
  let kc: Promise<KubeConfig> | undefined;
  const kubeConfig = () =>
    (kc ??= import('@kubernetes/client-node').then(({ KubeConfig }) => {
      const k = new KubeConfig();
      k.loadFromOptions(merged);
      k.setCurrentContext(contextName);
      return k;
    }));
  // What client-node does itself for the simple, common users (applyHTTPSOptions + applyAuthorizationHeader).
  const simple = user && !user.authProvider && !user.exec && !user.username && !cluster.proxyUrl && !cluster.server.startsWith('http:');
  const direct = simple ? directCredentials(cluster, user) : undefined;
  const applyToHTTPSOptions = async (o: https.RequestOptions) => {
    if (direct) return direct(o);
    await applyPluginUser(await kubeConfig(), o, user);
    for (const secret of requestCredentials(o)) if (!secrets.includes(secret)) secrets.push(secret), opts.onSecret?.(secret);
  };
  for (const secret of secrets) opts.onSecret?.(secret);
  return { kubeConfig, applyToHTTPSOptions, proxied: Boolean(cluster.proxyUrl), paths: readable, contextName, server: cluster.server, clusterProvider: cluster.provider, secrets };
}

/** The files of the path list that exist; none at all is an error that names where meshdemo looked. */
function existingFiles(paths: string[], source: string): string[] {
  const readable = paths.filter((p) => {
    let stat: fs.Stats;
    try {
      stat = fs.statSync(p);
    } catch {
      return false;
    }
    // as kubectl: a directory where the kubeconfig should be is an error, not a missing file
    if (stat.isDirectory()) throw new UsageError(`kubeconfig ${p} (from ${source}) is a directory, not a file`, { hint: 'pass the path of the kubeconfig file itself' });
    return stat.isFile();
  });
  if (readable.length === 0) {
    throw new UsageError(`no kubeconfig found at ${paths.join(', ')} (from ${source})`, {
      hint: 'pass --kubeconfig <path>, set KUBECONFIG, or let meshdemo up --local create a local kind cluster',
    });
  }
  return readable;
}

/** The merged entries, and the credentials of every user of every file (also those a same-named user shadows). */
function mergeFiles(files: string[]): { merged: MergedKubeconfig; secrets: string[] } {
  const merged: MergedKubeconfig = { clusters: [], users: [], contexts: [], currentContext: '' };
  const secrets: string[] = [];
  const addNew = (list: any[], entries: any[]) => {
    for (const e of entries) if (!list.some((x) => x.name === e.name)) list.push(e);
  };
  for (const file of files) {
    const one = parseFile(file);
    addNew(merged.clusters, one.clusters);
    // https://user:password@host as a server or proxy-url: shown masked (src/core/secrets.ts), and masked decoded
    secrets.push(...one.clusters.flatMap((c) => [...urlCredentials(c.server), ...(c.proxyUrl ? urlCredentials(String(c.proxyUrl)) : [])]));
    addNew(merged.users, one.users);
    secrets.push(...one.users.flatMap(credentialsOf));
    addNew(merged.contexts, one.contexts);
    if (!merged.currentContext && one.currentContext) merged.currentContext = one.currentContext;
  }
  return { merged, secrets };
}

function parseFile(file: string): MergedKubeconfig {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    throw new UsageError(`cannot read kubeconfig ${file}: ${(err as NodeJS.ErrnoException).code ?? err}`, {
      hint: 'check the file permissions or pass another --kubeconfig',
    });
  }
  if (!text.trim()) {
    throw new UsageError(`kubeconfig ${file} is empty`, { hint: 'pass --kubeconfig with a valid file or recreate it' });
  }
  try {
    const obj = yaml.load(text) as any;
    const dir = path.dirname(path.resolve(file));
    return { clusters: parseClusters(obj.clusters, dir), contexts: parseContexts(obj.contexts), users: parseUsers(obj.users, dir, file), currentContext: obj['current-context'] };
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`kubeconfig ${file} is not valid: ${firstLine(err)}`, {
      hint: 'fix the file or pass another --kubeconfig',
    });
  }
}

/** The context, its cluster and its user (KubeConfig.getContextObject / getCluster / getUser: the first entry of that name). */
function lookupContext(merged: MergedKubeconfig, contextName: string | undefined): { contextName: string; cluster: any; user: any } {
  if (!contextName) {
    throw new UsageError('the kubeconfig has no current context', { hint: 'pass --context <name> or run kubectl config use-context' });
  }
  const byName = (list: any[], name: string) => list.find((x) => x.name === name);
  const context = byName(merged.contexts, contextName);
  if (!context) {
    const known = merged.contexts.map((c) => c.name);
    throw new UsageError(`context "${contextName}" is not in the kubeconfig`, {
      hint: known.length ? `choose one of: ${known.join(', ')}` : 'the kubeconfig defines no contexts',
    });
  }
  const cluster = byName(merged.clusters, context.cluster);
  if (!cluster?.server) {
    throw new UsageError(`context "${contextName}" names cluster "${context.cluster}", which has no server`, {
      hint: 'fix the kubeconfig or choose another --context',
    });
  }
  return { contextName, cluster, user: byName(merged.users, context.user) };
}

/** A user with a token or a client certificate, applied to a request as client-node would (files read on first use). */
function directCredentials(cluster: any, user: any): (o: https.RequestOptions) => void {
  let tls: { ca?: Buffer; cert?: Buffer; key?: Buffer } | undefined;
  return (o) => {
    tls ??= {
      ca: fileOrData(cluster.caFile, cluster.caData, 'certificate-authority'),
      cert: fileOrData(user.certFile, user.certData, 'client-certificate'),
      key: fileOrData(user.keyFile, user.keyData, 'client-key'),
    };
    if (cluster.skipTLSVerify) o.rejectUnauthorized = false;
    if (cluster.tlsServerName) o.servername = cluster.tlsServerName;
    if (tls.ca) o.ca = tls.ca;
    if (tls.cert) o.cert = tls.cert;
    if (tls.key) o.key = tls.key;
    const headers = (o.headers ??= {}) as Record<string, string>;
    if (user.impersonateUser != null) headers['Impersonate-User'] = user.impersonateUser;
    if (user.token) headers.Authorization = `Bearer ${user.token}`;
  };
}

/**
 * client-node's applyToHTTPSOptions for users it handles itself. A failing exec plugin rejects with its whole
 * stderr as the message (client-node exec_auth.js getCredential: `reject(new Error(stderrData))`), which may echo
 * its arguments and environment: it becomes one line naming the plugin, with the plugin's last lines as details,
 * which are printed masked like all output (its arguments and environment values are in the secret set).
 */
async function applyPluginUser(kc: KubeConfig, o: https.RequestOptions, user: any): Promise<void> {
  try {
    await kc.applyToHTTPSOptions(o);
  } catch (err) {
    const command = user?.exec?.command ?? user?.authProvider?.config?.exec?.command;
    if (!command) throw err;
    const program = path.basename(String(command));
    const output = (err instanceof Error ? err.message : String(err)).split('\n').map((l) => l.trimEnd()).filter(Boolean);
    throw new PreflightError(`the credential plugin ${program} of kubeconfig user "${user.name}" failed`, {
      hint: 'run it yourself to see why (its output below is masked), renew its login, or choose another --context',
      details: output.slice(-5),
      cause: err,
    });
  }
}

/** client-node's bufferFromFileOrString, with a clear error for a file that cannot be read. */
function fileOrData(file: string | undefined, data: string | undefined, what: string): Buffer | undefined {
  if (file) return readReferenced(file, what);
  if (data) return Buffer.from(data, 'base64');
  return undefined;
}

function readReferenced(file: string, what: string): Buffer {
  try {
    return fs.readFileSync(file);
  } catch (err) {
    throw new UsageError(`cannot read the ${what} ${file} named in the kubeconfig: ${(err as NodeJS.ErrnoException).code ?? firstLine(err)}`, {
      hint: 'fix the path in the kubeconfig (a relative path is relative to the kubeconfig file) or pass another --kubeconfig',
    });
  }
}

/**
 * As kubectl resolves them (client-go tools/clientcmd loader.go ResolveLocalPaths): a relative file path in a
 * kubeconfig is relative to the directory of the kubeconfig file it appears in, not to the working directory.
 */
function resolveIn(dir: string, p: unknown): string | undefined {
  if (typeof p !== 'string' || p === '') return undefined;
  return path.isAbsolute(p) ? p : path.join(dir, p);
}

/**
 * The entries in the shape client-node's KubeConfig.loadFromOptions takes (its config_types newClusters/newUsers/
 * newContexts, whose module is private to the package), with the same checks, and file paths made absolute.
 */
function parseClusters(list: unknown, dir: string): any[] {
  if (!Array.isArray(list)) return [];
  return list.map((elt: any, i) => {
    if (!elt?.name) throw new Error(`clusters[${i}].name is missing`);
    if (!elt.cluster) throw new Error(`clusters[${i}].cluster is missing`);
    if (!elt.cluster.server) throw new Error(`clusters[${i}].cluster.server is missing`);
    const c = elt.cluster;
    return {
      name: elt.name,
      server: String(c.server).replace(/\/$/, ''),
      caData: c['certificate-authority-data'],
      caFile: resolveIn(dir, c['certificate-authority']),
      skipTLSVerify: c['insecure-skip-tls-verify'] === true,
      tlsServerName: c['tls-server-name'],
      proxyUrl: c['proxy-url'],
      // minikube pkg/minikube/kubeconfig/extension.go: extensions: [{name: cluster_info, extension: {provider: …}}]
      provider: (Array.isArray(elt.cluster.extensions) ? elt.cluster.extensions : []).map((e: any) => e?.extension?.provider).find(Boolean),
    };
  });
}

function parseUsers(list: unknown, dir: string, file: string): any[] {
  if (!Array.isArray(list)) return [];
  return list.map((elt: any, i) => {
    if (!elt?.name) throw new Error(`users[${i}].name is missing`);
    const u = elt.user ?? {};
    // kubectl: token wins over tokenFile (client-node also reads it as token-file)
    const tokenFile = u.token ? undefined : resolveIn(dir, u.tokenFile ?? u['token-file']);
    const token = u.token || (tokenFile ? readReferenced(tokenFile, `tokenFile of user "${elt.name}" in ${file},`).toString('utf8').trim() : undefined);
    const exec = u.exec && typeof u.exec.command === 'string' && u.exec.command.includes('/') ? { ...u.exec, command: resolveIn(dir, u.exec.command) } : u.exec;
    return {
      name: elt.name,
      authProvider: u['auth-provider'] ?? null,
      certData: u['client-certificate-data'] ?? null,
      certFile: resolveIn(dir, u['client-certificate']) ?? null,
      exec: exec ?? null,
      keyData: u['client-key-data'] ?? null,
      keyFile: resolveIn(dir, u['client-key']) ?? null,
      token,
      password: u.password ?? null,
      username: u.username ?? null,
      impersonateUser: u.as ?? null,
    };
  });
}

function parseContexts(list: unknown): any[] {
  if (!Array.isArray(list)) return [];
  return list.map((elt: any, i) => {
    if (!elt?.name) throw new Error(`contexts[${i}].name is missing`);
    if (!elt.context) throw new Error(`contexts[${i}].context is missing`);
    if (!elt.context.cluster) throw new Error(`contexts[${i}].context.cluster is missing`);
    return { cluster: elt.context.cluster, user: elt.context.user, namespace: elt.context.namespace, name: elt.name };
  });
}

function firstLine(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}
