import http from 'node:http';
import https from 'node:https';
import { setTimeout as sleep } from 'node:timers/promises';
import { InterruptedError, MeshdemoError, ExitCode, PreflightError } from '../core/errors.js';
import type { ResolvedKubeconfig } from './kubeconfig.js';
import { knownKind } from './known-kinds.js';

export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string>; uid?: string; resourceVersion?: string; [k: string]: unknown };
  [key: string]: any;
}

export interface ObjectRef {
  apiVersion: string;
  kind: string;
  name: string;
  namespace?: string;
}

/** A refused API call that is not about reachability or credentials (404, 409, 422 …). */
export class KubeApiError extends MeshdemoError {
  constructor(
    message: string,
    readonly status: number,
    readonly reason: string | undefined,
    info: { hint?: string } = {},
  ) {
    super(message, ExitCode.unexpected, info);
  }
}

/** 403: names the verb and resource the server refused. */
export class KubeForbiddenError extends PreflightError {}

const ACCESS_REVIEWS = '/apis/authorization.k8s.io/';
const TRANSIENT_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EAI_AGAIN', 'UND_ERR_SOCKET']);
const TLS_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|EPROTO|SSL/;

const METADATA_LIST = 'application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1, application/json;q=0.9';

export interface RequestOptions {
  body?: unknown;
  contentType?: string;
  /** The Accept header; application/json when not given. */
  accept?: string;
  query?: Record<string, string | number | boolean | undefined>;
  /** How long transient failures (connection refused/reset, 5xx, 429) are retried. */
  retryMs?: number;
  /** How long one attempt may go without an answer before it counts as a (transient) timeout; default 30 s. */
  attemptTimeoutMs?: number;
  signal?: AbortSignal;
}

interface Resource {
  plural: string;
  namespaced: boolean;
}

/** One API request as --verbose shows it: "GET /api/v1/namespaces 200 12ms" (status: HTTP status or error code). */
export interface RequestTrace {
  method: string;
  path: string;
  status: number | string;
  ms: number;
}

export interface ClientOptions {
  retryMs: number;
  signal?: AbortSignal;
  /** Called after every attempt of every request (--verbose request trace). */
  trace?: (entry: RequestTrace) => void;
}

/**
 * The only code that talks to the API server. A small JSON REST client on top of the kubeconfig's
 * TLS and credentials: no generated models, so objects (CRD schemas with x-kubernetes-* keys) reach
 * the server exactly as written.
 */
export class KubeClient {
  readonly server: string;
  readonly contextName: string;
  /** Who made the cluster entry, when its kubeconfig extension says (minikube: "minikube.sigs.k8s.io"). */
  readonly clusterProvider?: string;
  private changes = 0;
  private discovery = new Map<string, Promise<Map<string, Resource>>>();
  private agent: http.Agent;

  constructor(
    private readonly config: ResolvedKubeconfig,
    private readonly defaults: ClientOptions = { retryMs: 20_000 },
  ) {
    this.server = config.server.replace(/\/+$/, '');
    this.contextName = config.contextName;
    this.clusterProvider = config.clusterProvider;
    this.agent = this.server.startsWith('https:') ? new https.Agent({ keepAlive: true }) : new http.Agent({ keepAlive: true });
  }

  close(): void {
    this.agent.destroy();
  }

  /**
   * How many requests that may change the cluster this client has sent: what was read before the count moved may
   * be stale (src/kube/reads.ts). Access reviews change nothing.
   */
  get changeCount(): number {
    return this.changes;
  }

  /** For the few client-node features meshdemo uses directly (port-forward); loads client-node on first use. */
  kubeConfig(): ReturnType<ResolvedKubeconfig['kubeConfig']> {
    return this.config.kubeConfig();
  }

  async request<T = any>(method: string, path: string, opts: RequestOptions = {}): Promise<T> {
    const retryMs = opts.retryMs ?? this.defaults.retryMs;
    if (method !== 'GET' && !path.startsWith(ACCESS_REVIEWS)) this.changes++;
    const signal = opts.signal ?? this.defaults.signal;
    const deadline = Date.now() + retryMs;
    for (let attempt = 0; ; attempt++) {
      if (signal?.aborted) throw new InterruptedError();
      try {
        return await this.once<T>(method, path, opts);
      } catch (err) {
        const transient = isTransient(err);
        if (!transient || Date.now() >= deadline) throw this.translate(err, method, path);
        await sleep(Math.min(200 * 2 ** attempt, 2000), undefined, { signal }).catch(() => {
          throw new InterruptedError();
        });
      }
    }
  }

  private async once<T>(method: string, path: string, opts: RequestOptions): Promise<T> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const reqOpts: https.RequestOptions = { method, headers: { Accept: opts.accept ?? 'application/json' }, agent: this.agent };
    await this.config.applyToHTTPSOptions(reqOpts);
    // client-node puts a new agent without keep-alive on every call, so each request would be a new TLS
    // connection: keep ours (the TLS options stay on the request, and key its socket pool). A cluster with
    // proxy-url keeps client-node's proxying agent.
    if (!this.config.proxied) reqOpts.agent = this.agent;
    let payload: string | undefined;
    if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      (reqOpts.headers as Record<string, string>)['Content-Type'] = opts.contentType ?? 'application/json';
      // explicit: Node sends a DELETE body with neither Content-Length nor chunking, which on a kept-alive socket
      // the server reads as the start of the next request (400 Bad Request for whatever follows)
      (reqOpts.headers as Record<string, string | number>)['Content-Length'] = Buffer.byteLength(payload);
    }
    const lib = url.protocol === 'https:' ? https : http;
    const trace = this.tracer(method, url);
    return new Promise<T>((resolve, reject) => {
      const req = lib.request(url, reqOpts, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          const status = res.statusCode ?? 0;
          trace?.(status);
          let body: any = text;
          try {
            body = text ? JSON.parse(text) : undefined;
          } catch {
            /* non-JSON body (e.g. a proxy's error page) stays text */
          }
          if (status >= 200 && status < 300) resolve(body as T);
          else reject(new HttpStatusError(status, body));
        });
      });
      req.setTimeout(opts.attemptTimeoutMs ?? 30_000, () => req.destroy(Object.assign(new Error('request timed out'), { code: 'ETIMEDOUT' })));
      req.on('error', (err: NodeJS.ErrnoException) => {
        trace?.(err.code ?? 'error');
        reject(err);
      });
      req.end(payload);
    });
  }

  /** With --verbose: reports this attempt's outcome (an HTTP status or an error code) and how long it took. */
  private tracer(method: string, url: URL): ((status: number | string) => void) | undefined {
    const trace = this.defaults.trace;
    if (!trace) return undefined;
    const started = performance.now();
    return (status) => trace({ method, path: url.pathname + url.search, status, ms: Math.round(performance.now() - started) });
  }

  private translate(err: unknown, method: string, path: string): Error {
    if (err instanceof MeshdemoError) return err;
    if (err instanceof HttpStatusError) return this.translateStatus(err, method, path);
    const code = (err as NodeJS.ErrnoException)?.code ?? '';
    const msg = (err as Error)?.message ?? String(err);
    if (TLS_CODES.test(code) || /certificate|self.signed|SSL/i.test(msg)) {
      return new PreflightError(`TLS verification of the API server ${this.server} failed (${code || msg})`, {
        hint: 'check certificate-authority(-data) for this cluster in the kubeconfig',
      });
    }
    if (code === 'ENOTFOUND' || TRANSIENT_CODES.has(code) || code === 'EHOSTUNREACH' || code === 'ENETUNREACH') {
      return new PreflightError(`cannot reach the API server at ${this.server} (${code})`, {
        hint: `check that the cluster is running and that context "${this.contextName}" points at it, or run meshdemo up --local to create a local kind cluster instead`,
      });
    }
    return err instanceof Error ? err : new Error(String(err));
  }

  /** An answer of the API server with an error status: 401 and 403 with their fix, anything else as KubeApiError. */
  private translateStatus(err: HttpStatusError, method: string, path: string): Error {
    const message = typeof err.body === 'object' && err.body?.message ? err.body.message : String(err.body ?? '').slice(0, 200);
    if (err.status === 401) {
      return new PreflightError(`the API server at ${this.server} rejected the credentials of context "${this.contextName}" (401 Unauthorized)`, {
        hint: 'refresh the token or client certificate in the kubeconfig, or choose another --context',
      });
    }
    if (err.status === 403) {
      const refused = explainForbidden(message, method, path);
      return new KubeForbiddenError(/^forbidden\b/i.test(refused) ? refused : `forbidden: ${refused}`, {
        hint: `ask a cluster admin to grant that permission to the identity of context "${this.contextName}"`,
      });
    }
    return new KubeApiError(`${method} ${path}: ${err.status} ${message}`, err.status, err.body?.reason);
  }

  // ---------- discovery and object paths ----------

  private groupVersionPath(apiVersion: string): string {
    return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
  }

  private async resources(apiVersion: string, refresh = false): Promise<Map<string, Resource>> {
    if (refresh) this.discovery.delete(apiVersion);
    let entry = this.discovery.get(apiVersion);
    if (!entry) {
      entry = this.request<{ resources: Array<{ name: string; kind: string; namespaced: boolean }> }>('GET', this.groupVersionPath(apiVersion))
        .then((list) => {
          const map = new Map<string, Resource>();
          for (const r of list.resources) if (!r.name.includes('/')) map.set(r.kind, { plural: r.name, namespaced: r.namespaced });
          return map;
        })
        .catch((err) => {
          this.discovery.delete(apiVersion);
          if (err instanceof KubeApiError && err.status === 404) return new Map<string, Resource>();
          throw err;
        });
      this.discovery.set(apiVersion, entry);
    }
    return entry;
  }

  /** Whether the server serves this kind (false for a CRD not yet established). */
  async serves(apiVersion: string, kind: string, refresh = false): Promise<boolean> {
    const known = knownKind(apiVersion, kind);
    if (known && !known.crd) return true;
    return (await this.resources(apiVersion, refresh)).has(kind);
  }

  /** The kind's resource name and scope; a kind of src/kube/known-kinds.ts without asking the server. */
  async resourceFor(apiVersion: string, kind: string): Promise<Resource> {
    const known = knownKind(apiVersion, kind);
    if (known) return known;
    let r = (await this.resources(apiVersion)).get(kind);
    if (!r) r = (await this.resources(apiVersion, true)).get(kind);
    if (!r) {
      throw new KubeApiError(`the cluster does not serve ${kind} in ${apiVersion}`, 404, 'NoKindMatch', {
        hint: 'its CustomResourceDefinition may be missing or not yet established',
      });
    }
    return r;
  }

  async pathFor(ref: ObjectRef | { apiVersion: string; kind: string; namespace?: string; name?: string }): Promise<string> {
    const r = await this.resourceFor(ref.apiVersion, ref.kind);
    const ns = r.namespaced ? `/namespaces/${ref.namespace ?? 'default'}` : '';
    return `${this.groupVersionPath(ref.apiVersion)}${ns}/${r.plural}${ref.name ? `/${ref.name}` : ''}`;
  }

  // ---------- verbs ----------

  async get<T extends KubeObject = KubeObject>(ref: ObjectRef, opts: { signal?: AbortSignal } = {}): Promise<T | undefined> {
    try {
      return await this.request<T>('GET', await this.pathFor(ref), { signal: opts.signal });
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return undefined;
      throw err;
    }
  }

  async list<T extends KubeObject = KubeObject>(
    apiVersion: string,
    kind: string,
    opts: { namespace?: string; labelSelector?: string; fieldSelector?: string } = {},
  ): Promise<T[]> {
    const list = await this.request<{ items: T[] }>('GET', await this.listPath(apiVersion, kind, opts.namespace), {
      query: { labelSelector: opts.labelSelector, fieldSelector: opts.fieldSelector },
    });
    return list.items.map((item) => ({ ...item, apiVersion, kind }));
  }

  /**
   * The names of a kind's objects, from a list of their metadata alone (PartialObjectMetadataList, served since
   * Kubernetes 1.15): an existence check then reads a few kB instead of every object's data. A server that cannot
   * answer in that form answers with the full list, which the Accept header allows too.
   */
  async listNames(apiVersion: string, kind: string, opts: { namespace?: string } = {}): Promise<string[]> {
    const list = await this.request<{ items: Array<{ metadata: { name: string } }> | null }>('GET', await this.listPath(apiVersion, kind, opts.namespace), { accept: METADATA_LIST });
    // an empty PartialObjectMetadataList comes with "items": null
    return (list.items ?? []).map((item) => item.metadata.name);
  }

  /** A kind's collection: in one namespace, or across all of them (or cluster-scoped) without one. */
  private async listPath(apiVersion: string, kind: string, namespace: string | undefined): Promise<string> {
    const r = await this.resourceFor(apiVersion, kind);
    return `${this.groupVersionPath(apiVersion)}${r.namespaced && namespace ? `/namespaces/${namespace}` : ''}/${r.plural}`;
  }

  /** Server-side apply with field manager "meshdemo" (conflicts forced, as a single owner of these fields). */
  async apply<T extends KubeObject = KubeObject>(obj: KubeObject, opts: { fieldManager?: string; dryRun?: boolean; signal?: AbortSignal } = {}): Promise<T> {
    const path = await this.pathFor({ ...obj, name: obj.metadata.name, namespace: obj.metadata.namespace });
    return this.request<T>('PATCH', path, {
      signal: opts.signal,
      body: obj,
      contentType: 'application/apply-patch+yaml',
      query: { fieldManager: opts.fieldManager ?? 'meshdemo', force: true, dryRun: opts.dryRun ? 'All' : undefined },
    });
  }

  async create<T extends KubeObject = KubeObject>(obj: KubeObject, opts: { signal?: AbortSignal } = {}): Promise<T> {
    const path = await this.pathFor({ ...obj, name: undefined, namespace: obj.metadata.namespace });
    return this.request<T>('POST', path, { signal: opts.signal, body: obj, query: { fieldManager: 'meshdemo' } });
  }

  async mergePatch<T extends KubeObject = KubeObject>(ref: ObjectRef, patch: unknown, opts: { subresource?: string; dryRun?: boolean } = {}): Promise<T> {
    const path = (await this.pathFor(ref)) + (opts.subresource ? `/${opts.subresource}` : '');
    return this.request<T>('PATCH', path, {
      body: patch,
      contentType: 'application/merge-patch+json',
      query: { dryRun: opts.dryRun ? 'All' : undefined },
    });
  }

  async jsonPatch<T extends KubeObject = KubeObject>(ref: ObjectRef, ops: unknown[]): Promise<T> {
    return this.request<T>('PATCH', await this.pathFor(ref), { body: ops, contentType: 'application/json-patch+json' });
  }

  /** Deletes; returns false when it was already gone. */
  async delete(ref: ObjectRef, opts: { propagationPolicy?: 'Background' | 'Foreground' } = {}): Promise<boolean> {
    try {
      await this.request('DELETE', await this.pathFor(ref), {
        body: { kind: 'DeleteOptions', apiVersion: 'v1', propagationPolicy: opts.propagationPolicy ?? 'Background' },
      });
      return true;
    } catch (err) {
      if (err instanceof KubeApiError && err.status === 404) return false;
      throw err;
    }
  }

  /**
   * A GET whose body is read as it arrives (pods/log with follow): resolves with the response once its status is
   * 2xx; an error status is read whole and rejected like any other request. Aborting the signal ends the stream.
   */
  async stream(path: string, opts: { query?: RequestOptions['query']; signal?: AbortSignal } = {}): Promise<http.IncomingMessage> {
    const url = new URL(this.server + path);
    for (const [k, v] of Object.entries(opts.query ?? {})) if (v !== undefined) url.searchParams.set(k, String(v));
    const reqOpts: https.RequestOptions = { method: 'GET', headers: { Accept: '*/*' } };
    await this.config.applyToHTTPSOptions(reqOpts);
    if (!this.config.proxied) reqOpts.agent = this.agent;
    const lib = url.protocol === 'https:' ? https : http;
    const trace = this.tracer('GET', url);
    return new Promise((resolve, reject) => {
      const req = lib.request(url, { ...reqOpts, signal: opts.signal }, (res) => {
        const status = res.statusCode ?? 0;
        trace?.(status);
        if (status >= 200 && status < 300) return resolve(res);
        const chunks: Buffer[] = [];
        res.on('data', (c) => chunks.push(c));
        res.on('error', reject);
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: any = text;
          try {
            body = JSON.parse(text);
          } catch {
            /* plain text */
          }
          reject(this.translate(new HttpStatusError(status, body), 'GET', path));
        });
      });
      req.on('error', (err: NodeJS.ErrnoException) => {
        trace?.(err.code ?? 'error');
        reject(opts.signal?.aborted ? new InterruptedError() : this.translate(err, 'GET', path));
      });
      req.end();
    });
  }

  async version(opts: { retryMs?: number } = {}): Promise<{ major: string; minor: string; gitVersion: string }> {
    return this.request('GET', '/version', { retryMs: opts.retryMs });
  }

  async canI(attrs: { verb: string; group?: string; resource: string; namespace?: string; subresource?: string }): Promise<boolean> {
    const review = await this.request<{ status?: { allowed?: boolean } }>('POST', '/apis/authorization.k8s.io/v1/selfsubjectaccessreviews', {
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SelfSubjectAccessReview',
        spec: { resourceAttributes: { ...attrs, group: attrs.group ?? '' } },
      },
    });
    return review.status?.allowed === true;
  }

  /**
   * The rules this identity holds everywhere: a SelfSubjectRulesReview for a namespace name that no namespace can
   * have (namespace names are DNS labels, without dots), so that no RoleBinding adds to it and only cluster-wide
   * grants remain (kubernetes 1.20 pkg/registry/rbac/validation/rule.go VisitRulesFor: ClusterRoleBindings, then the
   * namespace's RoleBindings). Authorizers that cannot list rules add nothing: what is not listed may still be allowed.
   */
  async clusterWideRules(): Promise<ResourceRule[]> {
    const review = await this.request<{ status?: { resourceRules?: ResourceRule[] } }>('POST', '/apis/authorization.k8s.io/v1/selfsubjectrulesreviews', {
      body: { apiVersion: 'authorization.k8s.io/v1', kind: 'SelfSubjectRulesReview', spec: { namespace: 'meshdemo.cluster-wide' } },
    });
    return review.status?.resourceRules ?? [];
  }
}

export interface ResourceRule {
  verbs: string[];
  apiGroups?: string[];
  resources?: string[];
  resourceNames?: string[];
}

class HttpStatusError extends Error {
  constructor(
    readonly status: number,
    readonly body: any,
  ) {
    super(`HTTP ${status}`);
  }
}

/**
 * 1.20 refuses a server-side apply (or PUT) that would create an object without `create` permission with a
 * reason-less `deployments.apps "x" is forbidden: `; name the verb and the resource as the server does elsewhere.
 */
function explainForbidden(message: string, method: string, path: string): string {
  if (!/forbidden:\s*$/.test(message)) return message;
  const m = /^\/(?:api\/v1|apis\/([^/]+)\/[^/]+)\/(?:namespaces\/([^/]+)\/)?([^/?]+)/.exec(path);
  if (!m) return message;
  const [, group, namespace, resource] = m;
  const verb = ({ POST: 'create', PATCH: 'create', PUT: 'create', DELETE: 'delete', GET: 'get' } as Record<string, string>)[method] ?? method.toLowerCase();
  return `${message.trim()} cannot ${verb} resource "${resource}"${group ? ` in API group "${group}"` : ''}${namespace ? ` in the namespace "${namespace}"` : ''}`;
}

function isTransient(err: unknown): boolean {
  if (err instanceof HttpStatusError) return err.status === 429 || err.status === 502 || err.status === 503 || err.status === 504;
  const code = (err as NodeJS.ErrnoException)?.code;
  return (!!code && TRANSIENT_CODES.has(code)) || /socket hang up/.test((err as Error)?.message ?? '');
}

export async function connect(config: ResolvedKubeconfig, opts: Partial<ClientOptions> = {}): Promise<KubeClient> {
  return new KubeClient(config, { ...opts, retryMs: opts.retryMs ?? 20_000 });
}

/** A request as the --verbose trace shows it. */
export function formatTrace(t: RequestTrace): string {
  return `${t.method} ${t.path} ${t.status} ${t.ms}ms`;
}

export function refOf(obj: KubeObject): ObjectRef {
  return { apiVersion: obj.apiVersion, kind: obj.kind, name: obj.metadata.name, namespace: obj.metadata.namespace };
}

export function describeRef(ref: ObjectRef): string {
  return `${ref.kind}/${ref.namespace ? `${ref.namespace}/` : ''}${ref.name}`;
}
