#!/usr/bin/env bash
# Sets up the machine and runs everything CI runs: type-check, unit and integration tests
# (real varnishd, real backends on loopback) and the Gateway API conformance cases.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export PATH="$PWD/node_modules/.bin:$PATH"
tsc --noEmit -p .
npm run --silent manifests -- --check
# A test that hangs (a leftover child process or socket keeping its file open) fails the run
# here, with the output so far, instead of holding CI until its own limit.
timeout --kill-after=60 30m npm test
# The suite twice: as one VCL, and spread over 4 shard VCLs behind the dispatcher (the layout
# large configs get), so both routing paths meet the same expectations.
npm run conformance
VGW_CONFORMANCE_SHARDS=4 npm run conformance
# And in cluster mode: the operator from deploy/install.yaml and its gateway pods on the local
# cluster (docs/testing.md), status read from the API server, traffic through each Gateway's address.
npm run conformance -- --cluster
# The container image: built from Debian packages and npm (no container engine), then run
# read-only as its non-root user, serving through varnishd on :80 (docs/install.md "The image").
npm run image:smoke
