"""A remote variant's URL must be on REMOTE_BACKEND_ALLOWED_HOSTS (issue 10, item 8).

Before the fix ``remote_url`` accepted any URL (cloud metadata, internal hosts) and live client
rows were posted there.
"""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from routing.governance.services import GovernanceError, challenger_start, endpoint_create
from routing.models import Variant
from routing.models.remote_hosts import remote_url_refusal

pytestmark = pytest.mark.django_db


@pytest.fixture
def ep(fresh_model):
    return endpoint_create(
        actor="system", name="ep", model_name=fresh_model.name, champion_version=1, reason="launch"
    )


def _start(actor, url: str) -> Variant:
    return challenger_start(
        actor=actor, endpoint_name="ep", version=2, percent=10, reason="r", backend="remote", remote_url=url
    )


def test_by_default_no_remote_backend_is_allowed_and_the_refusal_names_the_setting(ep, scientist):
    with pytest.raises(GovernanceError) as err:
        _start(scientist, "http://scoring.ml.svc:8080")

    assert err.value.status == 400 and err.value.code == "remote_not_allowed"
    assert "REMOTE_BACKEND_ALLOWED_HOSTS" in err.value.message
    assert not Variant.objects.filter(backend="remote").exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # cloud metadata
        "http://10.0.0.5:8080",  # another internal host
        "http://scoring.ml.svc:9999",  # an allowed host on another port
        "http://evil.example.com#@scoring.ml.svc:8080",
        "http://user:pw@scoring.ml.svc:8080",  # credentials would show in the admin and audit
        "file:///etc/passwd",
        "gopher://scoring.ml.svc:8080",
    ],
)
def test_a_url_outside_the_allowlist_is_refused(ep, scientist, settings, url):
    settings.REMOTE_BACKEND_ALLOWED_HOSTS = ["scoring.ml.svc:8080", "*.models.example.com"]

    with pytest.raises(GovernanceError) as err:
        _start(scientist, url)

    assert err.value.status == 400
    assert not Variant.objects.filter(backend="remote").exists()


def test_an_allowed_host_is_accepted(ep, scientist, settings):
    settings.REMOTE_BACKEND_ALLOWED_HOSTS = ["scoring.ml.svc:8080", "*.models.example.com"]

    variant = _start(scientist, "https://big.models.example.com/invocations")

    assert variant.backend == "remote" and variant.remote_url == "https://big.models.example.com/invocations"


def test_the_api_refuses_a_disallowed_remote_url_with_a_400_naming_the_setting(ep, scientist):
    client = APIClient()
    client.force_login(scientist)

    response = client.post(
        "/api/v1/endpoints/ep/challengers/",
        {
            "version": 2,
            "percent": 10,
            "reason": "r",
            "backend": "remote",
            "remote_url": "http://169.254.169.254/",
        },
        format="json",
    )

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "remote_not_allowed"
    assert "REMOTE_BACKEND_ALLOWED_HOSTS" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("patterns", "url", "allowed"),
    [
        (["scoring.ml.svc"], "http://scoring.ml.svc:1234/invocations", True),
        (["scoring.ml.svc:8080"], "http://SCORING.ml.svc:8080", True),
        (["scoring.ml.svc:8080"], "http://scoring.ml.svc", False),
        (["scoring.ml.svc:80"], "http://scoring.ml.svc", True),
        (["scoring.ml.svc:443"], "https://scoring.ml.svc/x", True),
        (["*.ml.svc"], "http://a.ml.svc:5000", True),
        (["*.ml.svc"], "http://ml.svc.evil.com", False),
        (["127.0.0.1"], "http://127.0.0.1:5001", True),
        (["127.0.0.1"], "http://127.0.0.2:5001", False),
        (["[::1]:5001"], "http://[::1]:5001", True),
        (["[::1]:5001"], "http://[::1]:5002", False),
        ([], "http://127.0.0.1:5001", False),
    ],
)
def test_host_patterns(settings, patterns, url, allowed):
    settings.REMOTE_BACKEND_ALLOWED_HOSTS = patterns

    assert (remote_url_refusal(url) == "") is allowed
