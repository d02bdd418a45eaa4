"""Alert rules and Grafana dashboards: valid for promtool, and only metrics we actually export."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest
import yaml

from delivery.collectors import COLLECTED_METRICS as ROLLOUT_METRICS
from experiments.collectors import COLLECTED_METRICS as QUALITY_METRICS
from monitoring.collectors import COLLECTED_METRICS
from monitoring.metrics import DECLARED_METRICS
from monitoring.task_queue import COLLECTED_METRICS as TASK_QUEUE_METRICS
from tests.conftest import require_tool

pytestmark = pytest.mark.single_pass

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


def annotation_expressions() -> dict[str, str]:
    """ "<dashboard> / annotation <name>" -> expression of each Prometheus annotation query."""
    return {
        f"{path.name} / annotation {a['name']}": a["expr"]
        for path in DASHBOARDS
        for a in json.loads(path.read_text())["annotations"]["list"]
        if "expr" in a
    }


def grafana_to_promql(expr: str, endpoint: str = ".*") -> str:
    expr = expr.replace("$__rate_interval", "1m").replace("$endpoint", endpoint)
    return expr.replace("$namespace", ".*").replace("$job", ".*")


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
        "ControlplaneTaskQueueStuck",
        "ControlplaneTaskFailing",
        "ControlplaneRolloutHeldPastDeadline",
        "ControlplaneRolloutRolledBack",
        "ControlplaneChallengerQualityBelowChampion",
        "ControlplaneChallengerErrorAboveChampion",
    ):
        assert wanted in alerts


def test_every_metric_in_dashboards_and_rules_is_one_we_export(client, db):
    exposition = client.get("/metrics").content.decode()
    declared = {
        **DECLARED_METRICS,
        **COLLECTED_METRICS,
        **TASK_QUEUE_METRICS,
        **QUALITY_METRICS,
        **ROLLOUT_METRICS,
    }
    expressions = {**rule_expressions(), **dashboard_expressions(), **annotation_expressions()}
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
                # Background work (tasks, the alias outbox, batch-job counts) belongs to no endpoint.
                background = ("controlplane_task_", "controlplane_alias_push", "controlplane_batch_jobs")
                if "controlplane_" in target["expr"] and not any(b in target["expr"] for b in background):
                    assert 'endpoint=~"$endpoint"' in target["expr"], panel["title"]


def test_dashboard_expressions_are_valid_promql(tmp_path):
    promtool = require_tool("promtool", "parses the dashboards' PromQL")
    rules = [
        {"record": f"dashboard:expr_{i}:check", "expr": grafana_to_promql(expr)}
        for i, expr in enumerate([*dashboard_expressions().values(), *annotation_expressions().values()])
    ]
    path = tmp_path / "dashboard-exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboards", "rules": rules}]}))
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboards_tell_installations_apart_by_namespace_and_job():
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text())
        variables = {v["name"]: v for v in dashboard["templating"]["list"]}
        for name in ("namespace", "job"):
            assert variables[name]["type"] == "query" and variables[name]["includeAll"], name
            assert variables[name]["datasource"]["uid"] == "${datasource}"
        assert "$namespace" in variables["job"]["definition"]  # jobs of the chosen namespace
        assert 'job=~"$job"' in variables["endpoint"]["definition"]
        expressions = [t["expr"] for p in dashboard["panels"] for t in p["targets"]]
        expressions += list(annotation_expressions().values())
        for expr in expressions:
            for name in METRIC.findall(expr):
                assert re.search(name + r'\{namespace=~"\$namespace", job=~"\$job"', expr), (name, expr)


def test_governance_events_appear_as_dashboard_annotations_per_endpoint():
    for path in DASHBOARDS:
        annotations = json.loads(path.read_text())["annotations"]["list"]
        governance = [a for a in annotations if "controlplane_governance_events_total" in a.get("expr", "")]
        assert len(governance) == 1, path.name
        annotation = governance[0]
        assert annotation["enable"] and annotation["datasource"]["uid"] == "${datasource}"
        assert 'endpoint=~"$endpoint"' in annotation["expr"]
        assert "{{action}}" in annotation["titleFormat"] and set(annotation["tagKeys"].split(",")) == {
            "endpoint",
            "action",
        }


def _github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives headings: lower case, punctuation dropped, spaces as dashes."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", markdown, flags=re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


def test_every_alert_has_a_runbook_url_whose_section_exists():
    runbooks = MONITORING.parent / "docs" / "runbooks.md"
    anchors = _github_anchors(runbooks.read_text())
    alerts = [
        rule
        for path in RULE_FILES
        for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]
    assert alerts
    for rule in alerts:
        url = rule["annotations"].get("runbook_url", "")
        page, _, anchor = url.partition("#")
        assert page == "docs/runbooks.md", (rule["alert"], url)
        assert anchor == rule["alert"].lower() and anchor in anchors, (rule["alert"], url)
    sections = {a for a in anchors if a.startswith("controlplane")}
    assert sections == {rule["alert"].lower() for rule in alerts}, "a runbook section without its alert"
