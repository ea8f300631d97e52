#!/usr/bin/env bash
# Sets everything up, starts lodged on its embedded defaults (state in $LODGE_DIR, default
# /var/lib/lodge) unless one is already running there, and shows its main job: an image, a
# running container on the default storage pool, and a command run in it.
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
lodge list
echo "==> done: '$name' keeps running; remove it with: lodge delete -f $name"
