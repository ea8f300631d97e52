#!/usr/bin/env bash
# Installs what Lodge needs on Debian 12 (host tools, node modules), builds it, and links the
# `lodge` and `lodged` commands into /usr/local/bin. Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# Host tools Lodge drives, plus the test tools (lxd-client's `lxc`, pylxd, Ansible with
# community.general's lxd_container and lxd_profile).
PACKAGES=(
  lxc uidmap squashfs-tools xz-utils zstd pigz tar busybox-static debootstrap
  qemu-system-x86 qemu-utils ovmf genisoimage dnsmasq-base nftables iproute2 btrfs-progs xfsprogs
  lxd-client python3-pylxd ansible curl ca-certificates build-essential python3
)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

# VM images boot Debian's cloud kernel (virtio as modules, ext4 built in). The image builder takes
# it from this cache, so building or testing a VM image needs no network for it.
KERNEL_CACHE=/var/cache/lodge
if ! ls "$KERNEL_CACHE"/linux-image-*-cloud-amd64_*.deb >/dev/null 2>&1; then
  kpkg=$(apt-cache depends linux-image-cloud-amd64 2>/dev/null | awk '/Depends: linux-image-/{print $2; exit}')
  if [ -z "$kpkg" ]; then apt-get update -q; kpkg=$(apt-cache depends linux-image-cloud-amd64 | awk '/Depends: linux-image-/{print $2; exit}'); fi
  echo "==> caching $kpkg in $KERNEL_CACHE"
  mkdir -p "$KERNEL_CACHE"
  (cd "$KERNEL_CACHE" && apt-get download "$kpkg" 2>&1 | grep -v "^W: Download is performed unsandboxed" || true)
fi

# Lodge needs Node.js 20 or later (node:test features, better-sqlite3 12's prebuilt ABI, tsx).
# Debian 12's own nodejs package is 18, so installing it would only leave a tree that cannot
# build or test: say what is needed and stop instead.
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" -lt 20 ]; then
  if [ "$node_major" -eq 0 ]; then have="no node on PATH"; else have="node $(node --version)"; fi
  cat >&2 <<MSG
error: Lodge needs Node.js 20 or later with npm; found $have.
  Debian 12's nodejs package is version 18, which is too old, so this script does not install it.
  Install Node.js 20+ from one of:
    - NodeSource's Debian repository (https://github.com/nodesource/distributions): nodejs 20.x or 22.x
    - an official binary tarball from https://nodejs.org/en/download, unpacked under /usr/local
  then make sure "node --version" prints v20 or later and run scripts/setup.sh again.
MSG
  exit 1
fi

# npm ci rebuilds native modules (minutes); skip it when node_modules matches the lock file.
lock_sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.lodge-lock-sum 2>/dev/null)" != "$lock_sum" ]; then
  echo "==> npm ci"
  npm ci --no-audit --no-fund
  echo "$lock_sum" > node_modules/.lodge-lock-sum
fi
echo "==> build"
npm run --silent build

ln -sf "$PWD/dist/lodge" /usr/local/bin/lodge   # the launcher (warm spares); dist/lodge.js is the plain entry
ln -sf "$PWD/dist/lodged.js" /usr/local/bin/lodged
echo "==> lodge and lodged are in /usr/local/bin"
