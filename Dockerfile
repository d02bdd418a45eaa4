# The control plane's container image: gunicorn serving Django, and the same image runs the
# MLflow tracking server (mlflow/server.sh), the migration hook and the Celery worker and beat in the chart.
#   docker build -t mlops-controlplane:0.1.0 .
# The chart's default image (helm/controlplane: image.repository, appVersion) is this name and
# version; tests/deploy checks the two agree. No Docker engine runs in CI here: tests/deploy/
# test_dockerfile.py checks this file's invariants statically.

# Pinned by tag (python 3.11, Debian bookworm); pin by digest too where your registry policy asks.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

# --- builder: install requirements.lock (every package pinned with its hashes; `make lock`
# writes it from requirements.txt) into a virtualenv. --require-hashes refuses anything unpinned.
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
COPY requirements.lock /tmp/requirements.lock
RUN pip install --require-hashes --no-deps -r /tmp/requirements.lock

# --- runtime: the virtualenv, the code, collected static files; runs as a non-root user.
FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="mlops-controlplane" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.description="MLOps control plane: Django governance over MLflow"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    DJANGO_STATIC_ROOT=/app/staticfiles \
    CONTROLPLANE_VAR_DIR=/tmp/controlplane
# libgomp1: the OpenMP runtime XGBoost and scikit-learn load for native inference.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 controlplane \
    && useradd --system --uid 10001 --gid 10001 --home-dir /tmp --shell /usr/sbin/nologin controlplane
COPY --from=builder /opt/venv /opt/venv
WORKDIR /app
# Code stays owned by root: the app user can read it, never change it (readOnlyRootFilesystem).
COPY . /app
# Static files are collected at build time, so pods need no writable static directory.
RUN DJANGO_SECRET_KEY=collectstatic-only python manage.py collectstatic --noinput \
    && rm -rf /tmp/controlplane
USER 10001:10001
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s \
  CMD ["python", "-c", "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4)"]
CMD ["gunicorn", "-c", "controlplane/gunicorn.conf.py", "--bind", "0.0.0.0:8000", "controlplane.wsgi:application"]
