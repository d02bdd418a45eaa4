"""The Helm chart, linted and rendered by a real helm, and its manifests checked.

Three value sets: the defaults (bundled MLflow and Redis, HPAs on), ``ci/external-mlflow-values.yaml``
(external MLflow and Redis, Ingress, existing Secret, shared cache) and
``ci/bundled-mlflow-s3-values.yaml`` (HPAs off, bundled MLflow on PostgreSQL with S3-compatible
artifacts, Redis without a volume, secrets from values).
"""

from __future__ import annotations

import base64
import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from tests.conftest import require_tool
from tests.deploy.chart import (
    CHART,
    FULLNAME,
    VALUE_SETS,
    Manifests,
    container,
    control_plane_workloads,
    env_of,
    helm,
    pod_spec,
    render,
    run_helm,
    template_args,
)
from tests.mlflow_server import REPO

pytestmark = pytest.mark.single_pass("postgresql")

MLFLOW = f"{FULLNAME}-mlflow"
WEB = f"{FULLNAME}-web"
SECRET_DIR = "/run/secrets/controlplane"


def test_the_value_sets_ci_renders_are_at_least_three() -> None:
    assert {"default", "external-mlflow", "bundled-mlflow-s3"} <= set(VALUE_SETS)


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_it_lints_strictly_with_each_value_set(value_set: str) -> None:
    args = ["lint", "--strict", str(CHART)]
    if VALUE_SETS[value_set] is not None:
        args += ["-f", str(VALUE_SETS[value_set])]
    result = run_helm(*args)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 chart(s) failed" in result.stdout


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_control_plane_pod_reads_its_secrets_from_files_named_by_NAME_FILE(value_set: str) -> None:
    manifests = render(value_set)
    for workload in control_plane_workloads(manifests):
        env = env_of(workload)
        for name in ("DJANGO_SECRET_KEY", "DATABASE_URL", "MLFLOW_WEBHOOK_SECRET"):
            assert env[f"{name}_FILE"] == f"{SECRET_DIR}/{name}", workload["metadata"]["name"]
            assert name not in env, f"{name} must not be passed as a plain variable"
        mounts = {m["name"]: m for m in container(workload)["volumeMounts"]}
        assert mounts["secrets"]["mountPath"] == SECRET_DIR and mounts["secrets"]["readOnly"] is True
        volumes = {v["name"]: v for v in pod_spec(workload)["volumes"]}
        keys = {item["key"] for item in volumes["secrets"]["secret"]["items"]}
        assert {n.removesuffix("_FILE") for n in env if n.endswith("_FILE")} == keys


def test_the_chart_creates_its_secret_before_the_migration_hook_and_keeps_generated_values() -> None:
    secret = render("default").get("Secret", f"{FULLNAME}-secrets")
    annotations = secret["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert int(annotations["helm.sh/hook-weight"]) < 0
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["DATABASE_URL"].startswith("postgres://")
    assert len(data["DJANGO_SECRET_KEY"]) >= 50 and len(data["MLFLOW_WEBHOOK_SECRET"]) >= 32


def test_given_secret_values_are_stored_in_the_chart_secret() -> None:
    secret = render("bundled-mlflow-s3").get("Secret", f"{FULLNAME}-secrets")
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["DATABASE_URL"] == "postgres://controlplane:s3cret@pg.databases.svc:5432/controlplane"
    assert data["MLFLOW_WEBHOOK_SECRET"] == "webhook-secret-for-the-template-test"


def test_an_existing_secret_is_mounted_and_the_chart_creates_none() -> None:
    manifests = render("external-mlflow")
    assert not manifests.has("Secret", f"{FULLNAME}-secrets")
    web = manifests.get("Deployment", WEB)
    volumes = {v["name"]: v for v in pod_spec(web)["volumes"]}
    assert volumes["secrets"]["secret"]["secretName"] == "controlplane-prod-secrets"
    # sharedCache: the Redis URL for rate limits comes from the same Secret.
    assert env_of(web)["CACHE_URL_FILE"] == f"{SECRET_DIR}/CACHE_URL"
    assert "CACHE_URL_FILE" not in env_of(render("default").get("Deployment", WEB))


def test_the_web_pods_run_gunicorn_with_the_probes_on_healthz_and_readyz() -> None:
    web = container(render("default").get("Deployment", WEB))
    command = web["command"]
    assert command[:3] == ["gunicorn", "-c", "controlplane/gunicorn.conf.py"]
    assert command[-1] == "controlplane.wsgi:application"
    assert "migrate" not in " ".join(command), "web pods must never migrate"
    assert web["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert web["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert web["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert web["resources"]["requests"]["cpu"] and web["resources"]["limits"]["memory"]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_control_plane_pod_logs_json_lines(value_set: str) -> None:
    for workload in control_plane_workloads(render(value_set)):
        assert env_of(workload)["LOG_FORMAT"] == "json", workload["metadata"]["name"]


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_django_accepts_the_pod_ip_that_probes_and_prometheus_send_as_host(value_set: str) -> None:
    web = render(value_set).get("Deployment", WEB)
    names = [e["name"] for e in container(web)["env"]]
    env = env_of(web)
    assert env["POD_IP"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    # Kubernetes expands $(POD_IP) only from variables defined earlier in the list.
    assert names.index("POD_IP") < names.index("DJANGO_ALLOWED_HOSTS")
    assert "$(POD_IP)" in env["DJANGO_ALLOWED_HOSTS"].split(",")


def test_prometheus_multiprocess_files_live_in_a_memory_backed_volume() -> None:
    web = render("default").get("Deployment", WEB)
    directory = env_of(web)["PROMETHEUS_MULTIPROC_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container(web)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(web)["volumes"]}
    # gunicorn.conf.py removes and recreates the directory at start: it must not be a mount point.
    assert "shutil.rmtree" in (REPO / "controlplane" / "gunicorn.conf.py").read_text()
    parent = str(Path(directory).parent)
    assert directory not in mounts
    assert volumes[mounts[parent]]["emptyDir"]["medium"] == "Memory"


def test_the_web_pods_keep_their_model_cache_on_a_volume_of_its_own() -> None:
    # Issue 10: a worker restarted while MLflow is down loads from MODEL_CACHE_DIR at once.
    web = render("default").get("Deployment", WEB)
    directory = env_of(web)["MODEL_CACHE_DIR"]
    mounts = {m["mountPath"]: m["name"] for m in container(web)["volumeMounts"]}
    volume = {v["name"]: v for v in pod_spec(web)["volumes"]}[mounts[directory]]
    assert volume["emptyDir"]["sizeLimit"] == "2Gi"
    claimed = run_helm(*template_args("default", "--set", "web.modelCache.persistentVolumeClaim=models"))
    assert claimed.returncode == 0, claimed.stderr
    assert "claimName: models" in claimed.stdout


def test_the_number_of_gunicorn_workers_is_set_not_guessed_from_the_node() -> None:
    web = render("default").get("Deployment", WEB)
    assert env_of(web)["GUNICORN_WORKERS"] == "2"


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_every_pod_runs_as_non_root_on_a_read_only_root_filesystem(value_set: str) -> None:
    manifests = render(value_set)
    workloads = [*control_plane_workloads(manifests), *manifests.of_kind("Deployment")]
    for workload in workloads:
        assert pod_spec(workload)["securityContext"]["runAsNonRoot"] is True
        assert pod_spec(workload)["securityContext"]["runAsUser"] > 0
        security = container(workload)["securityContext"]
        assert security["readOnlyRootFilesystem"] is True
        assert security["allowPrivilegeEscalation"] is False
        mounts = {m["mountPath"] for m in container(workload)["volumeMounts"]}
        assert "/tmp" in mounts, "a read-only root needs a writable /tmp"


def test_migrations_run_once_per_release_in_a_pre_install_pre_upgrade_hook_job() -> None:
    manifests = render("default")
    job = manifests.get("Job", f"{FULLNAME}-migrate")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    assert container(job)["command"] == ["python", "manage.py", "migrate", "--noinput"]
    assert pod_spec(job)["restartPolicy"] == "Never"
    # What the hook needs must exist before it: hooks with a lower weight.
    for kind, name in (("Secret", f"{FULLNAME}-secrets"), ("ServiceAccount", FULLNAME)):
        needed = manifests.get(kind, name)["metadata"]["annotations"]
        assert int(needed["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    migrating = [j for j in manifests.of_kind("Job") if "migrate" in container(j)["command"]]
    assert migrating == [job]


def test_the_mlflow_webhook_is_registered_after_each_install_and_upgrade() -> None:
    job = render("default").get("Job", f"{FULLNAME}-register-webhook")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "post-install,post-upgrade"
    assert container(job)["command"] == [
        "python",
        "manage.py",
        "register_mlflow_webhook",
        "--url",
        f"http://{FULLNAME}.ml.svc:80/hooks/mlflow",
    ]
    hosts = env_of(job)["DJANGO_ALLOWED_HOSTS"].split(",")
    assert f"{FULLNAME}.ml.svc" in hosts, "the webhook's Host must be allowed"


WORKER = f"{FULLNAME}-worker"
BEAT = f"{FULLNAME}-beat"
REDIS = f"{FULLNAME}-redis"


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_periodic_work_runs_on_celery_beat_and_workers_and_no_cronjob_is_left(value_set: str) -> None:
    manifests = render(value_set)
    assert not manifests.of_kind("CronJob")
    worker = container(manifests.get("Deployment", WORKER))
    assert worker["command"][:4] == ["celery", "-A", "controlplane", "worker"]
    assert worker["command"][worker["command"].index("--queues") + 1] == "controlplane"
    beat = manifests.get("Deployment", BEAT)
    assert container(beat)["command"][:4] == ["celery", "-A", "controlplane", "beat"]
    assert beat["spec"]["replicas"] == 1 and beat["spec"]["strategy"] == {"type": "Recreate"}
    assert env_of(beat)["CELERY_BEAT_SCHEDULE_FILENAME"].startswith("/tmp/")
    for workload in (manifests.get("Deployment", WORKER), beat, manifests.get("Deployment", WEB)):
        env = env_of(workload)
        assert int(env["CELERY_VISIBILITY_TIMEOUT_SECONDS"]) > int(env["CELERY_TASK_TIME_LIMIT_SECONDS"])
        assert {"SCHEDULE_SYNC_REGISTRY_SECONDS", "SCHEDULE_COMPUTE_DRIFT_SECONDS"} <= set(env)


def test_the_schedule_comes_from_values() -> None:
    env = env_of(render("bundled-mlflow-s3").get("Deployment", BEAT))
    assert env["SCHEDULE_COMPUTE_DRIFT_SECONDS"] == "3600"
    assert env["SCHEDULE_SYNC_REGISTRY_SECONDS"] == "300"
    assert env["ROLLOUT_TICK_SECONDS"] == "30" and "ROLLOUT_PROMETHEUS_URL" not in env


def test_the_rollout_controller_can_query_the_clusters_prometheus() -> None:
    result = run_helm(
        *template_args("default", "--set", "celery.rolloutPrometheusUrl=http://prometheus-operated:9090")
    )
    assert result.returncode == 0, result.stderr
    manifests = Manifests(tuple(d for d in yaml.safe_load_all(result.stdout) if d))
    assert (
        env_of(manifests.get("Deployment", WORKER))["ROLLOUT_PROMETHEUS_URL"]
        == "http://prometheus-operated:9090"
    )


def test_workers_autoscale_by_default_and_serve_their_metrics_to_a_pod_monitor() -> None:
    manifests = render("default")
    worker = manifests.get("Deployment", WORKER)
    assert "replicas" not in worker["spec"]
    hpa = manifests.get("HorizontalPodAutoscaler", WORKER)
    assert hpa["spec"]["scaleTargetRef"]["name"] == WORKER
    env = env_of(worker)
    port = int(env["CELERY_WORKER_METRICS_PORT"])
    assert container(worker)["ports"] == [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]
    mounts = {m["mountPath"]: m["name"] for m in container(worker)["volumeMounts"]}
    volumes = {v["name"]: v for v in pod_spec(worker)["volumes"]}
    assert volumes[mounts[env["PROMETHEUS_MULTIPROC_DIR"]]]["emptyDir"]["medium"] == "Memory"
    monitor = manifests.get("PodMonitor", WORKER)
    assert monitor["spec"]["podMetricsEndpoints"][0]["port"] == "metrics"
    labels = worker["spec"]["template"]["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    fixed = render("bundled-mlflow-s3")
    assert fixed.get("Deployment", WORKER)["spec"]["replicas"] == 3
    assert not fixed.has("HorizontalPodAutoscaler", WORKER)


def test_the_bundled_redis_is_the_broker_by_default() -> None:
    manifests = render("default")
    redis = manifests.get("StatefulSet", REDIS)
    assert redis["spec"]["replicas"] == 1
    assert "--appendonly" in container(redis)["command"]
    assert redis["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"] == "1Gi"
    assert pod_spec(redis)["securityContext"]["runAsNonRoot"] is True
    assert container(redis)["securityContext"]["readOnlyRootFilesystem"] is True
    assert manifests.get("Service", REDIS)["spec"]["ports"][0]["port"] == 6379
    for workload in control_plane_workloads(manifests):
        assert env_of(workload)["CELERY_BROKER_URL"] == f"redis://{REDIS}:6379/0"
    assert "persistentVolumeClaim" not in str(render("bundled-mlflow-s3").get("StatefulSet", REDIS))


def test_an_external_redis_comes_from_the_secret_and_none_is_bundled() -> None:
    manifests = render("external-mlflow")
    assert not manifests.has("StatefulSet", REDIS)
    for workload in control_plane_workloads(manifests):
        env = env_of(workload)
        assert env["CELERY_BROKER_URL_FILE"] == f"{SECRET_DIR}/CELERY_BROKER_URL"
        assert "CELERY_BROKER_URL" not in env
    result = run_helm(
        *template_args(
            "default", "--set", "redis.bundled=false", "--set", "secrets.celeryBrokerUrl=redis://r:6379/2"
        )
    )
    assert result.returncode == 0, result.stderr
    secret = next(
        d
        for d in yaml.safe_load_all(result.stdout)
        if d and d["kind"] == "Secret" and "DATABASE_URL" in d.get("data", {})
    )
    assert base64.b64decode(secret["data"]["CELERY_BROKER_URL"]).decode() == "redis://r:6379/2"


def test_an_external_redis_without_a_url_fails_with_a_message() -> None:
    result = run_helm(*template_args("default", "--set", "redis.bundled=false"))
    assert result.returncode != 0
    assert "secrets.celeryBrokerUrl" in result.stderr


def test_autoscaling_on_by_default_leaves_replicas_to_the_hpa() -> None:
    manifests = render("default")
    assert "replicas" not in manifests.get("Deployment", WEB)["spec"]
    hpa = manifests.get("HorizontalPodAutoscaler", WEB)
    assert hpa["spec"]["scaleTargetRef"]["name"] == WEB
    assert hpa["spec"]["minReplicas"] >= 2
    pdb = manifests.get("PodDisruptionBudget", WEB)
    assert pdb["spec"]["selector"]["matchLabels"]["app.kubernetes.io/component"] == "web"


def test_without_autoscaling_the_deployment_sets_its_replicas() -> None:
    manifests = render("bundled-mlflow-s3")
    assert manifests.get("Deployment", WEB)["spec"]["replicas"] == 3
    assert not manifests.of_kind("HorizontalPodAutoscaler")
    assert manifests.get("PodDisruptionBudget", WEB)["spec"]["minAvailable"] == 2


def test_the_bundled_mlflow_server_uses_the_launch_script_with_job_execution_off() -> None:
    manifests = render("bundled-mlflow-s3")
    mlflow = manifests.get("Deployment", MLFLOW)
    assert container(mlflow)["command"] == ["bash", "mlflow/server.sh"]
    env = env_of(mlflow)
    assert env["MLFLOW_SERVER_ENABLE_JOB_EXECUTION"] == "false"
    assert env["MLFLOW_WORKERS"] == "4"
    assert env["MLFLOW_ARTIFACTS_DESTINATION"] == "s3://ml-artifacts/mlflow"
    assert env["MLFLOW_S3_ENDPOINT_URL"] == "http://minio.storage.svc:9000"
    assert env["MLFLOW_WEBHOOK_ALLOWED_SCHEMES"] == "http,https"
    assert env["MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS"] == "true"
    assert MLFLOW in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    for name in ("MLFLOW_BACKEND_STORE_URI", "MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY", "AWS_SECRET_ACCESS_KEY"):
        assert env[name]["secretKeyRef"]["name"] == MLFLOW, name
    secret = manifests.get("Secret", MLFLOW)
    data = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert data["MLFLOW_BACKEND_STORE_URI"].startswith("postgresql+psycopg://")
    assert data["AWS_ACCESS_KEY_ID"] == "minio-access"
    assert container(mlflow)["livenessProbe"]["httpGet"]["path"] == "/health"
    service = manifests.get("Service", MLFLOW)
    assert service["spec"]["ports"][0]["port"] == 5000
    assert env_of(manifests.get("Deployment", WEB))["MLFLOW_TRACKING_URI"] == f"http://{MLFLOW}:5000"


def test_a_generated_webhook_encryption_key_is_a_valid_fernet_key() -> None:
    from cryptography.fernet import Fernet

    secret = render("default").get("Secret", MLFLOW)
    key = base64.b64decode(secret["data"]["MLFLOW_WEBHOOK_SECRET_ENCRYPTION_KEY"])
    assert Fernet(key).decrypt(Fernet(key).encrypt(b"x")) == b"x"


def test_an_external_mlflow_replaces_the_bundled_server() -> None:
    manifests = render("external-mlflow")
    assert not manifests.has("Deployment", MLFLOW)
    assert not manifests.has("Service", MLFLOW)
    assert not manifests.has("Secret", MLFLOW)
    for workload in control_plane_workloads(manifests):
        assert env_of(workload)["MLFLOW_TRACKING_URI"] == "https://mlflow.example.com"


def test_the_optional_ingress_routes_its_host_to_the_web_service() -> None:
    assert not render("default").of_kind("Ingress")
    manifests = render("external-mlflow")
    ingress = manifests.get("Ingress", FULLNAME)
    assert ingress["spec"]["ingressClassName"] == "nginx"
    rule = ingress["spec"]["rules"][0]
    assert rule["host"] == "controlplane.example.com"
    for path in rule["http"]["paths"]:
        assert path["backend"]["service"] == {"name": FULLNAME, "port": {"name": "http"}}
        assert path["pathType"] == "Prefix"
    hosts = env_of(manifests.get("Deployment", WEB))["DJANGO_ALLOWED_HOSTS"].split(",")
    assert {"controlplane.example.com", "controlplane.internal", FULLNAME} <= set(hosts)
    service = manifests.get("Service", FULLNAME)
    assert service["spec"]["selector"]["app.kubernetes.io/component"] == "web"


def _ingress_paths(*overrides: str) -> list[str]:
    args = template_args("default", "--set", "ingress.enabled=true,ingress.hosts[0].host=cp.example.com")
    result = run_helm(*args, *overrides)
    assert result.returncode == 0, result.stderr
    ingress = next(d for d in yaml.safe_load_all(result.stdout) if d and d["kind"] == "Ingress")
    return [p["path"] for rule in ingress["spec"]["rules"] for p in rule["http"]["paths"]]


def test_the_ingress_routes_only_the_public_api_and_never_metrics_readyz_or_hooks() -> None:
    assert _ingress_paths() == ["/predict", "/feedback", "/api"]
    assert _ingress_paths("--set", "ingress.admin=true") == [
        "/predict",
        "/feedback",
        "/api",
        "/admin",
        "/static",
    ]
    assert _ingress_paths("--set", "ingress.webhook=true")[-1] == "/hooks"
    rendered = render("external-mlflow").get("Ingress", FULLNAME)
    paths = {p["path"] for rule in rendered["spec"]["rules"] for p in rule["http"]["paths"]}
    assert not paths & {"/", "/metrics", "/readyz", "/healthz", "/hooks"}


def test_https_settings_are_on_exactly_when_tls_ends_at_the_ingress() -> None:
    with_tls = env_of(render("external-mlflow").get("Deployment", WEB))
    assert (
        with_tls["DJANGO_SECURE_SSL_REDIRECT"] == "true"
        and with_tls["DJANGO_SECURE_PROXY_SSL_HEADER"] == "true"
    )
    assert (
        with_tls["DJANGO_SECURE_COOKIES"] == "true" and with_tls["DJANGO_SECURE_HSTS_SECONDS"] == "31536000"
    )
    assert not any(k.startswith("DJANGO_SECURE_") for k in env_of(render("default").get("Deployment", WEB)))
    result = run_helm(*template_args("external-mlflow", "--set", "config.https.enabled=false"))
    assert result.returncode == 0 and "DJANGO_SECURE_" not in result.stdout


def test_a_service_monitor_scrapes_the_web_pods_metrics() -> None:
    manifests = render("default")
    monitor = manifests.get("ServiceMonitor", FULLNAME)
    assert monitor["spec"]["endpoints"][0]["path"] == "/metrics"
    assert monitor["spec"]["endpoints"][0]["port"] == "http"
    service_labels = manifests.get("Service", FULLNAME)["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service_labels.items()


def _monitoring_rule_groups() -> list[dict]:
    groups: list[dict] = []
    for path in sorted((REPO / "monitoring" / "alerts").glob("*.yml")):
        groups += yaml.safe_load(path.read_text()).get("groups") or []
    return groups


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_the_prometheus_rule_holds_exactly_the_rules_of_monitoring_alerts(value_set: str) -> None:
    rule = render(value_set).get("PrometheusRule", FULLNAME)
    assert rule["spec"]["groups"] == _monitoring_rule_groups()


@pytest.mark.parametrize("value_set", sorted(VALUE_SETS))
def test_the_dashboard_configmap_holds_the_monitoring_dashboards_byte_for_byte(value_set: str) -> None:
    configmap = render(value_set).get("ConfigMap", f"{FULLNAME}-dashboards")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    expected = {p.name: p.read_text() for p in (REPO / "monitoring" / "dashboards").glob("*.json")}
    assert (configmap.get("data") or {}) == expected
    for text in expected.values():
        json.loads(text)


def test_the_default_image_is_the_one_the_dockerfile_builds() -> None:
    web = container(render("default").get("Deployment", WEB))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    dockerfile = Path(REPO / "Dockerfile").read_text()
    repository, tag = web["image"].rsplit(":", 1)
    assert f'org.opencontainers.image.title="{repository}"' in dockerfile
    assert f'org.opencontainers.image.version="{tag}"' in dockerfile
    assert tag == chart["appVersion"]
    assert container(render("default").get("Deployment", MLFLOW))["image"] == web["image"]


@pytest.mark.parametrize(
    ("override", "complaint"),
    [
        (["--set", "web.replicas=two"], "web.replicas"),
        (["--set", "web.autoscaling.targetCPUUtilizationPercentage=150"], "targetCPUUtilizationPercentage"),
        (["--set", "mlflow.enabled=false"], "externalUrl"),
        (["--set", "podSecurityContext.runAsNonRoot=false"], "runAsNonRoot"),
        (["--set", "secrets.databaseUrl=mysql://db/controlplane"], "databaseUrl"),
        (["--set", "celery.schedule.computeDriftSeconds=often"], "computeDriftSeconds"),
        (["--set", "celery.worker.concurrency=0"], "concurrency"),
        (["--set", "secrets.celeryBrokerUrl=amqp://rabbit"], "celeryBrokerUrl"),
        (["--set", "replicaCount=2"], "replicaCount"),
        (["--set", "config.logLevel=LOUD"], "logLevel"),
        (["--set", "config.logFormat=xml"], "logFormat"),
        (["--set", "mlflowWebhook.url=ftp://x"], "mlflowWebhook.url"),
        (["--set", "web.prometheusMultiprocDir=/multiproc"], "prometheusMultiprocDir"),
        (["--set", "ingress.hosts[0].host=x,ingress.hosts[0].paths[0]=/"], "paths"),
        (["--set", "config.https.hstsSeconds=-1"], "hstsSeconds"),
    ],
    ids=lambda v: v if isinstance(v, str) else v[1],
)
def test_a_wrong_value_fails_helm_template(override: list[str], complaint: str) -> None:
    result = run_helm(*template_args("default", *override))
    assert result.returncode != 0, f"{override} rendered without complaint"
    assert complaint in result.stderr


def test_a_shared_cache_without_a_url_fails_with_a_message() -> None:
    result = run_helm(*template_args("default", "--set", "sharedCache.enabled=true"))
    assert result.returncode != 0
    assert "secrets.cacheUrl" in result.stderr


def test_rules_and_dashboards_in_the_chart_files_reach_the_manifests_unchanged(tmp_path: Path) -> None:
    """The templates themselves, with sample assets (monitoring/ may hold none yet)."""
    chart = tmp_path / "controlplane"
    shutil.copytree(CHART, chart)
    for synced in [*chart.glob("files/alerts/*.yml"), *chart.glob("files/dashboards/*.json")]:
        synced.unlink()
    rules = {
        "groups": [
            {
                "name": "sample",
                "rules": [
                    {
                        "alert": "SampleHighLatency",
                        "expr": 'histogram_quantile(0.99, sum by (le) (rate(x_bucket{a="b"}[5m])))\n  > 0.25',
                        "for": "10m",
                        "labels": {"severity": "page"},
                        "annotations": {"summary": "p99 {{ $value }} on {{ $labels.endpoint }}"},
                    }
                ],
            }
        ]
    }
    (chart / "files/alerts/a.yml").write_text(yaml.safe_dump(rules))
    (chart / "files/alerts/b.yml").write_text(yaml.safe_dump({"groups": [{"name": "second", "rules": []}]}))
    dashboard = '{\n  "title": "Sample <&>",\n  "panels": [{"expr": "sum(rate(x[5m]))"}]\n}'
    (chart / "files/dashboards/sample.json").write_text(dashboard)
    result = run_helm("template", "cp", str(chart), "--namespace", "ml")
    assert result.returncode == 0, result.stderr
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    rule = next(d for d in docs if d["kind"] == "PrometheusRule")
    assert rule["spec"]["groups"] == [*rules["groups"], {"name": "second", "rules": []}]
    configmap = next(d for d in docs if d["kind"] == "ConfigMap")
    assert configmap["data"] == {"sample.json": dashboard}


def test_the_rendered_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    promtool = require_tool("promtool", "checks the rendered alert rules")
    rule = render("default").get("PrometheusRule", FULLNAME)
    rules_file = tmp_path / "rendered.rules.yml"
    rules_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run([promtool, "check", "rules", str(rules_file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _documented_helm_commands() -> list[tuple[str, list[str]]]:
    """`helm ...` lines (with continuations) from the bash blocks of the docs and helm/README."""
    found = []
    for path in [REPO / "docs" / "kubernetes.md", REPO / "helm" / "README.md"]:
        for block in re.findall(r"```bash\n(.*?)```", path.read_text(), flags=re.S):
            for command in block.replace("\\\n", " ").splitlines():
                if not re.match(r"\s*(\S*/)?helm ", command):
                    continue
                argv = shlex.split(command.split("  #")[0])
                if argv[1] in ("install", "upgrade", "template", "lint"):
                    found.append((f"{path.name}: {command.strip()[:60]}", argv[1:]))
    return found


def test_every_helm_command_in_the_docs_is_accepted_by_the_chart() -> None:
    """install/upgrade are checked as `helm template` with the same values and the same schema."""
    commands = _documented_helm_commands()
    assert {argv[0] for _, argv in commands} >= {"install", "upgrade", "template", "lint"}
    for where, argv in commands:
        if argv[0] in ("install", "upgrade"):
            argv = ["template", *[a for a in argv[1:] if a != "--reuse-values"]]
        result = subprocess.run([helm(), *argv], capture_output=True, text=True, timeout=120, cwd=REPO)
        assert result.returncode == 0, f"{where}\n{result.stderr}"


@pytest.mark.parametrize("value_set", VALUE_SETS)
def test_batch_job_files_live_in_s3_for_web_pods_and_workers_alike(value_set: str) -> None:
    manifests = render(value_set)
    for workload in control_plane_workloads(manifests):
        env = env_of(workload)
        assert env["BATCH_STORAGE"] == "s3" and env["BATCH_S3_BUCKET"] == "controlplane-batch-jobs"
        assert env["BATCH_MAX_UPLOAD_BYTES"] == "2147483648" and env["BATCH_JOB_RETENTION_DAYS"] == "7"
