import { createHash } from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { PreflightError } from '../core/errors.js';
import { packageRoot } from '../core/package-root.js';
import type { ServiceName } from './services.js';

/**
 * Build contexts for the demo services, prepared by meshdemo so that `docker build` needs nothing from the
 * network but the base image. Layout of one context (the image's /app after `COPY . .`), the same as
 * templates/services/ so that the services run in place too (they import ../common/):
 *
 *   Dockerfile                                templates/services/<service>/Dockerfile (where docker build looks)
 *   <service>/package.json, server.mjs, …     everything in templates/services/<service>/ (minus node_modules, dot files)
 *   common/…                                  templates/services/common/ (shared runtime), when present
 *   paycore.proto (any templates/services/*.proto)  for services that depend on @grpc/proto-loader
 *   node_modules/…                            the production dependency closure of the service's package.json,
 *                                             copied from meshdemo's own installed node_modules
 *
 * The tag is the first 12 hex digits of a sha256 over the sorted relative paths, each file's mode class and
 * bytes, and the base image name: unchanged sources give the same tag, so nothing is rebuilt or re-pushed.
 */

export interface SourceDirs {
  /** templates/services: one folder per service, plus common/ and *.proto. */
  servicesDir: string;
  /** Where dependencies are resolved from (Node's algorithm: <dir>/node_modules, then the parents'). */
  projectRoot: string;
}

/** The demo services' sources of this installation: templates/services, dependencies from its node_modules. */
export function defaultSourceDirs(): SourceDirs {
  const root = packageRoot();
  return { servicesDir: path.join(root, 'templates', 'services'), projectRoot: root };
}

/** Bump when the layout changes, so old tags are not mistaken for new contents. */
const LAYOUT_VERSION = 'meshdemo-context-v2';

export interface ContextEntry {
  /** Path inside the context, '/'-separated. */
  rel: string;
  /** The file it is copied from. */
  src: string;
  executable: boolean;
  size: number;
  /** Installed packages do not change under a running meshdemo: their digests are cached by path, size and mtime. */
  cacheKey?: string;
}

export interface ContextPlan {
  service: ServiceName;
  baseImage: string;
  /** `linux/<arch>` the image is built for (the nodes' architecture), when known. */
  platform?: string;
  /** Sorted by rel. */
  entries: ContextEntry[];
  /** Packages in node_modules, as "<rel dir>@<version>". */
  packages: string[];
  hash: string;
  /** hash.slice(0, 12) */
  tag: string;
  bytes: number;
}

interface PackageJson {
  name?: string;
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

async function readJson(file: string): Promise<PackageJson> {
  return JSON.parse(await fsp.readFile(file, 'utf8')) as PackageJson;
}

/** Node's lookup: <from>/node_modules/<name>, then each parent's node_modules. Returns the real package dir. */
function resolvePackage(name: string, fromDir: string): string | undefined {
  let dir = fromDir;
  for (;;) {
    if (path.basename(dir) !== 'node_modules') {
      const candidate = path.join(dir, 'node_modules', ...name.split('/'));
      if (fs.existsSync(path.join(candidate, 'package.json'))) return fs.realpathSync(candidate);
    }
    const parent = path.dirname(dir);
    if (parent === dir) return undefined;
    dir = parent;
  }
}

/** Logical (in-context) dirs Node searches for `name` from a package at `logical` ('' = /app), nearest first. */
function lookupChain(logical: string, name: string): string[] {
  const chain: string[] = [];
  let at = logical;
  for (;;) {
    chain.push(at ? `${at}/node_modules/${name}` : `node_modules/${name}`);
    if (!at) return chain;
    // strip the trailing "node_modules/<pkg>" or "node_modules/@scope/<pkg>"
    const parts = at.split('/');
    const i = parts.lastIndexOf('node_modules');
    at = parts.slice(0, Math.max(0, i)).join('/');
  }
}

function depNames(pkg: PackageJson): Array<{ name: string; optional: boolean }> {
  const out = new Map<string, boolean>();
  for (const n of Object.keys(pkg.dependencies ?? {})) out.set(n, false);
  for (const n of Object.keys(pkg.optionalDependencies ?? {})) out.set(n, true);
  for (const n of Object.keys(pkg.peerDependencies ?? {})) {
    if (!out.has(n)) out.set(n, true); // peers: taken along when installed, never required here
  }
  return [...out].map(([name, optional]) => ({ name, optional })).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

/**
 * Places the dependency closure in a node_modules tree that resolves exactly like the installed one:
 * a package goes to the top level when that slot is free (nothing can be shadowed there), else next to
 * the package that needs it; a package already visible from where it is needed is reused.
 * Each package's direct dependencies are all placed before any of them is descended into.
 */
async function placeDependencies(service: ServiceName, pkg: PackageJson, projectRoot: string): Promise<Map<string, string>> {
  const placed = new Map<string, string>(); // logical dir -> real dir
  const identity = new Map<string, string>(); // logical dir -> name@version

  const placeChildren = async (parentPkg: PackageJson, parentReal: string, parentLogical: string, who: string) => {
    const toVisit: Array<{ real: string; logical: string; pkg: PackageJson; name: string }> = [];
    for (const { name, optional } of depNames(parentPkg)) {
      const real = resolvePackage(name, parentReal);
      if (!real) {
        if (optional) continue;
        throw new PreflightError(`cannot build the ${service} image: ${name}, a dependency of ${who}, is not installed with meshdemo`, {
          hint: `reinstall meshdemo's dependencies (npm ci in ${projectRoot})`,
        });
      }
      const childPkg = await readJson(path.join(real, 'package.json'));
      const id = `${name}@${childPkg.version ?? real}`;
      const chain = lookupChain(parentLogical, name);
      let visible = false;
      let blocked = false;
      for (const loc of chain) {
        const there = placed.get(loc);
        if (there === undefined) continue;
        // the same name@version installed twice (npm does that across nesting levels) is one package here
        if (there === real || identity.get(loc) === id) visible = true;
        else blocked = true;
        break;
      }
      if (visible) continue;
      const top = chain[chain.length - 1];
      const logical = !blocked && !placed.has(top) ? top : chain[0];
      if (placed.has(logical)) {
        throw new PreflightError(`cannot lay out node_modules for ${service}: two versions of ${name} are needed at ${logical}`, {
          hint: 'reinstall meshdemo (npm ci) so its dependencies are deduplicated',
        });
      }
      placed.set(logical, real);
      identity.set(logical, id);
      toVisit.push({ real, logical, name, pkg: childPkg });
    }
    for (const child of toVisit) await placeChildren(child.pkg, child.real, child.logical, child.name);
  };

  await placeChildren(pkg, projectRoot, '', `templates/services/${service}/package.json`);
  return placed;
}

function unreadable(file: string, err: unknown): PreflightError {
  return new PreflightError(`cannot read ${file} for a demo service's build context (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`, {
    hint: 'make it readable (or remove it) and re-run: an unreadable source would change the image without changing its tag',
  });
}

/** Regular files under `dir` (following symlinks, skipping nested node_modules when asked); synchronous, like contextArchive's reads. */
function listFiles(dir: string, relBase: string, opts: { skipNodeModules: boolean; skipDotFiles: boolean; cacheable?: boolean }, out: ContextEntry[], seen = new Set<string>()): void {
  const realDir = fs.realpathSync(dir);
  if (seen.has(realDir)) return;
  seen.add(realDir);
  let names: string[];
  try {
    names = fs.readdirSync(dir).sort();
  } catch (err) {
    throw unreadable(dir, err);
  }
  for (const name of names) {
    if (opts.skipNodeModules && name === 'node_modules') continue;
    if (opts.skipDotFiles && name.startsWith('.')) continue;
    const abs = path.join(dir, name);
    const rel = relBase ? `${relBase}/${name}` : name;
    let st: fs.Stats;
    try {
      st = fs.statSync(abs);
    } catch (err) {
      // a dangling symlink is no file to copy; anything else unreadable would silently change the image and its tag
      if ((err as NodeJS.ErrnoException).code === 'ENOENT' && fs.lstatSync(abs).isSymbolicLink()) continue;
      throw unreadable(abs, err);
    }
    if (st.isDirectory()) listFiles(abs, rel, opts, out, seen);
    else if (st.isFile()) {
      const cacheKey = opts.cacheable ? `${abs}\0${st.size}\0${st.mtimeMs}\0${st.ino}` : undefined;
      out.push({ rel, src: abs, executable: (st.mode & 0o111) !== 0, size: st.size, cacheKey });
    }
  }
}

const digestCache = new Map<string, string>();

function fileDigest(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

/** One file's share of the context hash: path, executable bit, size and a digest of its bytes. */
function entryLine(e: ContextEntry, digest: string): string {
  return `${e.rel}\0${e.executable ? 'x' : '-'}\0${e.size}\0${digest}\n`;
}

function isServiceDir(dir: string): boolean {
  return fs.existsSync(path.join(dir, 'Dockerfile')) && fs.existsSync(path.join(dir, 'package.json'));
}

/** Everything that goes into the service's context, and its content hash (reads every file; copies nothing). */
export async function planContext(service: ServiceName, baseImage: string, dirs: SourceDirs = defaultSourceDirs(), platform?: string): Promise<ContextPlan> {
  const serviceDir = path.join(dirs.servicesDir, service);
  if (!isServiceDir(serviceDir)) {
    throw new PreflightError(`the sources of ${service} are missing: no Dockerfile and package.json in ${serviceDir}`, {
      hint: 'reinstall meshdemo; its package ships templates/services',
    });
  }
  const entries: ContextEntry[] = [];
  listFiles(serviceDir, service, { skipNodeModules: true, skipDotFiles: true }, entries);
  const dockerfile = entries.find((e) => e.rel === `${service}/Dockerfile`);
  if (dockerfile) entries.push({ ...dockerfile, rel: 'Dockerfile' });

  const commonDir = path.join(dirs.servicesDir, 'common');
  if (fs.existsSync(commonDir)) listFiles(commonDir, 'common', { skipNodeModules: true, skipDotFiles: true }, entries);

  const pkg = await readJson(path.join(serviceDir, 'package.json'));
  const deps = depNames(pkg).map((d) => d.name);
  if (deps.includes('@grpc/proto-loader')) {
    for (const name of (await fsp.readdir(dirs.servicesDir)).sort()) {
      if (!name.endsWith('.proto')) continue;
      const abs = path.join(dirs.servicesDir, name);
      const st = await fsp.stat(abs);
      if (st.isFile()) entries.push({ rel: name, src: abs, executable: false, size: st.size });
    }
  }

  const placed = await placeDependencies(service, pkg, dirs.projectRoot);
  const packages: string[] = [];
  for (const [logical, real] of placed) {
    const version = (await readJson(path.join(real, 'package.json'))).version ?? '?';
    packages.push(`${logical}@${version}`);
    listFiles(real, logical, { skipNodeModules: true, skipDotFiles: false, cacheable: true }, entries);
  }

  const byRel = new Map<string, ContextEntry>();
  for (const e of entries) if (!byRel.has(e.rel)) byRel.set(e.rel, e);
  const sorted = [...byRel.values()].sort((a, b) => (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0));

  const hash = createHash('sha256');
  hash.update(`${LAYOUT_VERSION}\0`);
  let bytes = 0;
  for (const e of sorted) {
    let digest = e.cacheKey ? digestCache.get(e.cacheKey) : undefined;
    if (!digest) {
      let data: Buffer;
      try {
        data = fs.readFileSync(e.src);
      } catch (err) {
        throw unreadable(e.src, err);
      }
      e.size = data.length;
      digest = fileDigest(data);
      if (e.cacheKey) digestCache.set(e.cacheKey, digest);
    }
    bytes += e.size;
    hash.update(entryLine(e, digest));
  }
  hash.update(hashTail(baseImage, platform));
  const hex = hash.digest('hex');
  return { service, baseImage, platform, entries: sorted, packages: packages.sort(), hash: hex, tag: hex.slice(0, 12), bytes };
}

/** What the hash covers after the files: the base image and — the same sources for another architecture are another image — the platform. */
function hashTail(baseImage: string, platform: string | undefined): string {
  return `base-image\0${baseImage}${platform ? `\0platform\0${platform}` : ''}`;
}

export interface ContextArchive {
  plan: ContextPlan;
  /** The context as an uncompressed tar, for `docker build -`. */
  tar: Buffer;
}

/** Fixed, so the same sources always make the same archive. */
const ARCHIVE_MTIME = new Date('2000-01-01T00:00:00Z');

/**
 * The planned context as a tar in memory, for `docker build -`: the sources are read where they are
 * (node_modules too) instead of being copied into a temp dir first, and checked against the plan's hash.
 * `labels` go into one LABEL line appended to the Dockerfile: the legacy builder turns every `--label`
 * into an instruction of its own (one more commit each); one line is one.
 */
export async function contextArchive(service: ServiceName, baseImage: string, opts: { dirs?: SourceDirs; labels?: (plan: ContextPlan) => Record<string, string>; plan?: ContextPlan; platform?: string } = {}): Promise<ContextArchive> {
  const { Header, Pax } = await import('tar');
  // a plan made moments ago is reused: the bytes read below are checked against its hash all the same
  const plan = opts.plan ?? (await planContext(service, baseImage, opts.dirs, opts.platform));
  // read synchronously: a thousand small files cost a few ms this way, and ten times that through the thread pool
  const datas = plan.entries.map((e) => fs.readFileSync(e.src));

  const verify = createHash('sha256');
  verify.update(`${LAYOUT_VERSION}\0`);
  const blocks: Buffer[] = [];
  const header = (p: string, type: 'File' | 'Directory', mode: number, size: number) => {
    const block = Buffer.alloc(512);
    const h = new Header({ path: p, type, mode, size, mtime: ARCHIVE_MTIME, uid: 0, gid: 0 });
    if (h.encode(block, 0)) blocks.push(new Pax({ path: p, mtime: ARCHIVE_MTIME }).encode());
    blocks.push(block);
  };
  const labels = Object.entries(opts.labels?.(plan) ?? {});
  const dirs = new Set<string>();
  for (const [i, e] of plan.entries.entries()) {
    const parts = e.rel.split('/');
    for (let d = 1; d < parts.length; d++) {
      const dir = `${parts.slice(0, d).join('/')}/`;
      if (!dirs.has(dir)) {
        dirs.add(dir);
        header(dir, 'Directory', 0o755, 0);
      }
    }
    let data = datas[i];
    verify.update(entryLine({ ...e, size: data.length }, fileDigest(data)));
    if (e.rel === 'Dockerfile' && labels.length) {
      const line = `LABEL ${labels.map(([k, v]) => `${k}=${JSON.stringify(v)}`).join(' ')}`;
      data = Buffer.concat([data, Buffer.from(`${data.length && data[data.length - 1] !== 0x0a ? '\n' : ''}${line}\n`)]);
    }
    header(e.rel, 'File', e.executable ? 0o755 : 0o644, data.length);
    blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024));
  verify.update(hashTail(baseImage, plan.platform));
  if (verify.digest('hex') !== plan.hash) {
    throw new PreflightError(`the sources of ${service} changed while its build context was being prepared`, { hint: 'run the command again' });
  }
  return { plan, tar: Buffer.concat(blocks) };
}
