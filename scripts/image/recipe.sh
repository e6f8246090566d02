# What the base layer is made of. The build caches the base layer under a hash of this file and
# base.sh, so changing a package or the suite here rebuilds it.
# Same suite as the machines vgw is developed and tested on (Debian 12).
BASE_SUITE=bookworm
BASE_MIRROR=${VGW_IMAGE_MIRROR:-http://deb.debian.org/debian}
BASE_SECURITY_MIRROR=${VGW_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE_SOURCES=(
  "deb $BASE_MIRROR $BASE_SUITE main"
  "deb $BASE_MIRROR $BASE_SUITE-updates main"
  "deb $BASE_SECURITY_MIRROR $BASE_SUITE-security main"
)
BASE_PACKAGES=(varnish varnish-modules varnish-selector hitch tcc tini ca-certificates)
