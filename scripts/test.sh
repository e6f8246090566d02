#!/usr/bin/env bash
# Sets up the machine and runs everything CI runs: type-check, unit and integration tests
# (real varnishd, real backends on loopback) and the Gateway API conformance cases.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"
tsc --noEmit -p .
npm test
npm run conformance
