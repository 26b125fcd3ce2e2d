/**
 * The Docker network kind v0.17.0 puts its nodes on (pkg/cluster/internal/providers/docker/network.go and provider.go
 * Provision at v0.17.0): named "kind", or KIND_EXPERIMENTAL_DOCKER_NETWORK when set; reused as it is when one of that
 * name exists, else created as a bridge with an IPv6 ULA subnet (`--ipv6 --subnet fc00:…/64`), falling back to IPv4
 * only when the daemon says "Cannot read IPv6 setup for bridge". Docker 27 turned ip6tables on by default
 * (docs.docker.com/engine/release-notes/27.0/#ipv6): on a host without ip6tables NAT that IPv6 network fails with
 * "Failed to Setup IP tables: Unable to enable NAT rule", which kind v0.17.0 does not fall back from
 * (kubernetes-sigs/kind#3677, #3748; kind added IPv4-only fallbacks only in v0.25 and v0.31). meshdemo's cluster is
 * IPv4-only, so before kind creates it meshdemo creates the network as kind would without IPv6, and kind reuses it.
 */

/** The network kind v0.17.0 uses: KIND_EXPERIMENTAL_DOCKER_NETWORK (kind warns "Here be dragons!"), else "kind". */
export function kindNetworkName(env: NodeJS.ProcessEnv = process.env): string {
  return env.KIND_EXPERIMENTAL_DOCKER_NETWORK || 'kind';
}

/** Does kind v0.17.0's IPv6 network fail on this daemon when the host lacks ip6tables NAT (Docker 27 and later)? */
export function ipv6NetworkMayFail(dockerServerVersion: string): boolean {
  const major = Number(/^(\d+)\./.exec(dockerServerVersion)?.[1]);
  return Number.isInteger(major) && major >= 27;
}
