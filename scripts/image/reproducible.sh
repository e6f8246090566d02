#!/usr/bin/env bash
# Builds the image twice and checks that both builds give the same manifest digest; on a
# difference, names the layers that differ.
#   npm run image:reproducible      both builds from scratch, base layer included (about 4 minutes)
#   reproducible.sh --reuse-base    a second build next to the one in build/image, over the base
#                                   layer that build cached: checks the Node and app layers and the
#                                   image config in about 20 s (part of npm run image:smoke)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=build/image-reproducible
rm -rf "$runs" "$runs".?.log
mkdir -p "$runs"
if [ "${1:-}" = --reuse-base ]; then
  [ -f build/image/oci/index.json ] || { echo "reproducible: no build in build/image to compare with (npm run image)" >&2; exit 1; }
  ln -s "$PWD/build/image" "$runs/1"
  # The first build's digest, as build.sh prints it.
  echo "digest: $(jq -r '.manifests[0].digest' build/image/oci/index.json)" >"$runs.1.log"
  mkdir -p "$runs/2/cache"
  cp build/image/cache/base-*.tar "$runs/2/cache/"
  echo "reproducible: build 2 over the cached base layer" >&2
  VGW_IMAGE_OUT="$PWD/$runs/2" bash scripts/image/build.sh | tee "$runs.2.log"
else
  for n in 1 2; do
    echo "reproducible: build $n" >&2
    VGW_IMAGE_OUT="$PWD/$runs/$n" VGW_IMAGE_BASE_CACHE=0 bash scripts/image/build.sh | tee "$runs.$n.log"
  done
fi
digest() { grep '^digest: ' "$runs.$1.log" | cut -d' ' -f2; }
if [ "$(digest 1)" = "$(digest 2)" ]; then
  echo "reproducible: yes, both builds are $(digest 1)"
  rm -rf "$runs" "$runs".?.log
  exit 0
fi
echo "reproducible: NO: $(digest 1) vs $(digest 2)" >&2
manifest() { jq -r '.manifests[0].digest | sub("sha256:"; "")' "$runs/$1/oci/index.json"; }
for what in config 'layers[0]' 'layers[1]' 'layers[2]'; do
  a=$(jq -r ".$what.digest" "$runs/1/oci/blobs/sha256/$(manifest 1)")
  b=$(jq -r ".$what.digest" "$runs/2/oci/blobs/sha256/$(manifest 2)")
  [ "$a" = "$b" ] || echo "reproducible: $what differs ($a vs $b); compare with: umoci unpack, then diff -r" >&2
done
exit 1
