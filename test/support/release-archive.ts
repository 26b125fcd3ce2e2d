/**
 * Builds a release-shaped Istio archive (`istio-<v>-linux-amd64.tar.gz` plus `<name>.sha256`) for tests,
 * from the real Istio 1.8.4 YAML in shared/fixtures (read at run time, never copied into the repo).
 *
 * Its `bin/istioctl` is NOT the real istioctl: it is a small POSIX sh script that execs the stand-in
 * (dist/test/support/istioctl-standin.js) with this Node binary, because the real binary cannot run here.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { chmod, cp, mkdir, mkdtemp, open, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { create } from 'tar';

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Absolute path of shared/fixtures/istio-1.8.4 (from dist/test/support: ../../../../shared/...), or env MESHDEMO_FIXTURES. */
export const FIXTURES: string = path.resolve(process.env.MESHDEMO_FIXTURES || path.join(HERE, '..', '..', '..', '..', 'shared', 'fixtures', 'istio-1.8.4'));

/** The compiled stand-in that bin/istioctl execs. */
export const STANDIN_JS: string = path.join(HERE, 'istioctl-standin.js');

export const DEFAULT_VERSION = '1.8.4';

/** Files copied from FIXTURES into the archive (paths relative to both FIXTURES and istio-<v>/). */
const RELEASE_FILES = [
  'samples/addons/grafana.yaml',
  'samples/addons/jaeger.yaml',
  'samples/addons/kiali.yaml',
  'samples/addons/prometheus.yaml',
  'samples/addons/extras/zipkin.yaml',
  'samples/addons/extras/prometheus-operator.yaml',
  'manifests/profiles/demo.yaml',
];
/** Directory trees copied whole. (`rendered/` is not part of a real release and stays out.) */
const RELEASE_TREES = ['manifests/charts'];

export interface BuildReleaseArchiveOptions {
  outDir: string;
  /** Default '1.8.4'. */
  version?: string;
  /** Default `istio-<version>-linux-amd64.tar.gz`. */
  assetName?: string;
  /** Size of an extra incompressible filler file (istio-<v>/tools/padding.bin), e.g. for a ~45 MB benchmark archive. */
  padBytes?: number;
  /** Size of an extra compressible text filler (istio-<v>/tools/padding.txt), for a benchmark archive of mixed content. */
  textBytes?: number;
  /** Replaces the content of bin/istioctl (still mode 0755). */
  istioctlScript?: string;
}

export interface ReleaseArchive {
  /** Absolute path of the .tar.gz (the `.sha256` is at `${path}.sha256`). */
  path: string;
  name: string;
  sha256: string;
  bytes: number;
}

/** Single-quoted for POSIX sh. */
function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * The default bin/istioctl: exports the release directory (so the stand-in reads the manifests shipped in
 * this archive) and the archive's version (unless STANDIN_VERSION is already set), then execs the stand-in.
 */
export function standinScript(version: string = DEFAULT_VERSION): string {
  return [
    '#!/bin/sh',
    `# Stand-in for istioctl ${version}, written by meshdemo's tests (test/support/release-archive.ts).`,
    '# It is NOT the real istioctl: it runs test/support/istioctl-standin.ts (compiled) with Node.',
    'STANDIN_RELEASE_DIR=$(CDPATH= cd -- "$(dirname -- "$0")/.." && pwd) || exit 1',
    'export STANDIN_RELEASE_DIR',
    `: "\${STANDIN_VERSION:=${version}}"`,
    'export STANDIN_VERSION',
    `exec ${shQuote(process.execPath)} ${shQuote(STANDIN_JS)} "$@"`,
    '',
  ].join('\n');
}

async function writePadding(file: string, bytes: number): Promise<void> {
  const fh = await open(file, 'w');
  try {
    const CHUNK = 1 << 20;
    for (let left = bytes; left > 0; left -= CHUNK) await fh.write(randomBytes(Math.min(CHUNK, left)));
  } finally {
    await fh.close();
  }
}

/** Text that compresses about as well as source code and YAML do (gzip: about 4×): words drawn from a small vocabulary. */
async function writeText(file: string, bytes: number): Promise<void> {
  const words = 'apiVersion kind metadata name namespace labels spec template containers image ports protocol TCP service deployment istio proxy sidecar gateway virtual route match prefix weight destination host subset version'.split(' ');
  const fh = await open(file, 'w');
  let seed = 20;
  const next = () => (seed = (seed * 1103515245 + 12345) % 2 ** 31);
  try {
    for (let left = bytes; left > 0; ) {
      const lines: string[] = [];
      let size = 0;
      while (size < 1 << 20) {
        const line = `${'  '.repeat(next() % 4)}${Array.from({ length: 2 + (next() % 6) }, () => words[next() % words.length]).join(' ')}: ${next() % 10000}\n`;
        lines.push(line);
        size += line.length;
      }
      const chunk = Buffer.from(lines.join('')).subarray(0, Math.min(left, 1 << 20));
      await fh.write(chunk);
      left -= chunk.length;
    }
  } finally {
    await fh.close();
  }
}

async function sha256File(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

export async function buildReleaseArchive(opts: BuildReleaseArchiveOptions): Promise<ReleaseArchive> {
  const version = opts.version ?? DEFAULT_VERSION;
  const name = opts.assetName ?? `istio-${version}-linux-amd64.tar.gz`;
  const top = `istio-${version}`;
  const outDir = path.resolve(opts.outDir);
  await mkdir(outDir, { recursive: true });
  const staging = await mkdtemp(path.join(tmpdir(), 'meshdemo-release-'));
  try {
    const root = path.join(staging, top);
    await mkdir(path.join(root, 'bin'), { recursive: true });
    const istioctl = path.join(root, 'bin', 'istioctl');
    await writeFile(istioctl, opts.istioctlScript ?? standinScript(version));
    await chmod(istioctl, 0o755);
    for (const rel of RELEASE_FILES) {
      await mkdir(path.dirname(path.join(root, rel)), { recursive: true });
      await cp(path.join(FIXTURES, rel), path.join(root, rel));
    }
    for (const rel of RELEASE_TREES) await cp(path.join(FIXTURES, rel), path.join(root, rel), { recursive: true });
    if (opts.padBytes && opts.padBytes > 0) {
      await mkdir(path.join(root, 'tools'), { recursive: true });
      await writePadding(path.join(root, 'tools', 'padding.bin'), opts.padBytes);
    }
    if (opts.textBytes && opts.textBytes > 0) {
      await mkdir(path.join(root, 'tools'), { recursive: true });
      await writeText(path.join(root, 'tools', 'padding.txt'), opts.textBytes);
    }
    const file = path.join(outDir, name);
    await create({ gzip: true, portable: true, cwd: staging, file }, [top]);
    const sha256 = await sha256File(file);
    // istio/release-builder (release-1.8) pkg/util/files.go CreateSha: fmt.Sprintf("%x %s\n", …) — ONE space
    await writeFile(`${file}.sha256`, `${sha256} ${name}\n`);
    return { path: file, name, sha256, bytes: (await stat(file)).size };
  } finally {
    await rm(staging, { recursive: true, force: true });
  }
}
