#!/usr/bin/env bash
# Installs what Lodge needs on Debian 12 (host tools, node modules), builds it, and links the
# `lodge` and `lodged` commands into /usr/local/bin. Idempotent; run as root.
set -euo pipefail
cd "$(dirname "$0")/.."

# Host tools Lodge drives, plus the test tools (lxd-client's `lxc`, pylxd, Ansible with
# community.general's lxd_container and lxd_profile).
PACKAGES=(
  lxc uidmap squashfs-tools xz-utils zstd tar busybox-static debootstrap
  qemu-system-x86 qemu-utils dnsmasq-base nftables iproute2 btrfs-progs xfsprogs
  lxd-client python3-pylxd ansible curl ca-certificates build-essential python3
)
missing=()
for p in "${PACKAGES[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "==> installing ${missing[*]}"
  apt-get update -q
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "==> installing Node.js from Debian"
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q nodejs npm
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
