#!/bin/sh
# Removes what scripts/install.sh installed into PREFIX (default /usr/local) and
# the host-side state: netsetup teardown deletes every sandbox veth, the bridges,
# the iptables rules and the lease state of the installed configuration.
#   scripts/uninstall.sh [PREFIX] [--keep-config]
set -eu

die() { echo "uninstall.sh: $*" >&2; exit 1; }

PREFIX=/usr/local
KEEP=
while [ $# -gt 0 ]; do
  case "$1" in
    --keep-config) KEEP=1; shift ;;
    -h|--help) sed -n '2,5p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) PREFIX=$1; shift ;;
  esac
done
[ "$(id -u)" = 0 ] || die "run as root"
if [ "$PREFIX" = /usr ]; then ETC=/etc/nsbox; else ETC=$PREFIX/etc/nsbox; fi

status=0
if [ -x "$PREFIX/bin/netsetup" ]; then
  "$PREFIX/bin/netsetup" teardown || { echo "uninstall.sh: teardown failed; binaries kept so it can be retried" >&2; exit 1; }
fi
rm -f "$PREFIX/bin/netsetup" "$PREFIX/bin/launcher"
if [ -z "$KEEP" ]; then
  rm -f "$ETC/netsetup.conf"
  rmdir "$ETC" 2>/dev/null || true
fi
exit $status
