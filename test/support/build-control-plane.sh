#!/usr/bin/env bash
# Builds kube-apiserver and kube-controller-manager v1.20.2 from Debian's kubernetes source package
# (recipe: ../shared/testenv.md) and caches them outside the repository. A warm cache skips the build.
set -euo pipefail
VERSION=1.20.2
CACHE=${MESHDEMO_TESTENV_CACHE:-$HOME/.cache/meshdemo-testenv}
BIN=$CACHE/v$VERSION
cached() { [ -x "$BIN/kube-apiserver" ] && [ -x "$BIN/kube-controller-manager" ]; }
if cached; then
  echo "control plane binaries cached in $BIN"
  exit 0
fi
# one build at a time: a second caller waits for the first and then finds the cache warm
mkdir -p "$CACHE"
exec 9>"$CACHE/.build.lock"
flock 9
if cached; then
  echo "control plane binaries cached in $BIN"
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
need=()
for p in etcd-server golang-go rsync jq openssl golang-github-modern-go-reflect2-dev dpkg-dev; do
  dpkg -s "$p" >/dev/null 2>&1 || need+=("$p")
done
if [ ${#need[@]} -gt 0 ]; then
  apt-get update -qq
  apt-get install -y -qq "${need[@]}"
fi
if [ ! -f /etc/apt/sources.list.d/debian-src.sources ]; then
  sed 's/^Types: deb$/Types: deb-src/' /etc/apt/sources.list.d/debian.sources > /etc/apt/sources.list.d/debian-src.sources
  apt-get update -qq
fi
WORK=$CACHE/build
rm -rf "$WORK" && mkdir -p "$WORK/home"
cd "$WORK"
apt-get source --download-only kubernetes >/dev/null
tar xzf kubernetes_*.orig.tar.gz
cd kubernetes-$VERSION
V=vendor/github.com/modern-go/reflect2
rm -rf $V && mkdir $V
cp /usr/share/gocode/src/github.com/modern-go/reflect2/*.go /usr/share/gocode/src/github.com/modern-go/reflect2/*.s $V/
mkdir -p .go/src/k8s.io && ln -sfn ../../.. .go/src/k8s.io/kubernetes
env GOPATH=$PWD/.go HOME=$WORK/home CGO_ENABLED=0 GOFLAGS= make WHAT="cmd/kube-apiserver cmd/kube-controller-manager"
rm -rf "$BIN.tmp" && mkdir -p "$BIN.tmp"
cp _output/local/bin/linux/*/kube-apiserver _output/local/bin/linux/*/kube-controller-manager "$BIN.tmp/"
rm -rf "$BIN" && mv "$BIN.tmp" "$BIN"
cd "$CACHE" && rm -rf "$WORK"
echo "control plane binaries built into $BIN"
