"""The plugin's reading of MLflow's words (target URI, deployment name, model URI, -C config) and
the SDK's share arithmetic: pure functions, no server."""

from __future__ import annotations

import pytest
from controlplane_client.governance import weights_with_share
from controlplane_client.naming import (
    DeploymentName,
    ModelRef,
    NamingError,
    config_check,
    config_choice,
    config_int,
    config_reason,
    deployment_name,
    model_ref,
    url_from_target,
)

# Pure functions: nothing here touches a database.
pytestmark = pytest.mark.single_pass


@pytest.mark.parametrize(
    ("target", "url"),
    [
        ("controlplane", None),
        ("controlplane:/", None),
        ("controlplane:/http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("controlplane:/https://cp.example.org/base", "https://cp.example.org/base"),
        ("controlplane://127.0.0.1:8000", "http://127.0.0.1:8000"),
    ],
)
def test_a_target_uri_names_the_url_or_leaves_it_to_the_environment(target, url):
    assert url_from_target(target) == url


def test_a_target_of_another_plugin_is_refused():
    with pytest.raises(NamingError):
        url_from_target("controlplanex")


@pytest.mark.parametrize(
    ("name", "endpoint", "parsed"),
    [
        ("demo", None, DeploymentName("demo", None)),
        ("demo/v3", None, DeploymentName("demo", "v3")),
        ("v3", "demo", DeploymentName("demo", "v3")),
        (None, "demo", DeploymentName("demo", None)),
    ],
)
def test_a_deployment_is_a_variant_on_an_endpoint(name, endpoint, parsed):
    assert deployment_name(name, endpoint) == parsed
    assert str(parsed) == (f"{parsed.endpoint}/{parsed.variant}" if parsed.variant else parsed.endpoint)


@pytest.mark.parametrize(("name", "endpoint"), [("", None), ("a/b/c", None), ("demo/", None), ("/v3", None),
                                                ("demo/v3", "demo")])  # fmt: skip
def test_a_malformed_deployment_name_says_the_right_form(name, endpoint):
    with pytest.raises(NamingError, match="endpoint"):
        deployment_name(name, endpoint)


def test_model_uris_name_a_registered_version_or_alias():
    assert model_ref("models:/fraud/3") == ModelRef("fraud", 3, None)
    assert model_ref("models:/fraud@champion") == ModelRef("fraud", None, "champion")
    assert model_ref("models:/team.fraud model/12") == ModelRef("team.fraud model", 12, None)
    for bad in ("runs:/abc/model", "models:/fraud", "models:/fraud/latest", "/tmp/model", None):
        with pytest.raises(NamingError, match="models:/<model>/<version>"):
            model_ref(bad)


def test_config_is_checked_key_by_key():
    with pytest.raises(NamingError, match="does not take -C precent"):
        config_check({"precent": "10", "reason": "r"}, ("reason", "percent"), "create")
    with pytest.raises(NamingError, match="reason"):
        config_reason({"reason": "  "})
    with pytest.raises(NamingError, match="whole number"):
        config_int({"percent": "ten"}, "percent")
    assert config_int({}, "percent") is None and config_int({"percent": " 30 "}, "percent") == 30
    assert config_choice({"promote": "Yes"}, "promote", ("true", "false", "request"), "false") == "true"
    with pytest.raises(NamingError, match="one of"):
        config_choice({"role": "king"}, "role", ("challenger", "shadow"), "challenger")


@pytest.mark.parametrize(
    ("weights", "variant", "percent", "expected"),
    [
        ({"v1": 90, "v3": 10}, "v3", 30, {"v1": 70, "v3": 30}),
        ({"v1": 45, "v2": 15, "v3": 40}, "v3", 10, {"v1": 68, "v2": 22, "v3": 10}),
        ({"v1": 1, "v2": 1, "v3": 1}, "v1", 0, {"v1": 0, "v2": 50, "v3": 50}),
        ({"v1": 0, "v2": 0, "v3": 5}, "v3", 40, {"v1": 60, "v2": 0, "v3": 40}),
        ({"v1": 100}, "v1", 100, {"v1": 100}),
    ],
)
def test_a_share_keeps_the_others_in_proportion_and_sums_to_100(weights, variant, percent, expected):
    assert weights_with_share(weights, variant, percent) == expected


def test_a_share_for_a_shadow_or_out_of_range_is_refused():
    with pytest.raises(ValueError, match="not a champion or challenger"):
        weights_with_share({"v1": 90, "v2": 10}, "v4", 10)
    with pytest.raises(ValueError, match="only champion or challenger"):
        weights_with_share({"v1": 100}, "v1", 40)
    with pytest.raises(ValueError, match="0 to 100"):
        weights_with_share({"v1": 90, "v2": 10}, "v2", 101)
