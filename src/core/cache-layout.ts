import path from 'node:path';

// Everything meshdemo keeps under --cache-dir, in one place:
//   istio/<v>/<asset>               the Istio release archive (<asset>.part while it downloads, <asset>.lock while a run does)
//   istio/<v>/tree/istio-<v>/       the release, extracted atomically (tree.tmp-* while it is extracted)
//   kind/v<k>/kind                  the kind binary, executable once verified; kind.manifest.json: its verified sha256
//   local-clusters/<name>.json      the local cluster meshdemo created; <name>.kind.yaml its kind config, <name>.lock
//   parsed-manifests/<sha256>.json  YAML manifests (the addons) parsed once, by the sha256 of their text

/** <cache>/istio/<v>/: the archive, and the tree it unpacks to (extracted atomically, so present means complete). */
export function versionCacheDir(cacheDir: string, version: string): string {
  return path.join(cacheDir, 'istio', version);
}

export function extractDir(cacheDir: string, version: string): string {
  return path.join(versionCacheDir(cacheDir, version), 'tree');
}

/** Where a release lives in the cache: <cache>/istio/<v>/tree/istio-<v>/bin/istioctl. */
export function releaseDir(cacheDir: string, version: string): string {
  return path.join(extractDir(cacheDir, version), `istio-${version}`);
}

export function istioctlPath(cacheDir: string, version: string): string {
  return path.join(releaseDir(cacheDir, version), 'bin', process.platform === 'win32' ? 'istioctl.exe' : 'istioctl');
}

/** <cache>/kind/v<version>/kind: where meshdemo keeps the kind it downloaded (made executable only once verified). */
export function kindBinaryPath(cacheDir: string, kindVersion: string, platform: NodeJS.Platform = process.platform): string {
  return path.join(cacheDir, 'kind', `v${kindVersion}`, platform === 'win32' ? 'kind.exe' : 'kind');
}

/** Beside the cached kind: the sha256 it had when its download was verified. */
export function kindManifestPath(cacheDir: string, kindVersion: string): string {
  return `${kindBinaryPath(cacheDir, kindVersion)}.manifest.json`;
}

/** Parsed YAML manifests, as JSON, by the sha256 of the YAML (src/kube/manifests.ts readManifestsCached). */
export function parsedManifestsDir(cacheDir: string): string {
  return path.join(cacheDir, 'parsed-manifests');
}

export function localClustersDir(cacheDir: string): string {
  return path.join(cacheDir, 'local-clusters');
}

export function localClusterStatePath(cacheDir: string, name: string): string {
  return path.join(localClustersDir(cacheDir), `${name}.json`);
}

export function localClusterConfigPath(cacheDir: string, name: string): string {
  return path.join(localClustersDir(cacheDir), `${name}.kind.yaml`);
}

/** Held from before a local cluster's state file is written until the cluster exists (src/kind/state.ts lockLocalCluster). */
export function localClusterLockPath(cacheDir: string, name: string): string {
  return path.join(localClustersDir(cacheDir), `${name}.lock`);
}
