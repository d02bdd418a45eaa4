#!/usr/bin/env bash
# Copies the monitoring assets into the Helm chart, which cannot read outside its own directory:
#   monitoring/alerts/*.yml       -> helm/controlplane/files/alerts/
#   monitoring/dashboards/*.json  -> helm/controlplane/files/dashboards/
# monitoring/ stays the one source of truth: copies of files that no longer exist are removed,
# and tests/deploy/test_chart_assets.py fails while the copies differ by one byte.
#   --check   change nothing; exit 1 and list the differences when out of sync.
set -euo pipefail
cd "$(dirname "$0")/.."

check=false
[[ "${1:-}" == "--check" ]] && check=true
status=0

sync_dir() {
  local src="$1" dst="$2" pattern="$3" f name
  mkdir -p "$dst"
  for f in "$src"/$pattern; do
    [[ -e "$f" ]] || continue
    name="$(basename "$f")"
    if ! cmp -s "$f" "$dst/$name"; then
      if $check; then echo "out of sync: $dst/$name (from $f)"; status=1; else cp "$f" "$dst/$name"; echo "copied $f"; fi
    fi
  done
  for f in "$dst"/$pattern; do
    [[ -e "$f" ]] || continue
    name="$(basename "$f")"
    if [[ ! -e "$src/$name" ]]; then
      if $check; then echo "stale: $f (no $src/$name)"; status=1; else rm "$f"; echo "removed $f"; fi
    fi
  done
}

sync_dir monitoring/alerts helm/controlplane/files/alerts '*.yml'
sync_dir monitoring/dashboards helm/controlplane/files/dashboards '*.json'
if $check && ((status)); then
  echo "run scripts/sync-chart-assets.sh and commit helm/controlplane/files" >&2
fi
exit "$status"
