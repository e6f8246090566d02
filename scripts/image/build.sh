#!/usr/bin/env bash
# Builds the vgw container image without a container engine, from Debian packages and the npm
# registry only (docs/install.md, "The image"):
#   layer 1  Debian bookworm minbase + varnishd 7.1, hitch, stunnel, tcc, tini (scripts/image/base.sh)
#   layer 2  Node.js 24, the binary the `node` npm package installed
#   layer 3  vgw: src/, bin/, package.json, package-lock.json of the last commit and the
#            production dependencies, `vgw` on PATH
# then assembles them with umoci and writes, under build/image/:
#   oci/                     the OCI image layout (tag = version)
#   vgw-VERSION.oci.tar      the same as an OCI archive   (skopeo copy oci-archive:... docker://...)
#   vgw-VERSION.docker.tar   the same as a docker archive (docker load / podman load)
#
# Reproducible: every date in the image is the last commit's (SOURCE_DATE_EPOCH), layers are
# packed with sorted entries and clamped times, so two builds of one commit on one day (same
# Debian packages) give the same digest. The base layer is cached under build/image/cache, keyed
# by its recipe and the day, with a copy in the user's cache directory (VGW_IMAGE_SHARED_CACHE,
# default ~/.cache/vgw/image) so another checkout on the machine reuses it the same day;
# VGW_IMAGE_BASE_CACHE=0 rebuilds it. Needs root.
set -euo pipefail
umask 022
cd "$(dirname "$0")/../.."
repo=$PWD
here=$repo/scripts/image
[ "$(id -u)" -eq 0 ] || { echo "image: needs root (mmdebstrap, file owners in the layers, umoci)" >&2; exit 1; }
bash scripts/setup.sh --image-tools
export PATH="$repo/node_modules/.bin:$PATH"

out=${VGW_IMAGE_OUT:-$repo/build/image}
version=$(jq -r .version package.json)
image="vgw:$version"
commit=$(git rev-parse HEAD)
export SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct)}
created=$(date -u -d "@$SOURCE_DATE_EPOCH" +%Y-%m-%dT%H:%M:%SZ)
# The operator runs gateway pods from DEFAULT_GATEWAY_IMAGE and the install manifests name the
# same image: refuse to build an image nothing would run.
grep -q "DEFAULT_GATEWAY_IMAGE = '$image'" src/cli/operator.ts ||
  { echo "image: DEFAULT_GATEWAY_IMAGE in src/cli/operator.ts is not '$image'" >&2; exit 1; }
if ! git diff --quiet HEAD -- src bin package-lock.json; then
  echo "image: note: uncommitted changes under src/, bin/ or package-lock.json are not in the image (it is built from $commit)" >&2
fi

mkdir -p "$out/cache"
work=$(mktemp -d "$out/work.XXXXXX")
trap 'rm -rf "$work"' EXIT
started=$SECONDS

# --- layer 1: base --------------------------------------------------------------------------
# shellcheck source=scripts/image/recipe.sh
source "$here/recipe.sh"
# Dated by the last commit that changed the recipe, so the cached layer stays valid (and equal
# to a fresh build) across commits that do not touch it.
base_epoch=$(git log -1 --format=%ct -- scripts/image)
base_epoch=${base_epoch:-$SOURCE_DATE_EPOCH}
base_key=$( { printf '%s\n' "$BASE_SUITE" "${BASE_SOURCES[@]}" "${BASE_PACKAGES[@]}" "$base_epoch" "$(date -u +%F)"
  cat "$here/base.sh" "$here/layer-tar.sh"; } | sha256sum | cut -c1-16)
base_tar=$out/cache/base-$base_key.tar
shared_cache=${VGW_IMAGE_SHARED_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/vgw/image}
if [ "${VGW_IMAGE_BASE_CACHE:-1}" != 0 ] && [ ! -s "$base_tar" ] && [ -s "$shared_cache/base-$base_key.tar" ]; then
  find "$out/cache" -name 'base-*.tar' -delete
  cp "$shared_cache/base-$base_key.tar" "$base_tar"
fi
if [ "${VGW_IMAGE_BASE_CACHE:-1}" = 0 ] || [ ! -s "$base_tar" ]; then
  echo "image: building the base layer (mmdebstrap $BASE_SUITE: ${BASE_PACKAGES[*]})" >&2
  SOURCE_DATE_EPOCH=$base_epoch bash "$here/base.sh" "$work/base.tar" >"$work/base.log" 2>&1 ||
    { tail -40 "$work/base.log" >&2; echo "image: base layer failed (log above)" >&2; exit 1; }
  find "$out/cache" -name 'base-*.tar' -delete
  mv "$work/base.tar" "$base_tar"
  # The machine-wide copy: best effort (a read-only home only costs the next checkout a build).
  if mkdir -p "$shared_cache" 2>/dev/null; then
    find "$shared_cache" -name 'base-*.tar' -delete 2>/dev/null || true
    cp "$base_tar" "$shared_cache/" 2>/dev/null || true
  fi
else
  echo "image: base layer from cache ($base_tar)" >&2
fi

# --- layer 2: Node.js ------------------------------------------------------------------------
[ -x node_modules/node/bin/node ] || { echo "image: no node_modules/node/bin/node: run scripts/setup.sh first" >&2; exit 1; }
node_bin=$(readlink -f node_modules/node/bin/node)
node_version=$("$node_bin" --version)
case $node_version in v24.*) ;; *) echo "image: node_modules/node is $node_version, not Node 24 (run scripts/setup.sh)" >&2; exit 1 ;; esac
install -D -m 0755 "$node_bin" "$work/node/usr/local/bin/node"
bash "$here/layer-tar.sh" "$work/node" "$work/node.tar"

# --- layer 3: vgw ----------------------------------------------------------------------------
app=$work/app/usr/local/lib/vgw
mkdir -p "$app" "$work/app/usr/local/bin"
git archive --format=tar "$commit" src bin package.json package-lock.json | tar -x --no-same-permissions -C "$app"
# Production dependencies exactly as locked; none needs an install script.
(cd "$app" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error >&2)
chmod -R u=rwX,go=rX "$app"
ln -s ../lib/vgw/bin/vgw.js "$work/app/usr/local/bin/vgw"
bash "$here/layer-tar.sh" "$work/app" "$work/app.tar"

# --- assemble --------------------------------------------------------------------------------
oci=$work/oci
umoci init --layout "$oci"
umoci new --image "$oci:$version"
add_layer() { # TAR WHAT
  umoci raw add-layer --image "$oci:$version" --history.created="$created" --history.created_by="$2" "$1"
}
add_layer "$base_tar" "debian $BASE_SUITE minbase: ${BASE_PACKAGES[*]}"
add_layer "$work/node.tar" "node $node_version"
add_layer "$work/app.tar" "vgw $version ($commit)"
# The Deployments the operator renders and install.yaml run `tini -- vgw ...` as 65532 with
# runAsNonRoot (which Kubernetes can check only against a numeric user).
umoci config --image "$oci:$version" --no-history \
  --created="$created" --author=vgw --architecture=amd64 --os=linux \
  --config.user=65532:65532 --config.workingdir=/home/vgw \
  --config.entrypoint=tini --config.entrypoint=-- --config.entrypoint=vgw --config.cmd=--help \
  --config.env=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
  --config.env=HOME=/home/vgw --config.env=NODE_ENV=production \
  --config.label=org.opencontainers.image.title=vgw \
  --config.label=org.opencontainers.image.version="$version" \
  --config.label=org.opencontainers.image.revision="$commit" \
  --config.label=org.opencontainers.image.created="$created" \
  --manifest.annotation=org.opencontainers.image.version="$version" \
  --manifest.annotation=org.opencontainers.image.revision="$commit" \
  --manifest.annotation=org.opencontainers.image.created="$created"
umoci gc --layout "$oci"

rm -rf "$out/oci" "$out/vgw-$version.oci.tar" "$out/vgw-$version.docker.tar"
mv "$oci" "$out/oci"
skopeo copy --quiet "oci:$out/oci:$version" "oci-archive:$out/vgw-$version.oci.tar:$image"
skopeo copy --quiet "oci:$out/oci:$version" "docker-archive:$out/vgw-$version.docker.tar:$image"

# --- report ----------------------------------------------------------------------------------
manifest_digest=$(jq -r --arg t "$version" '.manifests[] | select(.annotations["org.opencontainers.image.ref.name"] == $t) | .digest' "$out/oci/index.json")
manifest=$out/oci/blobs/sha256/${manifest_digest#sha256:}
mib() { awk -v b="$1" 'BEGIN { printf "%.1f MiB", b / 1048576 }'; }
echo "image:  $image"
echo "digest: $manifest_digest"
total=$(jq '[.config.size, .layers[].size] | add' "$manifest")
echo "size:   $(mib "$total") compressed, $(mib $(( $(stat -c %s "$base_tar") + $(stat -c %s "$work/node.tar") + $(stat -c %s "$work/app.tar") )) ) unpacked"
i=0
for what in "base (debian + varnish + hitch + stunnel + tcc)" "node $node_version" "vgw $version"; do
  case $i in 0) tar_file=$base_tar ;; 1) tar_file=$work/node.tar ;; 2) tar_file=$work/app.tar ;; esac
  size=$(jq --argjson i "$i" '.layers[$i].size' "$manifest")
  printf 'layer %d: %-30s %s compressed, %s unpacked\n' "$((i + 1))" "$what" "$(mib "$size")" "$(mib "$(stat -c %s "$tar_file")")"
  i=$((i + 1))
done
echo "archives: $out/vgw-$version.oci.tar, $out/vgw-$version.docker.tar"
echo "built in $((SECONDS - started))s" >&2
