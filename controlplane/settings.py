"""Settings for the control plane, read from the environment and failing loudly.

Every value comes from an environment variable listed in ``docs/configuration.md``; a secret may
instead come from a file named by ``<NAME>_FILE`` (Kubernetes-mounted secrets). A value that
cannot be parsed stops start-up with ``ImproperlyConfigured`` naming the variable.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

from controlplane.logs import logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

# FileAwareEnv: env("X") reads the file named by X_FILE when that is set.
env = environ.FileAwareEnv()

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def _str(name: str, default: str) -> str:
    try:
        value = env.str(name, default=default)
    except OSError as exc:
        raise ImproperlyConfigured(f"{name}_FILE: cannot read the file: {exc}") from exc
    return value.strip()


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    if raw.strip().lower() in _TRUE:
        return True
    if raw.strip().lower() in _FALSE:
        return False
    raise ImproperlyConfigured(f"{name}={raw!r} is not a boolean; use true or false")


def _int(name: str, default: int, minimum: int = 0) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def _float(name: str, default: float, minimum: float = 0.0) -> float:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r} is not a number") from None
    if value < minimum:
        raise ImproperlyConfigured(f"{name}={value} must be at least {minimum}")
    return value


def _url(name: str, default: str, parse: Any) -> dict[str, Any]:
    raw = _str(name, default)
    try:
        return parse(raw)
    except Exception as exc:  # environ raises several types for a bad URL
        raise ImproperlyConfigured(f"{name}: cannot use {raw!r}: {exc}") from exc


# --- Local .env (issue 10): `make run` writes one so `python manage.py <command>` works in the
# checkout with no extra environment. Read only when the file exists; a real environment
# variable always wins over the file. CONTROLPLANE_ENV_FILE names another file ("" reads none).
ENV_FILE = os.environ.get("CONTROLPLANE_ENV_FILE", str(BASE_DIR / ".env")).strip()
if ENV_FILE and Path(ENV_FILE).is_file():
    environ.Env.read_env(ENV_FILE, overwrite=False)

VAR_DIR = Path(_str("CONTROLPLANE_VAR_DIR", str(BASE_DIR / "var")))
VAR_DIR.mkdir(parents=True, exist_ok=True)

DEBUG = _bool("DJANGO_DEBUG", False)
SECRET_KEY = _str("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) must be set when DJANGO_DEBUG is off"
        )
    SECRET_KEY = "insecure-development-key-only-used-with-DJANGO_DEBUG"

ALLOWED_HOSTS = [
    h.strip() for h in _str("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",") if h.strip()
]
CSRF_TRUSTED_ORIGINS = [o.strip() for o in _str("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_prometheus",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",  # Swagger UI and ReDoc as static files: /api/docs/ works offline
    "registry",
    "routing",
    "monitoring",
    "experiments",
    "delivery",
]

MIDDLEWARE = [
    # /predict stops here: request id and host check only (see its docstring for why).
    "controlplane.middleware.ServingPathMiddleware",
    "django_prometheus.middleware.PrometheusBeforeMiddleware",
    "controlplane.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_prometheus.middleware.PrometheusAfterMiddleware",
]

ROOT_URLCONF = "controlplane.urls"
# The scoring routes, served by ServingPathMiddleware ahead of the rest of MIDDLEWARE.
SERVING_URLCONF = "routing.serving.urls"
WSGI_APPLICATION = "controlplane.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "controlplane" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --- Database: SQLite under var/ by default, PostgreSQL (psycopg 3) through DATABASE_URL.
_default_db = f"sqlite:///{VAR_DIR / 'controlplane.sqlite3'}"
_db = _url("DATABASE_URL", _default_db, environ.Env.db_url_config)
if "ENGINE" not in _db:
    raise ImproperlyConfigured("DATABASE_URL: not a database URL; use sqlite:///path or postgres://...")
if _db["ENGINE"] == "django.db.backends.sqlite3":
    # WAL and IMMEDIATE transactions let several gunicorn workers and the log writer share
    # one SQLite file without "database is locked" on every concurrent write.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
elif _db["ENGINE"] in ("django.db.backends.postgresql", "django_prometheus.db.backends.postgresql"):
    _db["CONN_MAX_AGE"] = _int("DATABASE_CONN_MAX_AGE", 60)
    _db["CONN_HEALTH_CHECKS"] = True
else:
    raise ImproperlyConfigured(
        f"DATABASE_URL: engine {_db['ENGINE']} is not supported; use sqlite:// or postgres://"
    )
# django-prometheus' wrappers give the django_db_* series without changing behaviour.
_db["ENGINE"] = _db["ENGINE"].replace("django.db.backends.", "django_prometheus.db.backends.")
DATABASES = {"default": _db}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Cache: the rate limiter's store. locmem is per process; production sets a shared one
# (CACHE_URL=redis://...) so limits hold across workers and replicas.
CACHES = {"default": _url("CACHE_URL", "locmemcache://", environ.Env.cache_url_config)}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- HTTPS behind a proxy (issue 10, item 11): what `manage.py check --deploy` asks for. Off by
# default because `make run` serves plain http on 127.0.0.1; the chart turns them on when TLS ends
# at its Ingress (docs/kubernetes.md). The proxy must set X-Forwarded-Proto (and strip a client's).
if _bool("DJANGO_SECURE_PROXY_SSL_HEADER", False):
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = _bool("DJANGO_SECURE_SSL_REDIRECT", False)
# Kubelet probes, Prometheus and MLflow's webhook call pods over plain http on the pod network;
# /predict never passes SecurityMiddleware (ServingPathMiddleware answers it first).
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$", r"^hooks/"]
SECURE_HSTS_SECONDS = _int("DJANGO_SECURE_HSTS_SECONDS", 0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _bool("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = _bool("DJANGO_SECURE_HSTS_PRELOAD", False)
SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = _bool("DJANGO_SECURE_COOKIES", False)

STATIC_URL = "static/"
STATIC_ROOT = Path(_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

# --- Batch scoring jobs (docs/batch-jobs.md): files in Django storage, local by default, S3 in the chart.
BATCH_STORAGE = _str("BATCH_STORAGE", "local")
if BATCH_STORAGE == "local":
    STORAGES["batch"] = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": _str("BATCH_STORAGE_DIR", str(VAR_DIR / "batch"))},
    }
elif BATCH_STORAGE == "s3":
    if not (_bucket := _str("BATCH_S3_BUCKET", "")):
        raise ImproperlyConfigured("BATCH_S3_BUCKET must name a bucket when BATCH_STORAGE=s3")
    STORAGES["batch"] = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": _bucket,
            "location": _str("BATCH_S3_PREFIX", "batch-jobs"),
            "endpoint_url": _str("BATCH_S3_ENDPOINT_URL", "") or None,
            "file_overwrite": True,
            "default_acl": None,
        },
    }  # credentials: the usual AWS_* variables or the pod's role, read by boto3
else:
    raise ImproperlyConfigured(f"BATCH_STORAGE={BATCH_STORAGE!r}: use local or s3")
BATCH_MAX_UPLOAD_BYTES = _int("BATCH_MAX_UPLOAD_BYTES", 2 * 1024**3, minimum=1)
BATCH_CHUNK_ROWS = _int("BATCH_CHUNK_ROWS", 10_000, minimum=1)
BATCH_JOB_RETENTION_DAYS = _int("BATCH_JOB_RETENTION_DAYS", 7, minimum=1)
WHITENOISE_USE_FINDERS = DEBUG

# --- MLflow
MLFLOW_TRACKING_URI = _str("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
if "://" not in MLFLOW_TRACKING_URI:
    raise ImproperlyConfigured(
        f"MLFLOW_TRACKING_URI={MLFLOW_TRACKING_URI!r} must be a URL such as http://127.0.0.1:5000"
    )
# Where people open MLflow in a browser (the admin links models and versions there); the tracking
# URI by default, which is right under `make run` but often an in-cluster name in Kubernetes.
MLFLOW_UI_URL = _str("MLFLOW_UI_URL", MLFLOW_TRACKING_URI).rstrip("/")
MLFLOW_WEBHOOK_SECRET = _str("MLFLOW_WEBHOOK_SECRET", "")
# Deliveries older or newer than this are refused (replay protection).
MLFLOW_WEBHOOK_MAX_AGE_SECONDS = _int("MLFLOW_WEBHOOK_MAX_AGE_SECONDS", 300, minimum=1)
# A dead tracking server should fail a sync in seconds, not after the client's minutes of retries.
MLFLOW_HTTP_TIMEOUT_SECONDS = _int("MLFLOW_HTTP_TIMEOUT_SECONDS", 15, minimum=1)
MLFLOW_HTTP_MAX_RETRIES = _int("MLFLOW_HTTP_MAX_RETRIES", 2)

DEFAULT_ENDPOINT = _str("DEFAULT_ENDPOINT", "demo")
# Four-eyes rule: a promotion is requested by one user and approved by another.
REQUIRE_PROMOTION_APPROVAL = _bool("REQUIRE_PROMOTION_APPROVAL", False)

# --- /predict (routing): limits, routing-table refresh, prediction log, remote backends.
PREDICT_MAX_BODY_BYTES = _int("PREDICT_MAX_BODY_BYTES", 5 * 1024 * 1024, minimum=1024)
PREDICT_MAX_ROWS = _int("PREDICT_MAX_ROWS", 10_000, minimum=1)
# Per token per second (0: unlimited); counted in CACHES["default"], so per worker under locmem.
PREDICT_RATE_LIMIT_PER_SECOND = _int("PREDICT_RATE_LIMIT_PER_SECOND", 1000)
ROUTING_REFRESH_SECONDS = _float("ROUTING_REFRESH_SECONDS", 1.0, minimum=0.05)
ROUTING_REFRESH_IN_BACKGROUND = _bool("ROUTING_REFRESH_IN_BACKGROUND", True)
# Off only to measure what metrics and the prediction log cost (`make bench` does); never in production.
TELEMETRY_ENABLED = _bool("CONTROLPLANE_TELEMETRY", True)
PREDICTION_LOG_BUFFER_SIZE = _int("PREDICTION_LOG_BUFFER_SIZE", 10_000, minimum=1)
PREDICTION_LOG_BATCH_SIZE = _int("PREDICTION_LOG_BATCH_SIZE", 500, minimum=1)
PREDICTION_LOG_FLUSH_SECONDS = _float("PREDICTION_LOG_FLUSH_SECONDS", 0.5, minimum=0.01)
PREDICTION_LOG_IN_BACKGROUND = _bool("PREDICTION_LOG_IN_BACKGROUND", True)
# Rows older than this are deleted by the routing.prune_predictions task (docs/background-work.md).
PREDICTION_LOG_RETENTION_DAYS = _int("PREDICTION_LOG_RETENTION_DAYS", 30, minimum=1)
SHADOW_QUEUE_SIZE = _int("SHADOW_QUEUE_SIZE", 1000, minimum=1)
PREDICT_REMOTE_TIMEOUT_SECONDS = _float("PREDICT_REMOTE_TIMEOUT_SECONDS", 2.0, minimum=0.01)
PREDICT_REMOTE_RETRIES = _int("PREDICT_REMOTE_RETRIES", 1)
PREDICT_REMOTE_BREAKER_FAILURES = _int("PREDICT_REMOTE_BREAKER_FAILURES", 5, minimum=1)
PREDICT_REMOTE_BREAKER_COOLDOWN_SECONDS = _float("PREDICT_REMOTE_BREAKER_COOLDOWN_SECONDS", 10.0)
READINESS_CHECKS = ["routing.serving.readiness.readiness"]

# --- Serving resilience (issue 10): worker start, local model cache, readiness, worker status.
# A worker waits at most this long at start for its models before it accepts requests (what is
# still loading joins the table later); keep it under GUNICORN_TIMEOUT.
SERVING_START_TIMEOUT_SECONDS = _float("SERVING_START_TIMEOUT_SECONDS", 30.0, minimum=1.0)
# Model versions kept on local disk (keyed by model, version and artifact digest) so a restart
# during an MLflow outage serves at once; empty: load from MLflow every time.
MODEL_CACHE_DIR = _str("MODEL_CACHE_DIR", str(VAR_DIR / "model-cache"))
# gunicorn's master loads the versions the active endpoints serve from that cache before it forks,
# so every worker starts holding them and they share the pages copy-on-write (issue 16).
SERVING_PRELOAD_MODELS = _bool("SERVING_PRELOAD_MODELS", True)
# /readyz stays ready (serving from the snapshot) while the refresher confirmed the table against
# the database within this many seconds: a shorter database outage does not take pods out.
READINESS_MAX_TABLE_AGE_SECONDS = _float("READINESS_MAX_TABLE_AGE_SECONDS", 300.0, minimum=1.0)
# Each worker rewrites its status row this often even when nothing changed; rows older than
# WORKER_STATUS_STALE_SECONDS are ignored (the worker is gone).
WORKER_HEARTBEAT_SECONDS = _float("WORKER_HEARTBEAT_SECONDS", 15.0, minimum=1.0)
WORKER_STATUS_STALE_SECONDS = _float("WORKER_STATUS_STALE_SECONDS", 60.0, minimum=2.0)

# --- Governance guards (issue 10, item 8). A change that leaves non-champions more than this
# share (percent) of live traffic is a takeover: it passes the promotion gate and, with
# REQUIRE_PROMOTION_APPROVAL, a second person's approval, like a promotion.
GOVERNANCE_MAX_CHALLENGER_SHARE = _int("GOVERNANCE_MAX_CHALLENGER_SHARE", 50)
if GOVERNANCE_MAX_CHALLENGER_SHARE > 100:
    raise ImproperlyConfigured(
        f"GOVERNANCE_MAX_CHALLENGER_SHARE={GOVERNANCE_MAX_CHALLENGER_SHARE} is a percentage: 0..100"
    )
# Hosts remote variants may send live rows to: "host" or "host:port", * and ? as wildcards,
# IPv6 in brackets. Empty (the default): no remote backend is allowed.
_HOST_PATTERN = re.compile(r"^(\[[0-9a-f:.*]+\]|[a-z0-9*?._-]+)(:(\d{1,5}|\*))?$")


def _host_patterns(name: str) -> list[str]:
    patterns = [p.strip().lower() for p in _str(name, "").split(",") if p.strip()]
    for pattern in patterns:
        port = pattern.rpartition(":")[2] if _HOST_PATTERN.match(pattern) else ""
        if not _HOST_PATTERN.match(pattern) or (port.isdigit() and not 0 < int(port) < 65536):
            raise ImproperlyConfigured(
                f"{name}: {pattern!r} is not a host or host:port pattern (e.g. scoring.ml.svc:8080)"
            )
    return patterns


REMOTE_BACKEND_ALLOWED_HOSTS = _host_patterns("REMOTE_BACKEND_ALLOWED_HOSTS")

# --- /predict against hostile input and a failing store (issue 10: items 5-7).
# Checked while parsing, before rows are copied: a body within PREDICT_MAX_BODY_BYTES can still
# hold a million one-value rows or a row of a million columns.
PREDICT_MAX_COLUMNS = _int("PREDICT_MAX_COLUMNS", 10_000, minimum=1)
PREDICT_MAX_CELLS = _int("PREDICT_MAX_CELLS", 1_000_000, minimum=1)
# The shared rate limiter's store (one Lua round trip per request): redis://... shares limits
# across workers and replicas; memory:// counts per worker. Default: CACHE_URL when it is Redis.
_cache_url = _str("CACHE_URL", "")
PREDICT_RATE_LIMIT_STORAGE_URL = _str(
    "PREDICT_RATE_LIMIT_STORAGE_URL",
    _cache_url if _cache_url.startswith(("redis://", "rediss://")) else "memory://",
)
if not PREDICT_RATE_LIMIT_STORAGE_URL.startswith(("memory://", "redis://", "rediss://")):
    raise ImproperlyConfigured(
        f"PREDICT_RATE_LIMIT_STORAGE_URL={PREDICT_RATE_LIMIT_STORAGE_URL!r}: use memory:// or redis://host:port/db"
    )
PREDICT_RATE_LIMIT_KEY_PREFIX = _str("PREDICT_RATE_LIMIT_KEY_PREFIX", "controlplane-rl")
# A store slower than this fails open for the request; after a failure it is not asked again for
# PREDICT_RATE_LIMIT_RETRY_SECONDS, so an outage costs one timeout per worker per pause, not per request.
PREDICT_RATE_LIMIT_TIMEOUT_SECONDS = _float("PREDICT_RATE_LIMIT_TIMEOUT_SECONDS", 0.1, minimum=0.001)
PREDICT_RATE_LIMIT_RETRY_SECONDS = _float("PREDICT_RATE_LIMIT_RETRY_SECONDS", 1.0)
# The prediction log's queue per worker is bounded in bytes too: one entry can hold a 5 MB body.
PREDICTION_LOG_BUFFER_BYTES = _int("PREDICTION_LOG_BUFFER_BYTES", 64 * 1024 * 1024, minimum=1024)
# A batch the database refuses (locked, down) goes back to the queue; the writer waits this long,
# doubling per failure up to the maximum, before it tries again.
PREDICTION_LOG_RETRY_SECONDS = _float("PREDICTION_LOG_RETRY_SECONDS", 0.5, minimum=0.01)
PREDICTION_LOG_RETRY_MAX_SECONDS = _float("PREDICTION_LOG_RETRY_MAX_SECONDS", 30.0, minimum=0.01)

# --- Feedback and experiments (issue 12): see docs/experiments.md.
FEEDBACK_MAX_ITEMS = _int("FEEDBACK_MAX_ITEMS", 1000, minimum=1)
FEEDBACK_MAX_BODY_BYTES = _int("FEEDBACK_MAX_BODY_BYTES", 1024 * 1024, minimum=1024)
# An outcome sent for a unit key goes to the variant that last answered that key within this
# window; it needs the prediction log, so it cannot exceed PREDICTION_LOG_RETENTION_DAYS.
FEEDBACK_ATTRIBUTION_WINDOW_SECONDS = _int("FEEDBACK_ATTRIBUTION_WINDOW_SECONDS", 7 * 86_400, minimum=1)
if FEEDBACK_ATTRIBUTION_WINDOW_SECONDS > PREDICTION_LOG_RETENTION_DAYS * 86_400:
    raise ImproperlyConfigured(
        f"FEEDBACK_ATTRIBUTION_WINDOW_SECONDS={FEEDBACK_ATTRIBUTION_WINDOW_SECONDS} exceeds the prediction log's "
        f"retention (PREDICTION_LOG_RETENTION_DAYS={PREDICTION_LOG_RETENTION_DAYS}): outcomes would find no prediction"
    )
FEEDBACK_BUFFER_SIZE = _int("FEEDBACK_BUFFER_SIZE", 50_000, minimum=1)
FEEDBACK_BATCH_SIZE = _int("FEEDBACK_BATCH_SIZE", 1000, minimum=1)
FEEDBACK_FLUSH_SECONDS = _float("FEEDBACK_FLUSH_SECONDS", 0.5, minimum=0.01)
FEEDBACK_WRITE_IN_BACKGROUND = _bool("FEEDBACK_WRITE_IN_BACKGROUND", True)
# Per-variant quality is computed over feedback received within this many days.
QUALITY_WINDOW_DAYS = _int("QUALITY_WINDOW_DAYS", 7, minimum=1)

PROMETHEUS_MULTIPROC_DIR = _str("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} is not an existing directory"
    )
PROMETHEUS_EXPORT_MIGRATIONS = False

# --- Background work (Celery): see docs/background-work.md. One block, read by controlplane/celery.py
# through the CELERY_ namespace. Production and CI use Redis; `make run` an embedded filesystem broker.
CELERY_BROKER_URL = _str("CELERY_BROKER_URL", "filesystem://")
_broker_scheme = CELERY_BROKER_URL.partition("://")[0]
if _broker_scheme not in ("redis", "rediss", "filesystem"):
    raise ImproperlyConfigured(
        f"CELERY_BROKER_URL={CELERY_BROKER_URL!r}: use redis://host:6379/0 (production) or filesystem://"
    )
# The hard limit kills a task; the soft one raises inside it first so it can stop cleanly.
CELERY_TASK_TIME_LIMIT = _int("CELERY_TASK_TIME_LIMIT_SECONDS", 1800, minimum=2)
CELERY_TASK_SOFT_TIME_LIMIT = max(1, CELERY_TASK_TIME_LIMIT - max(1, CELERY_TASK_TIME_LIMIT // 10))
# A message taken by a worker that died comes back after this long; it must outlast the longest
# task, or a task still running would be delivered a second time.
CELERY_VISIBILITY_TIMEOUT_SECONDS = _int("CELERY_VISIBILITY_TIMEOUT_SECONDS", 3600, minimum=3)
if CELERY_VISIBILITY_TIMEOUT_SECONDS <= CELERY_TASK_TIME_LIMIT:
    raise ImproperlyConfigured(
        f"CELERY_VISIBILITY_TIMEOUT_SECONDS={CELERY_VISIBILITY_TIMEOUT_SECONDS} must exceed "
        f"CELERY_TASK_TIME_LIMIT_SECONDS={CELERY_TASK_TIME_LIMIT}"
    )
if _broker_scheme == "filesystem":
    _broker_dir = VAR_DIR / "celery"
    for _sub in ("queue", "control"):
        (_broker_dir / _sub).mkdir(parents=True, exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, Any] = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "control_folder": str(_broker_dir / "control"),
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "visibility_timeout": CELERY_VISIBILITY_TIMEOUT_SECONDS,
        # Sweep for messages of dead workers often enough to honour the timeout above.
        "unacked_restore_interval": max(1, min(10, CELERY_VISIBILITY_TIMEOUT_SECONDS // 4)),
        "unacked_restore_throttle": 1,
        # Several instances (or test sessions) can share one Redis without seeing each other's keys.
        "global_keyprefix": _str("CELERY_BROKER_KEY_PREFIX", ""),
        "socket_connect_timeout": 3,
        "socket_timeout": 10,
    }
CELERY_TASK_DEFAULT_QUEUE = _str("CELERY_QUEUE", "controlplane")
# A task is acknowledged only when it has finished, and a worker that dies gives it back.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_WORKER_MAX_TASKS_PER_CHILD = 200
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# No result backend: the state that matters (mirror, drift, job locks) is in our database.
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULE_FILENAME = _str("CELERY_BEAT_SCHEDULE_FILENAME", str(VAR_DIR / "celerybeat-schedule"))
# Periodic jobs: beat sends them; each takes a database lease, so a second beat or a duplicate
# delivery within half a period does nothing. Routing's jobs join this table after the split.
SCHEDULE_SECONDS = {
    "registry.sync_registry": _int("SCHEDULE_SYNC_REGISTRY_SECONDS", 300, minimum=10),
    "monitoring.compute_drift": _int("SCHEDULE_COMPUTE_DRIFT_SECONDS", 900, minimum=10),
    "routing.prune_predictions": _int("SCHEDULE_PRUNE_PREDICTIONS_SECONDS", 86_400, minimum=10),
    "routing.reconcile_aliases": _int("SCHEDULE_RECONCILE_ALIASES_SECONDS", 60, minimum=10),
    "routing.prune_batch_jobs": _int("SCHEDULE_PRUNE_BATCH_JOBS_SECONDS", 3600, minimum=10),
    "experiments.compute_quality": _int("SCHEDULE_COMPUTE_QUALITY_SECONDS", 300, minimum=10),
    "experiments.analyze_experiments": _int("SCHEDULE_ANALYZE_EXPERIMENTS_SECONDS", 300, minimum=10),
    "monitoring.publish_production_facts": _int("SCHEDULE_PUBLISH_PRODUCTION_FACTS_SECONDS", 900, minimum=10),
}
# --- Progressive delivery (issue 14): the rollout controller's tick, and Prometheus for PromQL checks.
# A plan is evaluated at most once per half tick, however many controllers run (delivery.controller).
ROLLOUT_TICK_SECONDS = _float("ROLLOUT_TICK_SECONDS", 30.0, minimum=0.5)
SCHEDULE_SECONDS["delivery.rollout_controller"] = ROLLOUT_TICK_SECONDS
ROLLOUT_PROMETHEUS_URL = _str("ROLLOUT_PROMETHEUS_URL", "")
if ROLLOUT_PROMETHEUS_URL and not ROLLOUT_PROMETHEUS_URL.startswith(("http://", "https://")):
    raise ImproperlyConfigured(f"ROLLOUT_PROMETHEUS_URL={ROLLOUT_PROMETHEUS_URL!r} must be an http(s) URL")
ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS = _float("ROLLOUT_PROMETHEUS_TIMEOUT_SECONDS", 5.0, minimum=0.1)
CELERY_BEAT_SCHEDULE = {
    name: {"task": name, "schedule": float(seconds)} for name, seconds in SCHEDULE_SECONDS.items()
}
# Workers in their own pods serve their task metrics on this port (0: off; under `make run` they
# write into PROMETHEUS_MULTIPROC_DIR and the web /metrics merges them).
CELERY_WORKER_METRICS_PORT = _int("CELERY_WORKER_METRICS_PORT", 0)

# --- Control API
REST_FRAMEWORK = {
    # Token first: DRF answers a missing login with the first class's challenge, so anonymous
    # callers get 401 + WWW-Authenticate: Token instead of a 403 (session auth has no challenge).
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # limit/offset checked against the bounds the schema states (issue 10: no 500 from ?offset=huge).
    "DEFAULT_PAGINATION_CLASS": "routing.governance.api.pagination.BoundedLimitOffsetPagination",
    "PAGE_SIZE": 100,
    # DRF's own 401/403/404/405/429 and validation answers in the contract's {"error": {...}} body.
    "EXCEPTION_HANDLER": "routing.governance.api.exceptions.api_exception_handler",
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MLOps control plane API",
    "DESCRIPTION": "Endpoints, variants, promotion, rollback and audit for CI/CD pipelines.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The scoring routes (/predict) are plain Django views: this hook documents them (issue 10).
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "routing.serving.openapi.add_scoring_paths",
        "routing.governance.api.openapi.add_error_responses",
    ],
    # Swagger UI (/api/docs/) and ReDoc (/api/redoc/) load their JavaScript from our static files.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

LOG_LEVEL = _str("LOG_LEVEL", "INFO").upper()
# json: one JSON object per line (the chart); text: for people (`make run`). See controlplane/logs.py.
LOG_FORMAT = _str("LOG_FORMAT", "text").lower()
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be json or text")
LOGGING = logging_config(LOG_FORMAT, LOG_LEVEL)
