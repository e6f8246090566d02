#!/usr/bin/env bash
# Packs a directory as an image layer, the same bytes for the same tree: entries sorted by name,
# numeric owners, no access/change times, modification times clamped to SOURCE_DATE_EPOCH.
#
#   scripts/image/layer-tar.sh DIR OUT_TAR
set -euo pipefail
: "${SOURCE_DATE_EPOCH:?SOURCE_DATE_EPOCH must be set}"
tar --create --file "$2" --directory "$1" \
  --sort=name --format=posix --numeric-owner \
  --pax-option=exthdr.name=%d/PaxHeaders/%f,delete=atime,delete=ctime \
  --mtime="@$SOURCE_DATE_EPOCH" --clamp-mtime \
  .
