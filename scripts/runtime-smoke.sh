#!/usr/bin/env bash
# What the Dockerfile's runtime stage does, without a Docker daemon: compile,
# install production dependencies only into a clean directory, start the
# compiled server with node directly, and ask it for a decision.
set -euo pipefail
cd "$(dirname "$0")/.."
node24=$(npm exec -- node -p 'process.execPath')
work=$(mktemp -d)
trap 'kill "${pid:-0}" 2>/dev/null || true; [ -n "${KEEP:-}" ] || rm -rf "$work"' EXIT

npm run -s build
cp -r package.json package-lock.json dist schema "$work/"
mkdir -p "$work/manifests/base"
cp manifests/base/podgate.yaml manifests/base/webhooks.yaml "$work/manifests/base/"
(cd "$work" && npm ci --omit=dev --ignore-scripts --no-audit --no-fund --loglevel=error)
if [ -e "$work/node_modules/typescript" ] || [ -e "$work/node_modules/tap" ]; then echo "dev dependencies in the runtime image"; exit 1; fi

cd "$work"
"$node24" dist/cli/main.js --version | grep -q '^podgate [0-9]' || { echo "podgate --version failed in the runtime layout"; exit 1; }
"$node24" dist/cli/main.js serve --offline --port 18643 --metrics-port 18644 --host 127.0.0.1 --certs-dir "$work/certs" --log-format json > "$work/log" 2>&1 &
pid=$!
for _ in $(seq 1 50); do curl -s --cacert "$work/certs/ca.crt" https://localhost:18643/healthz >/dev/null 2>&1 && break; sleep 0.2; done
answer=$(curl -s --cacert "$work/certs/ca.crt" -d @"$OLDPWD/examples/api-server-too-small.json" https://localhost:18643/validate)
echo "$answer" | grep -q '"allowed":false' || { echo "unexpected answer: $answer"; cat "$work/log"; exit 1; }
echo "$answer" | grep -q 'rule api-server-floors' || { echo "unexpected answer: $answer"; exit 1; }
kill -TERM "$pid"; wait "$pid"; status=$?
[ "$status" -eq 0 ] || { echo "exit status $status after SIGTERM"; exit 1; }
echo "runtime smoke: compiled server from production dependencies answered and stopped cleanly"

# The package as a policy repository's CI installs it: npm pack, npm install of the tarball in a
# scratch directory (dependencies from npm's cache where it has them), then the podgate command.
cd "$OLDPWD"
tarball=$(npm pack --ignore-scripts --silent --pack-destination "$work")
scratch="$work/policy-repo"
mkdir -p "$scratch"
cp examples/policy-test/resources/api-server-too-small.yaml "$scratch/"
(cd "$scratch" && npm init -y >/dev/null && npm install --prefer-offline --no-audit --no-fund --loglevel=error "$work/$tarball")
cd "$scratch"
npm exec --offline -- podgate --version | grep -q '^podgate [0-9]' || { echo "the installed podgate command did not run"; exit 1; }
npm exec --offline -- podgate check node_modules/podgate/manifests/base/podgate.yaml | grep -q 'valid' || { echo "podgate check failed from the package"; exit 1; }
set +e
npm exec --offline -- podgate review api-server-too-small.yaml > review.out 2>&1
status=$?
set -e
[ "$status" -eq 1 ] && grep -q '^DENIED' review.out || { echo "podgate review from the package: exit $status"; cat review.out; exit 1; }
# An older Node is told what podgate needs (the system Node, when the machine has one older than 24).
system_node=$(PATH=$(getconf PATH) command -v node || true)
if [ -n "$system_node" ] && [ "$("$system_node" -p 'process.versions.node.split(".")[0]')" -lt 24 ]; then
  set +e
  message=$("$system_node" node_modules/podgate/bin/podgate.js --version 2>&1)
  status=$?
  set -e
  [ "$status" -eq 1 ] && grep -q 'podgate needs Node.js 24 or newer' <<<"$message" || { echo "on $("$system_node" --version): exit $status, $message"; exit 1; }
  echo "runtime smoke: on Node $("$system_node" --version) the command says: $message"
fi
echo "runtime smoke: the packed package ($tarball) installs and its podgate command checks and reviews"
