#!/usr/bin/env bash
# Launch the MLflow tracking server that the control plane governs.
#
# Used by `make run` (SQLite and artifacts under var/mlflow), by the test suite (a temporary
# store on a free port) and by the container image (PostgreSQL and S3 via the variables below).
#
#   MLFLOW_BACKEND_STORE_URI      default sqlite:///<repo>/var/mlflow/mlflow.db
#   MLFLOW_ARTIFACTS_DESTINATION  default <repo>/var/mlflow/artifacts (s3://bucket/prefix in production)
#   MLFLOW_HOST / MLFLOW_PORT     default 127.0.0.1 / 5000
#   MLFLOW_WORKERS                default 1
#   MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY  Fernet key; without it stored webhook secrets become
#                                 unreadable after a restart, so one is generated once into
#                                 MLFLOW_STATE_DIR and reused.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
state="${MLFLOW_STATE_DIR:-$repo/var/mlflow}"
python="${PYTHON:-python3}"
mkdir -p "$state"

backend="${MLFLOW_BACKEND_STORE_URI:-sqlite:///$state/mlflow.db}"
artifacts="${MLFLOW_ARTIFACTS_DESTINATION:-$state/artifacts}"

# Job execution would start job-runner consumers: ~2.7 GB RSS instead of ~0.55 GB.
export MLFLOW_SERVER_ENABLE_JOB_EXECUTION="${MLFLOW_SERVER_ENABLE_JOB_EXECUTION:-false}"
# Webhooks must reach the control plane on plain http at a private/loopback address.
export MLFLOW_WEBHOOK_ALLOWED_SCHEMES="${MLFLOW_WEBHOOK_ALLOWED_SCHEMES:-http,https}"
export MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS="${MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS:-true}"
# Subscriptions are cached; 60 s by default would delay a new webhook by up to a minute.
export MLFLOW_WEBHOOK_CACHE_TTL="${MLFLOW_WEBHOOK_CACHE_TTL:-5}"
if [[ -z "${MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY:-}" ]]; then
  keyfile="$state/webhook-encryption.key"
  if [[ ! -s "$keyfile" ]]; then
    (umask 077 && "$python" -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())' >"$keyfile")
  fi
  MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY="$(cat "$keyfile")"
  export MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY
fi
[[ "$artifacts" == *://* ]] || mkdir -p "$artifacts"

exec "$python" -m mlflow server \
  --backend-store-uri "$backend" \
  --artifacts-destination "$artifacts" \
  --host "${MLFLOW_HOST:-127.0.0.1}" \
  --port "${MLFLOW_PORT:-5000}" \
  --workers "${MLFLOW_WORKERS:-1}" \
  "$@"
