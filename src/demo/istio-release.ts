import path from 'node:path';
import { UsageError } from '../core/errors.js';
import { manifestMismatch } from '../download/cache-files.js';
import { extractDir, istioctlPath } from '../core/cache-layout.js';
import type { Context } from '../record/context.js';

/** The release asset for this platform, as published on the Istio releases page. */
export function assetName(version: string, platform: NodeJS.Platform = process.platform, arch: string = process.arch): { name: string; note?: string } {
  if (platform === 'linux') {
    const suffix = ({ x64: 'amd64', arm64: 'arm64', arm: 'armv7' } as Record<string, string>)[arch];
    if (!suffix) throw new UsageError(`Istio ${version} has no release for linux/${arch}`, { hint: 'use --istio-archive with a release built for this machine' });
    return { name: `istio-${version}-linux-${suffix}.tar.gz` };
  }
  if (platform === 'darwin') {
    return {
      name: `istio-${version}-osx.tar.gz`,
      note: arch === 'arm64' ? `Istio ${version} ships only an amd64 macOS build; it runs under Rosetta` : undefined,
    };
  }
  if (platform === 'win32') {
    throw new UsageError(`the Windows release (istio-${version}-win.zip) is not supported yet`, { hint: 'run meshdemo from WSL2 or a Linux/macOS machine' });
  }
  throw new UsageError(`Istio has no release for ${platform}`, { hint: 'use Linux or macOS' });
}

/** --kubeconfig/--context as meshdemo resolved them, for istioctl. */
export async function istioctlKubeArgs(ctx: Context<unknown>): Promise<string[]> {
  const kube = await ctx.kube();
  return [...(ctx.options.kubeconfig ? ['--kubeconfig', ctx.options.kubeconfig] : []), '--context', kube.contextName];
}

/**
 * Why the cached istioctl may not be run, or undefined when it may: it must match the manifest recorded when
 * its archive was verified; with a pinned sha256, the tree must come from that archive and every file of it match.
 */
export function cachedReleaseDistrust(cacheDir: string, version: string, pinnedSha256?: string): string | undefined {
  const tree = extractDir(cacheDir, version);
  const istioctl = path.relative(path.dirname(tree), istioctlPath(cacheDir, version));
  return manifestMismatch(`${tree}.manifest.json`, pinnedSha256 ? { pinned: pinnedSha256 } : { only: [istioctl] });
}
