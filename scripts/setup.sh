#!/usr/bin/env bash
# The whole job on a fresh machine (Debian 12, Node 20 + npm, run as root):
# Debian packages, the project's own Node 24 and dependencies, the single
# executables in dist/, installed into PREFIX (default /usr/local; netsetup setuid
# root), a busybox rootfs in /tmp/rootfs, and one networked sandbox run as an
# unprivileged user to show it works.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

# Everything the build, the programs, the tests and the benchmarks run on the host
# (a minimal Debian 12 has none of them but util-linux):
packages=(
  binutils binutils-aarch64-linux-gnu   # the stub's assembler (scripts/assemble-stub.sh)
  util-linux iproute2 iptables nftables # the programs; the tests' unshare, nsenter, setpriv, flock
  libcap2-bin procps uidmap             # the tests: setcap, pgrep; newuidmap/newgidmap
  debootstrap                           # CI's pristine Debian root (scripts/ci-debian.sh)
  # The benchmark's comparisons (scripts/bench.ts); runc because crun refuses
  # cgroup v1 "hybrid" hosts with controllers in the v2 tree.
  bubblewrap hyperfine time podman slirp4netns catatonit runc iperf3
  tini zstd xz-utils dpkg-dev           # launcher --init and import; the distribution test's apt repository
  gcc libc6-dev                         # the hostile-environment test builds a real LD_PRELOAD library
  gcc-aarch64-linux-gnu                 # the supervisor for arm64 (scripts/build-supervisor.sh)
  strace                                # the tests that check netsetup waits in one blocking call, not a loop
)
if [ "$(id -u)" -eq 0 ]; then
  echo "== Debian packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${packages[@]}" >/dev/null
else
  echo "== not root: skipping Debian packages (needs ${packages[*]})"
fi

echo "== Node 24, pnpm and dependencies"
scripts/bootstrap.sh
export PATH="$root/.tools/bin:$PATH"

echo "== build"
node scripts/build.ts

rootfs=${ROOTFS:-/tmp/rootfs}
echo "== rootfs at $rootfs"
[ -x "$rootfs/bin/busybox" ] || scripts/make-rootfs.sh "$rootfs"

if [ "$(id -u)" -ne 0 ]; then
  echo "== not root: not installing; a sandbox without network:"
  dist/launcher --net none --rootfs "$rootfs" -- /bin/sh -c 'echo "inside: pid $$, uid $(id -u), hostname $(hostname)"'
  echo "done: try  dist/launcher --net none --rootfs $rootfs   (networking needs scripts/install.sh as root)"
  exit 0
fi

prefix=${PREFIX:-/usr/local}
echo "== install into $prefix (netsetup setuid root)"
scripts/install.sh "$prefix"

echo "== a networked sandbox, as the unprivileged user nobody"
demo=$(cat <<'SH'
gw=$(ip route | awk '/^default/ {print $3}')
addr=$(ip -4 -o addr show dev eth0 | awk '{print $4}')
echo "inside: pid $$, uid $(id -u), hostname $(hostname), eth0 $addr, gateway $gw"
ping -c1 -W2 "$gw" >/dev/null && echo "inside: the gateway answers ping"
SH
)
setpriv --reuid=65534 --regid=65534 --clear-groups "$prefix/bin/launcher" --rootfs "$rootfs" -- /bin/sh -c "$demo"
echo "done: try  $prefix/bin/launcher --rootfs $rootfs"
