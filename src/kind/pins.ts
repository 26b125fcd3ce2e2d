import { UsageError } from '../core/errors.js';

/**
 * The kind release meshdemo downloads when no supported kind is on PATH, and the Kubernetes 1.19 node image
 * built for it.
 *
 * Where the digest comes from: the release notes of kind v0.17.0
 * (https://github.com/kubernetes-sigs/kind/releases/tag/v0.17.0), section "Images built for this release":
 *   "1.19: `kindest/node:v1.19.16@sha256:476cb3269232888437b61deca013832fee41f9f074f9bed79f57e4280f7c48b7`"
 * with the note "These node images support amd64 and arm64". kind asks for these exact images, digest included,
 * with the kind release they were built for; other kind releases run them only on a best-effort basis
 * (site/content/docs/design/node-image.md), so meshdemo accepts only this kind version from PATH.
 * v1.19.16 is the newest 1.19 patch kind published, and 1.19 the newest Kubernetes Istio 1.8 supports.
 */
export const KIND_VERSION = '0.17.0';
export const NODE_IMAGE = 'kindest/node:v1.19.16@sha256:476cb3269232888437b61deca013832fee41f9f074f9bed79f57e4280f7c48b7';
export const NODE_KUBERNETES_VERSION = 'v1.19.16';
export const DEFAULT_KIND_MIRROR = 'https://github.com/kubernetes-sigs/kind/releases/download';
export const DEFAULT_CLUSTER_NAME = 'meshdemo';

/**
 * The release asset for this machine, as kind publishes it: kind-<os>-<arch> (hack/release/build/cross.sh builds
 * linux and darwin for amd64 and arm64 — the architectures the node images exist for — and windows/amd64, which
 * meshdemo does not support: Istio's Windows release is not supported either).
 */
export function kindAssetName(platform: NodeJS.Platform = process.platform, arch: string = process.arch): string {
  if (platform === 'win32') throw new UsageError('the local kind cluster is not supported on Windows itself', { hint: 'run meshdemo from WSL2 or a Linux/macOS machine' });
  const os = ({ linux: 'linux', darwin: 'darwin' } as Partial<Record<NodeJS.Platform, string>>)[platform];
  const cpu = ({ x64: 'amd64', arm64: 'arm64' } as Record<string, string>)[arch];
  if (!os || !cpu) {
    throw new UsageError(`kind v${KIND_VERSION} and its node images have no release for ${platform}/${arch}`, { hint: 'create a cluster yourself and pass --kubeconfig/--context' });
  }
  return `kind-${os}-${cpu}`;
}

/** `<mirror>/v<version>/kind-<os>-<arch>`; its checksum is the same URL + `.sha256sum`. */
export function kindDownloadUrl(mirror: string, asset: string = kindAssetName()): string {
  return `${mirror.replace(/\/+$/, '')}/v${KIND_VERSION}/${asset}`;
}

/**
 * kind's own rule for cluster names (pkg/internal/apis/config/validate.go at v0.17.0, validNameRE `^[a-z0-9.-]+$`),
 * and Docker's for the node container "<name>-control-plane" that kind names after it (moby daemon/names/names.go,
 * RestrictedNamePattern `^[a-zA-Z0-9][a-zA-Z0-9_.-]+$`): so the first character is a letter or digit — kind
 * alone accepts "-rf" and "..", and then fails at `docker run`. meshdemo also keeps it to a length that leaves room
 * for the node container name.
 */
export function parseClusterName(name: string): string {
  if (!/^[a-z0-9][a-z0-9.-]*$/.test(name) || name.length > 49) {
    throw new UsageError(`--cluster-name "${name}" is not a valid kind cluster name`, {
      hint: 'start with a lower-case letter or digit, then lower-case letters, digits, "." and "-", at most 49 characters, e.g. meshdemo',
    });
  }
  return name;
}
