"""The Dockerfile's invariants, checked statically: no Docker engine runs here.

Multi-stage with a pinned base, requirements installed in a builder stage, static files collected
at build time, a non-root user that matches the chart's securityContext, gunicorn as the entry,
and a .dockerignore that keeps secrets and local state out of the build context.
"""

from __future__ import annotations

import fnmatch
import json
import re
from dataclasses import dataclass, field

import pytest
import yaml

from tests.mlflow_server import REPO

pytestmark = pytest.mark.single_pass("postgresql")

CHART = REPO / "helm" / "controlplane"


@dataclass
class Stage:
    """One FROM ... AS name block: its base image and its instructions (keyword, arguments)."""

    base: str
    name: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def args_of(self, keyword: str) -> list[str]:
        return [a for k, a in self.instructions if k == keyword]


def parse_dockerfile() -> tuple[dict[str, str], list[Stage]]:
    """Global ARG defaults and the stages, with continuation lines joined."""
    text = (REPO / "Dockerfile").read_text()
    logical = re.sub(r"\\\n", " ", text)
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in logical.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            parts = rest.split()
            base = re.sub(r"\$\{(\w+)\}", lambda m: args[m.group(1)], parts[0])
            name = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(base, name))
        elif keyword == "ARG" and not stages and "=" in rest:
            key, _, value = rest.partition("=")
            args[key] = value
        elif stages:
            stages[-1].instructions.append((keyword, rest))
    return args, stages


def test_it_is_multi_stage_on_a_python_3_11_slim_bookworm_base_pinned_by_tag() -> None:
    _, stages = parse_dockerfile()
    assert len(stages) >= 2
    for stage in stages:
        assert re.fullmatch(r"python:3\.11\.\d+-slim-bookworm(@sha256:[0-9a-f]{64})?", stage.base), stage.base


def test_the_hashed_lock_is_installed_in_the_builder_and_copied_into_the_runtime() -> None:
    _, stages = parse_dockerfile()
    builder, runtime = stages[0], stages[-1]
    assert any("requirements.lock" in a for a in builder.args_of("COPY"))
    installs = [a for a in builder.args_of("RUN") if "pip install" in a]
    assert installs and all("--require-hashes" in a and "requirements.lock" in a for a in installs), installs
    assert any(a.startswith(f"--from={builder.name} ") for a in runtime.args_of("COPY"))
    assert not any("pip install" in a for a in runtime.args_of("RUN")), "install only in the builder"


def test_static_files_are_collected_at_build_time_into_the_static_root_the_chart_uses() -> None:
    _, stages = parse_dockerfile()
    runtime = stages[-1]
    assert any("manage.py collectstatic --noinput" in a for a in runtime.args_of("RUN"))
    assert any("DJANGO_STATIC_ROOT=/app/staticfiles" in a for a in runtime.args_of("ENV"))
    helpers = (CHART / "templates" / "_helpers.tpl").read_text()
    assert "name: DJANGO_STATIC_ROOT\n  value: /app/staticfiles" in helpers


def test_the_image_runs_as_the_non_root_user_the_chart_expects() -> None:
    _, stages = parse_dockerfile()
    runtime = stages[-1]
    users = runtime.args_of("USER")
    assert users, "the runtime stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid not in ("root", "0")
    last_user = max(i for i, (k, _) in enumerate(runtime.instructions) if k == "USER")
    assert not [k for k, _ in runtime.instructions[last_user:] if k == "RUN"], "no RUN after USER"
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert values["podSecurityContext"]["runAsUser"] == int(uid)


def test_gunicorn_is_the_entry_on_port_8000() -> None:
    _, stages = parse_dockerfile()
    runtime = stages[-1]
    command = json.loads(runtime.args_of("CMD")[-1])
    assert command[:3] == ["gunicorn", "-c", "controlplane/gunicorn.conf.py"]
    assert command[-1] == "controlplane.wsgi:application"
    assert "0.0.0.0:8000" in command
    assert "8000" in runtime.args_of("EXPOSE")


def test_its_name_and_version_are_the_charts_default_image() -> None:
    _, stages = parse_dockerfile()
    labels = " ".join(stages[-1].args_of("LABEL"))
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert f'org.opencontainers.image.title="{values["image"]["repository"]}"' in labels
    assert f'org.opencontainers.image.version="{chart["appVersion"]}"' in labels
    assert values["image"]["tag"] in ("", chart["appVersion"])


def _ignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule, simplified: a pattern matches the path or one of its parent directories,
    ``**/`` at any depth; the last matching pattern wins and ``!`` re-includes."""
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    ignored = False
    for raw in patterns:
        pattern = raw.removeprefix("!")
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(p.split("/")[-1], pattern[3:]) for p in prefixes)
        else:
            hit = any(fnmatch.fnmatch(p, pattern) for p in prefixes)
        if hit:
            ignored = not raw.startswith("!")
    return ignored


def test_dockerignore_keeps_local_state_out_and_what_the_image_runs_in() -> None:
    patterns = [
        line.strip()
        for line in (REPO / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    for path in (".git/config", ".venv/bin/python", "var/controlplane.sqlite3", ".tools/bin/helm"):
        assert _ignored(path, patterns), f"{path} must not enter the build context"
    for path in ("requirements.lock", "manage.py", "controlplane/settings.py", "mlflow/server.sh"):
        assert (REPO / path).exists()
        assert not _ignored(path, patterns), f"{path} is needed in the image"
