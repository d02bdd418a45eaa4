"""Settings for the control plane, read from the environment and failing loudly.

Every value comes from an environment variable named in ``../shared/CONTRACT.md``; a secret may
instead come from a file named by ``<NAME>_FILE`` (Kubernetes-mounted secrets). A value that
cannot be parsed stops start-up with ``ImproperlyConfigured`` naming the variable.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import environ
from django.core.exceptions import ImproperlyConfigured

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
    "registry",
    "routing",
    "monitoring",
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
SERVING_URLCONF = "routing.urls_predict"
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

STATIC_URL = "static/"
STATIC_ROOT = Path(_str("DJANGO_STATIC_ROOT", str(VAR_DIR / "static")))
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- MLflow
MLFLOW_TRACKING_URI = _str("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
if "://" not in MLFLOW_TRACKING_URI:
    raise ImproperlyConfigured(
        f"MLFLOW_TRACKING_URI={MLFLOW_TRACKING_URI!r} must be a URL such as http://127.0.0.1:5000"
    )
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
SHADOW_QUEUE_SIZE = _int("SHADOW_QUEUE_SIZE", 1000, minimum=1)
PREDICT_REMOTE_TIMEOUT_SECONDS = _float("PREDICT_REMOTE_TIMEOUT_SECONDS", 2.0, minimum=0.01)
PREDICT_REMOTE_RETRIES = _int("PREDICT_REMOTE_RETRIES", 1)
PREDICT_REMOTE_BREAKER_FAILURES = _int("PREDICT_REMOTE_BREAKER_FAILURES", 5, minimum=1)
PREDICT_REMOTE_BREAKER_COOLDOWN_SECONDS = _float("PREDICT_REMOTE_BREAKER_COOLDOWN_SECONDS", 10.0)
READINESS_CHECKS = [*globals().get("READINESS_CHECKS", []), "routing.table.readiness"]

PROMETHEUS_MULTIPROC_DIR = _str("PROMETHEUS_MULTIPROC_DIR", "")
if PROMETHEUS_MULTIPROC_DIR and not Path(PROMETHEUS_MULTIPROC_DIR).is_dir():
    raise ImproperlyConfigured(
        f"PROMETHEUS_MULTIPROC_DIR={PROMETHEUS_MULTIPROC_DIR!r} is not an existing directory"
    )
PROMETHEUS_EXPORT_MIGRATIONS = False

# --- Control API
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
        "rest_framework.authentication.TokenAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 100,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "MLOps control plane API",
    "DESCRIPTION": "Endpoints, variants, promotion, rollback and audit for CI/CD pipelines.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
}

LOG_LEVEL = _str("LOG_LEVEL", "INFO").upper()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"django": {"level": "INFO" if LOG_LEVEL == "DEBUG" else LOG_LEVEL}},
}
