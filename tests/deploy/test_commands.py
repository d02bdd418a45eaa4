"""Every ``manage.py`` command the chart runs or the docs tell people to type exists and accepts
exactly those arguments, so a renamed command or flag fails here rather than in a cluster."""

from __future__ import annotations

import re
import shlex

import pytest
from django.core.management import get_commands, load_command_class

from tests.deploy.chart import VALUE_SETS, container, render
from tests.mlflow_server import REPO

pytestmark = pytest.mark.single_pass("postgresql")

DOCS = [*sorted((REPO / "docs").glob("*.md")), REPO / "helm" / "README.md"]


def assert_command_accepts(name: str, args: list[str], where: str) -> None:
    commands = get_commands()
    assert name in commands, f"{where}: no management command {name!r}"
    command = load_command_class(commands[name], name)
    parser = command.create_parser("manage.py", name)
    try:
        parser.parse_args(args)
    except SystemExit:
        pytest.fail(f"{where}: manage.py {name} does not accept {args}")


def chart_commands() -> list[tuple[str, list[str]]]:
    found = []
    for value_set in VALUE_SETS:
        manifests = render(value_set)
        for workload in manifests.of_kind("Job"):
            argv = container(workload)["command"] + container(workload).get("args", [])
            assert argv[:2] == ["python", "manage.py"], workload["metadata"]["name"]
            found.append((workload["metadata"]["name"], argv[2:]))
    return found


def test_every_job_of_the_chart_runs_a_real_command() -> None:
    commands = chart_commands()
    assert {argv[0] for _, argv in commands} >= {"migrate", "register_mlflow_webhook"}
    for where, argv in commands:
        assert_command_accepts(argv[0], argv[1:], where)


def doc_commands() -> list[tuple[str, str, list[str]]]:
    found = []
    for path in DOCS:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            for match in re.finditer(r"manage\.py ([^`|;&)\n]+)", line):
                argv = shlex.split(match.group(1).split("  #")[0])
                found.append((f"{path.name}:{number}", argv[0], argv[1:]))
    return found


def test_the_docs_name_commands_that_exist_with_flags_they_accept() -> None:
    commands = doc_commands()
    assert {name for _, name, _ in commands} >= {"create_service_token", "sync_registry", "compute_drift"}
    for where, name, args in commands:
        assert_command_accepts(name, args, where)
