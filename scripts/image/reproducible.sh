#!/usr/bin/env bash
# Builds the image twice from scratch (base layer included, no cache) and checks that both
# builds give the same manifest digest; on a difference, names the layers that differ.
#   npm run image:reproducible      (about 4 minutes: two full builds)
set -euo pipefail
cd "$(dirname "$0")/../.."
runs=build/image-reproducible
rm -rf "$runs"
for n in 1 2; do
  echo "reproducible: build $n" >&2
  VGW_IMAGE_OUT="$PWD/$runs/$n" VGW_IMAGE_BASE_CACHE=0 bash scripts/image/build.sh | tee "$runs.$n.log"
done
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
