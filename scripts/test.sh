#!/usr/bin/env bash
# The whole test suite: build, type-check, then unit, integration and compatibility tests with
# node's test runner. Integration and compat tests need root and the host tools .ci/run installs.
set -euo pipefail
cd "$(dirname "$0")/.."
npm run --silent build
npx tsc --noEmit -p .
shopt -s nullglob
files=(test/unit/*.test.ts test/integration/*.test.ts test/compat/*.test.ts)
if [ "$#" -gt 0 ]; then files=("$@"); fi
exec node --import tsx --test --test-concurrency=2 --test-timeout=600000 "${files[@]}"
