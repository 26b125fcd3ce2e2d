import fs from 'node:fs';
import path from 'node:path';
import { DownloadError, ExternalCommandError } from '../core/errors.js';
import type { Context, Step } from '../record/context.js';
import { runProbe } from '../exec/run.js';
import { assetName, cachedReleaseDistrust } from '../demo/istio-release.js';
import { extractDir, istioctlPath, versionCacheDir } from '../core/cache-layout.js';
import type { UpSettings } from '../settings.js';

type Settings = Pick<UpSettings, 'istioVersion' | 'istioMirror' | 'istioSha256' | 'istioArchive'>;

/** An Istio release archive is 30–60 MB: a server sending more than this is not serving one. */
export const ISTIO_ARCHIVE_MAX_BYTES = 512 * 1024 ** 2;

export const istioDownload: Step<Settings> = {
  id: 'istio-download',
  title: 'Download Istio release',
  async check(ctx) {
    const { cacheDir } = ctx.options;
    const { istioVersion: version, istioSha256 } = ctx.settings;
    const binary = istioctlPath(cacheDir, version);
    if (!isExecutable(binary)) return { satisfied: false, detail: `download istio-${version} into ${versionCacheDir(cacheDir, version)}` };
    const distrust = cachedReleaseDistrust(cacheDir, version, istioSha256);
    if (distrust) return { satisfied: false, detail: `verify and unpack istio-${version} again (the cached tree is not trusted: ${distrust})` };
    return { satisfied: true, detail: `istioctl ${version} cached at ${binary}${istioSha256 ? ', every file verified' : ', verified'}` };
  },
  async run(ctx) {
    const { istioVersion: version } = ctx.settings;
    const { downloadVerified, fetchText, parseSha256File } = await import('../download/download.js');
    const { extractArchiveSafely } = await import('../download/extract.js');
    const tree = extractDir(ctx.options.cacheDir, version);
    let how: string;
    if (ctx.settings.istioArchive) {
      const archive = path.resolve(ctx.settings.istioArchive);
      const companion = `${archive}.sha256`;
      const expected = ctx.settings.istioSha256 ?? (fs.existsSync(companion) ? parseSha256File(fs.readFileSync(companion, 'utf8')) : undefined);
      if (!expected) ctx.log.warn(`no checksum for ${archive}: pass --istio-sha256 or put ${path.basename(companion)} beside it to verify it`);
      // one pass: hashed and unpacked together; the tree is kept only if the hash matches
      await extractArchiveSafely(archive, tree, { signal: ctx.signal, expectedSha256: expected });
      how = `${expected ? 'verified' : 'unverified'} local archive ${archive}`;
    } else {
      const asset = assetName(version);
      if (asset.note) ctx.log.note(asset.note);
      const url = `${ctx.settings.istioMirror}/${version}/${asset.name}`;
      if (new URL(url).protocol === 'http:' && !ctx.settings.istioSha256) {
        ctx.log.warn('--istio-mirror uses plain http and no --istio-sha256 is pinned: the checksum comes from the same unauthenticated server as the archive, so it cannot detect tampering on the way, and istioctl runs right after; pin --istio-sha256 or use an https mirror');
      }
      const expected = ctx.settings.istioSha256 ?? parseSha256File(await fetchText(`${url}.sha256`, { signal: ctx.signal }), asset.name);
      const archive = path.join(versionCacheDir(ctx.options.cacheDir, version), asset.name);
      const result = await downloadVerified({
        url,
        dest: archive,
        expectedSha256: expected,
        maxBytes: ISTIO_ARCHIVE_MAX_BYTES,
        extractTo: { dir: tree },
        signal: ctx.signal,
        onLockWait: (pid) => ctx.log.info(`another meshdemo (pid ${pid}) is downloading ${asset.name} into this cache: waiting for it`),
        onProgress: (p) => ctx.log.progress(p.received, p.total),
        onRetry: (r) => ctx.log.warn(`download attempt ${r.attempt} failed (${r.reason}); retrying in ${Math.round(r.delayMs)}ms`),
      });
      how = result.fromCache ? `cached ${asset.name}` : `${asset.name} (${(result.bytes / 1048576).toFixed(1)} MB${result.resumed ? ', resumed' : ''}) from ${url}`;
    }
    const binary = istioctlPath(ctx.options.cacheDir, version);
    if (!isExecutable(binary)) {
      throw new DownloadError(`the archive has no executable istio-${version}/bin/istioctl`, { hint: 'it is not an Istio release archive; check --istio-archive or --istio-mirror' });
    }
    const out = await runProbe(binary, ['version', '--remote=false'], { signal: ctx.signal, timeoutMs: 30_000 });
    if (!out.stdout.includes(version)) {
      throw new ExternalCommandError(`istioctl reports version "${out.stdout.trim().split('\n')[0]}", expected ${version}`, { hint: 'the archive holds another release; check --istio-version' });
    }
    return how;
  },
};

function isExecutable(file: string): boolean {
  try {
    fs.accessSync(file, fs.constants.X_OK);
    return fs.statSync(file).isFile();
  } catch {
    return false;
  }
}

export type { Context };
