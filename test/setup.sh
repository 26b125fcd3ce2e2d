#!/usr/bin/env bash
# Prepares a fresh Debian 12 machine (as root) for the tests. Idempotent and quiet.
# Installs only from Debian's own repositories; does not start dockerd (tests start their own).
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

if [ "$(id -u)" -ne 0 ]; then
  echo "test/setup.sh: run as root" >&2
  exit 1
fi

need=()
for p in etcd-server golang-go rsync jq openssl golang-github-modern-go-reflect2-dev dpkg-dev \
         docker.io docker-registry iproute2; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
# the control plane is built from Debian's kubernetes source package: enable deb-src before the one update
CACHE=${MESHDEMO_TESTENV_CACHE:-$HOME/.cache/meshdemo-testenv}
update=0
if { [ ! -x "$CACHE/v1.20.2/kube-apiserver" ] || [ ! -x "$CACHE/v1.20.2/kube-controller-manager" ]; } \
   && [ ! -f /etc/apt/sources.list.d/debian-src.sources ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > /etc/apt/sources.list.d/debian-src.sources
  update=1
fi
if [ ${#need[@]} -gt 0 ] || [ $update -eq 1 ]; then
  apt-get update -qq
fi
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

# kube-apiserver + kube-controller-manager 1.20.2 from Debian's source package (cached; ~15 min cold)
bash test/support/build-control-plane.sh

# node_modules: install when missing or not matching package.json / package-lock.json (npm ls is offline)
if [ ! -d node_modules ] || ! npm ls --all >/dev/null 2>&1; then
  npm ci --no-audit --no-fund --loglevel=error
fi
