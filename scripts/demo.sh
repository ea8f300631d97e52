#!/usr/bin/env bash
# Sets everything up, starts lodged on its embedded defaults (state in $LODGE_DIR, default
# /var/lib/lodge) unless one is already running there, and shows it working.
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
echo "==> lodge info"
lodge info
