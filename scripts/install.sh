#!/bin/sh
# Installs nsbox into PREFIX (default /usr/local), as root:
#   PREFIX/bin/launcher           root:root 0755
#   PREFIX/bin/netsetup           root:root 4755 (setuid root)
#   PREFIX/etc/nsbox/netsetup.conf root:root 0644 (the default, unless one exists;
#                                 or the file given with --config)
# netsetup at PREFIX/bin/netsetup reads PREFIX/etc/nsbox/netsetup.conf and nothing
# else (for PREFIX=/usr: /etc/nsbox/netsetup.conf); without it, or moved or linked
# elsewhere, it refuses to run. Never hard-link the installed binary.
# Every directory on those paths must be root-owned and not group/other-writable;
# the last step runs `netsetup check`, which refuses otherwise and says why.
#   scripts/install.sh [PREFIX] [--config FILE] [--dist DIR]
set -eu

die() { echo "install.sh: $*" >&2; exit 1; }

PREFIX=/usr/local
CONFIG=
DIST=$(cd "$(dirname "$0")/.." && pwd)/dist
while [ $# -gt 0 ]; do
  case "$1" in
    --config) [ $# -ge 2 ] || die "--config needs a file"; CONFIG=$2; shift 2 ;;
    --dist) [ $# -ge 2 ] || die "--dist needs a directory"; DIST=$2; shift 2 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    -*) die "unknown option $1" ;;
    *) PREFIX=$1; shift ;;
  esac
done

[ "$(id -u)" = 0 ] || die "run as root (the helper must be installed setuid root)"
case "$PREFIX" in /*) ;; *) die "PREFIX must be an absolute path: $PREFIX" ;; esac
[ -x "$DIST/netsetup" ] || die "$DIST/netsetup not found: build first (node scripts/build.ts)"

if [ "$PREFIX" = /usr ]; then ETC=/etc/nsbox; else ETC=$PREFIX/etc/nsbox; fi

# Create missing directories root-owned; existing ones are left as they are (and
# `netsetup check` below refuses them if they are not root's and safe).
for d in "$PREFIX" "$PREFIX/bin" "$(dirname "$ETC")" "$ETC"; do
  [ -d "$d" ] || install -d -o root -g root -m 0755 "$d"
done
# Copy to a temporary name and rename, so a running copy is never rewritten.
install -o root -g root -m 0755 "$DIST/netsetup" "$PREFIX/bin/.netsetup.new"
chmod 4755 "$PREFIX/bin/.netsetup.new"
mv -f "$PREFIX/bin/.netsetup.new" "$PREFIX/bin/netsetup"
if [ -x "$DIST/launcher" ]; then
  install -o root -g root -m 0755 "$DIST/launcher" "$PREFIX/bin/.launcher.new"
  mv -f "$PREFIX/bin/.launcher.new" "$PREFIX/bin/launcher"
else
  echo "install.sh: note: $DIST/launcher not built, installing netsetup only" >&2
fi

if [ -n "$CONFIG" ]; then
  install -o root -g root -m 0644 "$CONFIG" "$ETC/netsetup.conf"
elif [ ! -e "$ETC/netsetup.conf" ]; then
  "$PREFIX/bin/netsetup" default-config > "$ETC/.netsetup.conf.new"
  chown root:root "$ETC/.netsetup.conf.new"
  chmod 0644 "$ETC/.netsetup.conf.new"
  mv -f "$ETC/.netsetup.conf.new" "$ETC/netsetup.conf"
fi

"$PREFIX/bin/netsetup" check
