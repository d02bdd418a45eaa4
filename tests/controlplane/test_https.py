"""Behind a TLS-terminating Ingress (the chart's HTTPS settings), plain http is redirected to https
except on the paths the pod network needs: probes, /metrics, MLflow's webhook, and /predict."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from django.test import Client

from routing.serving.table import TABLE

pytestmark = [pytest.mark.single_pass, pytest.mark.django_db]


@pytest.fixture
def behind_tls(settings) -> Iterator[Client]:
    # /predict builds this process's routing table: no refresher thread may outlive the test.
    settings.ROUTING_REFRESH_IN_BACKGROUND = False
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    yield Client()  # built after the settings change: its middleware reads them
    TABLE.reset()


def test_plain_http_to_the_admin_and_the_api_is_redirected_to_https(behind_tls):
    for path in ("/admin/login/", "/api/v1/endpoints/"):
        response = behind_tls.get(path)
        assert response.status_code == 301 and response["Location"].startswith("https://"), path


def test_https_through_the_proxy_is_served_with_hsts(behind_tls):
    response = behind_tls.get("/admin/login/", HTTP_X_FORWARDED_PROTO="https")

    assert response.status_code == 200
    assert response["Strict-Transport-Security"].startswith("max-age=31536000")


def test_probes_metrics_webhook_and_predict_are_never_redirected(behind_tls):
    assert behind_tls.get("/healthz").status_code == 200
    assert behind_tls.get("/metrics").status_code == 200
    assert behind_tls.get("/readyz").status_code != 301
    assert behind_tls.post("/hooks/mlflow", b"{}", content_type="application/json").status_code != 301
    predict = behind_tls.post("/predict/demo", b"{}", content_type="application/json")
    assert predict.status_code == 401  # answered (no token), not sent elsewhere
