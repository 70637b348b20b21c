#!/usr/bin/env bash
# The fresh-machine proof: runs the README's two commands (scripts/setup.sh, then
# scripts/test.sh) in a pristine Debian 12 root as a new user would, from a clone
# of this checkout under /root (mode 0700, as an admin's clone is), with only the
# host's Node 20, npm and their CA and registry settings added. Run as root:
#   [NSBOX_CI_CACHE=DIR] [NSBOX_CI_NODE=/usr/bin/node] scripts/ci-debian.sh
# The root is made once with debootstrap (--variant=minbase) from the host's Debian
# mirror and kept as a tarball in $NSBOX_CI_CACHE (default /var/cache/nsbox-ci);
# every run unpacks a fresh copy, enters it with pivot_root in a mount and pid
# namespace of its own (a chroot cannot create user namespaces: clone(CLONE_NEWUSER)
# gives EPERM there) and deletes it afterwards. Downloads (apt's .debs, npm's and
# pnpm's caches, the distribution test's debootstrap tarball) are kept in the
# cache directory between runs. The network
# namespace is the host's: the suite needs real bridges and rules, and
# /tmp/nsbox-it.lock is shared so it never runs alongside another suite here.
# Prints everything the two commands print; exits with their status.
set -euo pipefail

if [ "${1:-}" = --inside ]; then
  # pid 1 of the new pid namespace, in the new mount namespace (private
  # propagation: nothing mounted here is seen on the host).
  new=$2
  mount --bind "$new" "$new"
  mount -t proc proc "$new/proc"
  mount -t sysfs sysfs "$new/sys"
  mount --rbind /dev "$new/dev"
  mount -t tmpfs -o mode=0755 tmpfs "$new/run"
  mount -t tmpfs -o mode=1777 tmpfs "$new/tmp"
  # Locks shared with the host: one integration suite per machine, and
  # iptables-legacy's own lock.
  for lock in /tmp/nsbox-it.lock /run/xtables.lock; do
    [ -e "$lock" ] || : >"$lock"
    : >"$new$lock"
    mount --bind "$lock" "$new$lock"
  done
  for pair in apt:/var/cache/apt/archives npm:/root/.npm pnpm:/root/.local/share/pnpm/store test:/var/cache/nsbox-test; do
    mkdir -p "$NSBOX_CI_CACHE/${pair%%:*}" "$new${pair#*:}"
    mount --bind "$NSBOX_CI_CACHE/${pair%%:*}" "$new${pair#*:}"
  done
  cd "$new"
  mkdir -p .oldroot
  pivot_root . .oldroot
  umount -l /.oldroot
  rmdir /.oldroot
  cd /root/nsbox
  # setup.sh's demo makes the default network's bridge in the host's network
  # namespace; if it is not there yet, remove it (and its rules) afterwards, with
  # this root's netsetup and its state.
  had_bridge=0
  [ ! -e /sys/class/net/nsbox0 ] || had_bridge=1
  status=0
  env -i HOME=/root USER=root LOGNAME=root TERM=dumb CI=true \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    ${NSBOX_CI_ENV:-} bash -c 'scripts/setup.sh && scripts/test.sh' || status=$?
  if [ "$had_bridge" = 0 ] && [ -e /sys/class/net/nsbox0 ] && [ -x /usr/local/bin/netsetup ]; then
    /usr/local/bin/netsetup teardown >/dev/null || echo "ci-debian: could not remove the bridge nsbox0 and its rules" >&2
  fi
  exit "$status"
fi

[ "$(id -u)" -eq 0 ] || { echo "ci-debian: run as root (it makes namespaces and mounts)" >&2; exit 1; }
src=$(cd "$(dirname "$0")/.." && pwd)
export NSBOX_CI_CACHE=${NSBOX_CI_CACHE:-/var/cache/nsbox-ci}
suite=bookworm
arch=$(dpkg --print-architecture)
mkdir -p "$NSBOX_CI_CACHE"

# The machine's own Node (Debian's /usr/bin/node), not one a PATH puts first.
node=$(readlink -f "${NSBOX_CI_NODE:-/usr/bin/node}")
npm_dir=$(dirname "$node")/../lib/node_modules/npm
[ -x "$node" ] && [ -d "$npm_dir" ] || { echo "ci-debian: no node with npm at ${NSBOX_CI_NODE:-/usr/bin/node}; give its path with NSBOX_CI_NODE=" >&2; exit 1; }
echo "== ci: the host's node $("$node" --version) and npm $("$node" "$npm_dir/bin/npm-cli.js" --version)"

# The host's Debian mirror, as apt here uses it (debian.sources or sources.list).
mirror=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 ~ /debian\/?$/ {print $2; exit}')
[ -n "$mirror" ] || mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '$1 == "deb" && $3 == "'$suite'" {print $2; exit}')
mirror=${mirror:-http://deb.debian.org/debian}

tarball=$NSBOX_CI_CACHE/debian-$suite-minbase-$arch.tar.gz
if [ ! -s "$tarball" ]; then
  echo "== ci: debootstrap $suite ($arch) from $mirror into $tarball"
  if ! command -v debootstrap >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap >/dev/null
  fi
  build=$(mktemp -d /var/tmp/nsbox-ci-build.XXXXXX)
  trap 'rm -rf --one-file-system "$build"' EXIT
  debootstrap --variant=minbase --arch="$arch" "$suite" "$build/root" "$mirror" >"$build/log" 2>&1 \
    || { tail -20 "$build/log" >&2; echo "ci-debian: debootstrap failed (log above)" >&2; exit 1; }
  rm -rf "$build/root/var/cache/apt/archives/"*.deb "$build/root/var/lib/apt/lists/"*_*
  tar -C "$build/root" --numeric-owner -czf "$tarball.new" .
  mv "$tarball.new" "$tarball"
  rm -rf --one-file-system "$build"
  trap - EXIT
fi

new=$(mktemp -d /var/tmp/nsbox-ci-root.XXXXXX)
cleanup() {
  # The mounts lived in the namespace, which is gone with its last process; refuse
  # to delete through one that is somehow still there.
  if grep -q " $new[/ ]" /proc/self/mountinfo; then
    echo "ci-debian: $new is still mounted; not deleting it" >&2
  else
    rm -rf --one-file-system "$new"
  fi
}
trap cleanup EXIT
echo "== ci: a fresh copy of the $suite root in $new"
tar -C "$new" --numeric-owner -xzf "$tarball"

# What the machine adds to Debian: Node 20 and npm, their settings and CA
# certificates, apt's sources and configuration (the same mirror), DNS.
install -m 0755 "$node" "$new/usr/bin/node"
mkdir -p "$new/usr/lib/node_modules"
cp -a "$npm_dir" "$new/usr/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$new/usr/bin/npm"
[ ! -d /usr/include/node ] || { mkdir -p "$new/usr/include"; cp -a /usr/include/node "$new/usr/include/"; }
[ ! -f /root/.npmrc ] || install -m 0600 /root/.npmrc "$new/root/.npmrc"
env_pass=
for v in NODE_EXTRA_CA_CERTS SSL_CERT_FILE http_proxy https_proxy no_proxy HTTP_PROXY HTTPS_PROXY NO_PROXY; do
  val=${!v:-}
  [ -n "$val" ] || continue
  case "$val" in *[[:space:]]*) echo "ci-debian: $v has spaces; not passed on" >&2; continue ;; esac
  env_pass="$env_pass $v=$val"
  case "$v" in *CERT*) [ ! -f "$val" ] || { mkdir -p "$new$(dirname "$val")"; cp -L "$val" "$new$val"; } ;; esac
done
export NSBOX_CI_ENV=$env_pass
rm -f "$new/etc/apt/sources.list"
for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
  [ ! -f "$f" ] || cp "$f" "$new$f"
done
for f in /etc/apt/apt.conf.d/*; do
  case "$(basename "$f")" in docker-*) continue ;; esac # Docker's image trimming (deletes .debs)
  [ -e "$new$f" ] || cp "$f" "$new$f"
done
for f in /usr/share/keyrings/* /etc/apt/trusted.gpg.d/*; do
  [ ! -f "$f" ] || [ -e "$new$f" ] || cp "$f" "$new$f"
done
rm -f "$new/etc/resolv.conf"
cp -L /etc/resolv.conf "$new/etc/resolv.conf"
chmod 0700 "$new/root"

echo "== ci: clone of $src into /root/nsbox"
[ -z "$(git -C "$src" status --porcelain --untracked-files=no)" ] \
  || echo "ci-debian: note: uncommitted changes in $src are not in the clone" >&2
git clone -q --no-local "$src" "$new/root/nsbox"

start=$(date +%s)
# In the background so that a signal to this script ends the namespace at once:
# unshare (which blocks SIGTERM while it waits) is killed, --kill-child takes the
# namespace's pid 1 with it, and the kernel ends every other process in the
# namespace and drops its mounts.
unshare --mount --propagation private --pid --fork --kill-child -- "$src/scripts/ci-debian.sh" --inside "$new" &
ns=$!
trap 'kill -KILL "$ns" 2>/dev/null' INT TERM HUP
status=0
wait "$ns" || status=$?
while kill -0 "$ns" 2>/dev/null; do wait "$ns" || status=$?; done
echo "== ci: exit $status after $(( $(date +%s) - start )) s in the fresh root"
exit "$status"
