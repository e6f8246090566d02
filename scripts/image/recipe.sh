# What the base layer is made of: the data plane (varnish and its tools, hitch terminating client
# TLS, stunnel originating backend TLS), tcc, tini and CA certificates. The build caches the base
# layer under a hash of this file and base.sh, so changing a package or the suite here rebuilds it.
# Same suite as the machines vgw is developed and tested on (Debian 12).
BASE_SUITE=bookworm
BASE_MIRROR=${VGW_IMAGE_MIRROR:-http://deb.debian.org/debian}
BASE_SECURITY_MIRROR=${VGW_IMAGE_SECURITY_MIRROR:-http://deb.debian.org/debian-security}
BASE_SOURCES=(
  "deb $BASE_MIRROR $BASE_SUITE main"
  "deb $BASE_MIRROR $BASE_SUITE-updates main"
  "deb $BASE_SECURITY_MIRROR $BASE_SUITE-security main"
)
# stunnel4 needs systemd-sysusers at install time (its postinst creates its system user with it):
# naming the standalone one keeps apt from choosing systemd, the first alternative.
BASE_PACKAGES=(varnish varnish-modules varnish-selector hitch stunnel4 systemd-standalone-sysusers tcc tini ca-certificates)
