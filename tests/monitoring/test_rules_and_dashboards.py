"""Alert rules and Grafana dashboards: valid for promtool, and only metrics we actually export."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from monitoring.collectors import COLLECTED_METRICS
from monitoring.metrics import DECLARED_METRICS
from tests.conftest import require_tool

MONITORING = Path(__file__).resolve().parents[2] / "monitoring"
RULE_FILES = sorted((MONITORING / "alerts").glob("*.yml"))
RULE_TESTS = sorted((MONITORING / "alerts" / "tests").glob("*.yml"))
DASHBOARDS = sorted((MONITORING / "dashboards").glob("*.json"))
METRIC = re.compile(r"(?<![\w:])((?:controlplane|django)_[a-z0-9_]+)(?![\w:])")
HISTOGRAM_SUFFIXES = ("_bucket", "_count", "_sum")


def rule_expressions() -> dict[str, str]:
    """name (alert or recorded series) -> expression, over every rule file."""
    out = {}
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                out[rule.get("alert") or rule["record"]] = rule["expr"]
    return out


def recorded_names() -> set[str]:
    return {
        rule["record"]
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "record" in rule
    }


def dashboard_expressions() -> dict[str, str]:
    """ "<dashboard> / <panel> / <refId>" -> expression with Grafana's variables as Prometheus takes them."""
    out = {}
    for path in DASHBOARDS:
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel["targets"]:
                out[f"{path.name} / {panel['title']} / {target['refId']}"] = target["expr"]
    return out


def grafana_to_promql(expr: str, endpoint: str = ".*") -> str:
    return expr.replace("$__rate_interval", "1m").replace("$endpoint", endpoint)


def exported_name(name: str, declared: dict[str, str]) -> bool:
    if name in declared:
        return True
    for suffix in HISTOGRAM_SUFFIXES:
        base = name.removesuffix(suffix)
        if base != name and declared.get(base) == "histogram":
            return True
    return False


def test_the_rule_files_pass_promtool_check_rules():
    promtool = require_tool("promtool", "validates Prometheus rule files")
    assert RULE_FILES
    result = subprocess.run(
        [promtool, "check", "rules", *map(str, RULE_FILES)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("test_file", RULE_TESTS, ids=lambda p: p.name)
def test_the_alert_rules_pass_their_promtool_unit_tests(test_file):
    promtool = require_tool("promtool", "runs the alert rules' unit tests")
    result = subprocess.run(
        [promtool, "test", "rules", test_file.name], cwd=test_file.parent, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_named_in_the_issue_has_a_rule():
    alerts = set(rule_expressions())
    for wanted in (
        "ControlplaneRequestLatencyP99AboveSLO",
        "ControlplaneServerErrorRateHigh",
        "ControlplaneChallengerErrorRateWorseThanChampion",
        "ControlplaneFeatureDrift",
        "ControlplaneChampionNotLoaded",
        "ControlplanePredictionLogRowsDropped",
    ):
        assert wanted in alerts


def test_every_metric_in_dashboards_and_rules_is_one_we_export(client, db):
    exposition = client.get("/metrics").content.decode()
    declared = {**DECLARED_METRICS, **COLLECTED_METRICS}
    expressions = {**rule_expressions(), **dashboard_expressions()}
    unknown = set()
    for where, expr in expressions.items():
        for name in METRIC.findall(expr):
            if name.startswith("controlplane_") and not exported_name(name, declared):
                unknown.add((where, name))
            if name.startswith("django_") and f"# TYPE {name} " not in exposition:
                unknown.add((where, name))
    assert not unknown, sorted(unknown)
    recorded = recorded_names()
    for where, expr in rule_expressions().items():
        for name in re.findall(r"\b[a-z_]+:[a-z0-9_:]+\b", expr):
            assert name in recorded, f"{where} uses {name}, which no rule records"


def test_dashboards_take_the_datasource_as_a_variable_and_filter_on_endpoint():
    assert DASHBOARDS
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        assert variables["datasource"]["type"] == "datasource"
        assert variables["endpoint"]["datasource"]["uid"] == "${datasource}"
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == "${datasource}", panel["title"]
                if "controlplane_" in target["expr"]:
                    assert 'endpoint=~"$endpoint"' in target["expr"], panel["title"]


def test_dashboard_expressions_are_valid_promql(tmp_path):
    promtool = require_tool("promtool", "parses the dashboards' PromQL")
    rules = [
        {"record": f"dashboard:expr_{i}:check", "expr": grafana_to_promql(expr)}
        for i, expr in enumerate(dashboard_expressions().values())
    ]
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
