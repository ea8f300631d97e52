#!/usr/bin/env bash
# Sets everything up, starts lodged on its embedded defaults (state in $LODGE_DIR, default
# /var/lib/lodge) unless one is already running there, sets the server up with `lodge init
# --auto` (the default storage pool, and a managed bridge with DHCP, DNS and NAT on eth0 of the
# default profile; run again, it changes nothing), and shows its main job: an image, a running
# container with an address, and commands run in it.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export LODGE_DIR="${LODGE_DIR:-/var/lib/lodge}"
mkdir -p "$LODGE_DIR"
if ! lodge admin waitready --timeout 1 >/dev/null 2>&1; then
  echo "==> starting lodged (logs: $LODGE_DIR/lodged.log)"
  nohup lodged >/dev/null 2>&1 &
  lodge admin waitready --timeout 30
fi
echo "==> lodge init --auto"
lodge init --auto
lodge info
if ! lodge image info busybox >/dev/null 2>&1; then
  echo "==> building the busybox image (images/busybox.yaml)"
  lodge image build images/busybox.yaml --import --alias busybox
fi
name="demo-$(date +%s)"
echo "==> lodge launch busybox $name"
lodge launch busybox "$name"
echo "==> lodge exec $name -- uname -a"
lodge exec "$name" -- uname -a
# The address comes from the network's DHCP (udhcpc in the busybox image) within seconds.
for _ in $(seq 1 100); do
  addr="$(lodge list "$name" --format csv -c 4 | grep -o '^[0-9.]*' || true)"
  [ -n "$addr" ] && break
  sleep 0.1
done
network="$(lodge profile device get default eth0 network)"
gateway="$(lodge network get "$network" ipv4.address | cut -d/ -f1)"
echo "==> $name has ${addr:-no address} on $network; lodge exec $name -- ping -c1 $gateway (the host)"
lodge exec "$name" -- ping -c1 -W2 "$gateway"
lodge list
echo "==> done: '$name' keeps running; remove it with: lodge delete -f $name"
