#!/usr/bin/env bash
# The test suite: type check, unit tests (no root needed), then the integration
# tests against the real kernel (as root; they run the launcher as an
# unprivileged user). Run scripts/setup.sh once first.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
export PATH="$root/.tools/bin:$PATH"
if ! command -v node >/dev/null || [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 24 ]; then
  echo "test: the project's Node 24 is missing: run scripts/setup.sh first" >&2
  exit 1
fi

log=$(mktemp)
trap 'rm -f "$log"' EXIT
status=0

echo "== type check"
node_modules/.bin/tsc -p tsconfig.json || status=1

echo "== unit tests"
node_modules/.bin/ava test/unit 2>&1 | tee -a "$log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1

if [ "$(id -u)" -eq 0 ]; then
  echo "== integration tests"
  # One suite at a time on a machine: the tests' bridges, subnets and rules have fixed names.
  exec 9>/tmp/nsbox-it.lock
  flock 9
  [ -x dist/launcher ] || node scripts/build.ts
  node_modules/.bin/ava test/integration 2>&1 | tee -a "$log"
  [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
else
  echo "== integration tests skipped: they must run as root" | tee -a "$log"
  status=1
fi

# Counted from ava's line per test (its summary gives no pass count once something
# fails): a passed test is "✔ title" ("✔ [expected fail]" is not a pass), a failed
# test or hook "✘ [fail]: title"; any other "✘" line (a test file that crashed or
# timed out) counts as one failure too.
passed=$(grep -E '^\s*✔ ' "$log" | grep -cvF '✔ [expected fail]')
failed=$(grep -cE '^\s*✘ ' "$log")
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1
echo "tests: $passed passed, $failed failed"
exit "$status"
