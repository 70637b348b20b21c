#!/usr/bin/env bash
# Builds a small working rootfs in DIR from Debian's busybox-static package: a
# statically linked busybox with its applets as symlinks, and the few files and
# mount points a sandbox needs. Run as any user; needs apt-get download (or a
# busybox-static .deb given with BUSYBOX_DEB=path) and dpkg-deb.
set -euo pipefail
if [ $# -ne 1 ] || [ "$1" = -h ] || [ "$1" = --help ]; then
  echo "usage: $0 DIR   (DIR is created; an existing DIR must be empty)" >&2
  exit 2
fi
dir=$1
if [ -e "$dir" ] && [ -n "$(ls -A "$dir" 2>/dev/null)" ]; then
  echo "make-rootfs: $dir exists and is not empty; give a new or empty directory" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
deb=${BUSYBOX_DEB:-}
if [ -z "$deb" ]; then
  (cd "$work" && apt-get download busybox-static >/dev/null 2>&1) || {
    echo "make-rootfs: 'apt-get download busybox-static' failed; run 'apt-get update' (as root) or set BUSYBOX_DEB=/path/to/busybox-static.deb" >&2
    exit 1
  }
  deb=$(ls "$work"/busybox-static_*.deb)
fi
dpkg-deb -x "$deb" "$work/x"
mkdir -p "$dir"
cd "$dir"
mkdir -p bin sbin usr/bin usr/sbin etc root tmp proc sys dev var/tmp var/www run home
chmod 1777 tmp var/tmp
install -m 0755 "$work/x/bin/busybox" bin/busybox
# Every applet this busybox has, as a symlink into /bin (absolute links would
# point at the host's files when looked at from outside).
for applet in $(bin/busybox --list-full); do
  case "$applet" in bin/busybox) continue ;; esac
  [ -e "$applet" ] || [ -L "$applet" ] || ln -s "$(printf '%s' "$applet" | sed 's|[^/]*/|../|g; s|[^/]*$||')bin/busybox" "$applet"
done
cat > etc/passwd <<'P'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
P
cat > etc/group <<'G'
root:x:0:
nogroup:x:65534:
G
printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' > etc/hosts
touch etc/resolv.conf etc/hostname
echo "rootfs ready: $dir ($(du -sh . | cut -f1), busybox $(bin/busybox | head -1 | awk '{print $2}'))"
