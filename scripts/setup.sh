#!/usr/bin/env bash
# One-time machine setup: Debian packages for the data plane, then npm dependencies.
# Idempotent: installs only what is missing. Needs root (or sudo) for apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."

# Installs the Debian packages given that are not installed yet.
install_missing() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    local SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -q
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${missing[@]}"
  fi
}

# `setup.sh --image-tools`: only what the image build (scripts/image/build.sh) needs on top of
# the rest; the tests and the quickstart do not need it.
if [ "${1:-}" = --image-tools ]; then
  install_missing mmdebstrap umoci skopeo jq
  exit 0
fi

install_missing varnish varnish-modules varnish-selector tcc hitch wrk stunnel4
# The Debian package starts a system varnishd on :6081; we run our own, so keep it out of the way.
if command -v systemctl >/dev/null 2>&1; then systemctl disable --now varnish varnishncsa >/dev/null 2>&1 || true; fi

if [ ! -x node_modules/.bin/node ] || [ package.json -nt node_modules/.package-lock.json ]; then
  npm install --no-audit --no-fund
fi
