#!/usr/bin/env bash
# Sets up the machine (Debian packages, npm dependencies) and runs the quickstart gateway.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node_modules/.bin/node examples/quickstart/run.ts
