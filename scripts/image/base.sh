#!/usr/bin/env bash
# Layer 1 of the image: a minimal Debian root filesystem with the data plane (varnishd 7.1 and
# its tools, varnish-modules, varnish-selector, hitch for client TLS, stunnel for backend TLS),
# tcc as varnishd's C compiler, tini as PID 1, CA certificates and the unprivileged user the pods
# run as. No gcc, perl or systemd: the dependencies that would pull them in are dropped below.
#
#   scripts/image/base.sh OUT_TAR
#
# Needs root (mmdebstrap in root mode). SOURCE_DATE_EPOCH must be set: every generated file is
# dated at most then, so the same packages give the same tar.
set -euo pipefail
umask 022
out=$1
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set}"
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=scripts/image/recipe.sh
source "$here/recipe.sh"

work=$(mktemp -d "${TMPDIR:-/tmp}/vgw-base.XXXXXX")
trap 'rm -rf "$work"' EXIT
rootfs=$work/rootfs

# Runs inside the finished tree, before mmdebstrap's own cleanup.
customize=$(cat <<'HOOK'
set -eu
root=$1
# Debian's varnish depends on gcc because VCL is compiled to C; vgw compiles with tcc instead
# (cc_command, src/varnish/cc.ts). Dropping that one dependency from the package database lets
# apt remove gcc, cpp, binutils and whatever only they pulled in, while dpkg stays consistent.
sed -i '/^Package: varnish$/,/^$/ s/^\(Depends: .*\), gcc,/\1,/' "$root/var/lib/dpkg/status"
grep -A20 '^Package: varnish$' "$root/var/lib/dpkg/status" | grep -q '^Depends: .*\bgcc\b' && { echo "base: varnish still depends on gcc" >&2; exit 1; }
# stunnel4 depends on perl only for its stunnel3 wrapper script (kept out by the path-exclude
# below); the stunnel binary is C. Dropped the same way, so apt removes perl and libperl. debconf
# Suggests perl, and autoremove keeps what an installed package suggests unless told not to.
sed -i '/^Package: stunnel4$/,/^$/ s/^\(Depends: .*\), perl:any,/\1,/' "$root/var/lib/dpkg/status"
sed -n '/^Package: stunnel4$/,/^$/p' "$root/var/lib/dpkg/status" | grep -q '^Depends: .*\bperl\b' && { echo "base: stunnel4 still depends on perl" >&2; exit 1; }
chroot "$root" apt-get autoremove --purge -y -q -o APT::AutoRemove::SuggestsImportant=false
for compiler in gcc cpp x86_64-linux-gnu-gcc-12 as ld; do
  if chroot "$root" sh -c "command -v $compiler" >/dev/null; then echo "base: $compiler is still installed" >&2; exit 1; fi
done
# perl-base (/usr/bin/perl) is Essential and stays; the perl package and systemd must not be there.
for package in perl libperl5.36 systemd; do
  if chroot "$root" dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q ' installed$'; then echo "base: $package is installed" >&2; exit 1; fi
done
for command in stunnel3 systemctl; do
  if chroot "$root" sh -c "command -v $command" >/dev/null; then echo "base: $command is still installed" >&2; exit 1; fi
done
chroot "$root" sh -c 'command -v stunnel' >/dev/null || { echo "base: no stunnel" >&2; exit 1; }
# The unprivileged user of every container (the Deployments set runAsNonRoot; Kubernetes checks
# it against this numeric uid). /var/lib/vgw is where the pods mount their work emptyDir.
chroot "$root" groupadd --gid 65532 vgw
chroot "$root" useradd --uid 65532 --gid 65532 --home-dir /home/vgw --create-home --shell /usr/sbin/nologin --comment vgw vgw
install -d -m 0755 -o 65532 -g 65532 "$root/var/lib/vgw"
# varnish's postinst generates a random admin secret and a service unit's state; vgw makes its
# own secret per varnishd, and a secret shared by every copy of the image is none.
rm -f "$root/etc/varnish/secret"
# Caches, logs and package lists: not needed at run time, and they differ from build to build.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/* "$root"/var/cache/debconf/*-old \
  "$root"/var/lib/dpkg/*-old "$root"/var/cache/ldconfig/aux-cache "$root"/var/log/apt/eipp.log.xz
find "$root/var/log" -type f -delete
find "$root/tmp" "$root/var/tmp" -mindepth 1 -delete
: > "$root/etc/machine-id"
HOOK
)

# merged-usr hook: /bin, /lib and /sbin as symlinks into /usr from the start, with the small
# usr-is-merged marker instead of the usrmerge converter (which would pull in perl).
mmdebstrap --mode=root --variant=minbase --format=directory \
  --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
  --aptopt='APT::Install-Recommends "false"' \
  --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
  --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/lintian/*' \
  --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
  --dpkgopt='path-exclude=/usr/bin/stunnel3' \
  --include="$(IFS=,; echo "${BASE_PACKAGES[*]}")" \
  --customize-hook="$customize" \
  "$BASE_SUITE" "$rootfs" "${BASE_SOURCES[@]}"

# Device nodes come from the container runtime, not from the image.
find "$rootfs/dev" -mindepth 1 -delete
"$here/layer-tar.sh" "$rootfs" "$out"
