"""The dependency rules of docs/architecture.md hold, and breaking one fails the lint.

``lint-imports`` reads the contracts in pyproject.toml. The second test copies the packages into a
scratch folder, adds one forbidden import per rule, and checks the linter names it: a contract
that cannot fail would protect nothing.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.mlflow_server import REPO

pytestmark = pytest.mark.single_pass

LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("controlplane", "registry", "routing", "monitoring", "experiments", "delivery")
# The client lives in clients/python/src; the copy puts it beside the others, where lint-imports
# (which puts its working folder first on sys.path) finds it before the installed one.
CLIENT = Path("clients/python/src/controlplane_client")


def _lint(where: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(LINT), "--no-cache"], cwd=where, capture_output=True, text=True, timeout=120, check=False
    )


def test_the_tree_keeps_every_dependency_rule():
    result = _lint(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "forbidden_import", "contract"),
    [
        ("registry/services.py", "from routing.models import Endpoint", "Apps stand in layers"),
        ("routing/governance/selectors.py", "from routing.serving import table", "routing.governance is not"),
        ("routing/serving/table.py", "from routing.governance import rules", "routing.serving is not"),
        ("monitoring/metrics.py", "from routing import models", "monitoring.metrics imports nothing"),
        ("routing/serving/views.py", "from monitoring import drift", "import neither experiments"),
        ("routing/governance/services.py", "from experiments import analysis", "import neither experiments"),
        ("monitoring/services.py", "from delivery import controller", "Apps stand in layers"),
        ("monitoring/selectors.py", "from experiments import models", "Apps stand in layers"),
        (
            "controlplane_client/client.py",
            "from routing import models",
            "controlplane_client (clients/python)",
        ),
    ],
)
def test_a_forbidden_import_fails_the_lint(tmp_path, module, forbidden_import, contract):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / CLIENT, tmp_path / CLIENT.name, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / module
    target.write_text(target.read_text() + f"\n{forbidden_import}  # noqa\n")
    result = _lint(tmp_path)
    assert result.returncode != 0
    assert contract in result.stdout and forbidden_import.split()[1] in result.stdout, result.stdout


def _private_imports(root: Path) -> list[str]:
    """``from <our module> import _name`` anywhere in our packages: another module's private name."""
    import ast

    found = []
    for package in (*PACKAGES, "clients/python/src/controlplane_client"):
        for path in sorted((root / package).rglob("*.py")):
            tree = ast.parse(path.read_text(), str(path))
            for node in ast.walk(tree):
                if not isinstance(node, ast.ImportFrom) or node.level or not node.module:
                    continue
                if node.module.split(".")[0] not in (*PACKAGES, "controlplane_client"):
                    continue
                for alias in node.names:
                    if alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root)}:{node.lineno} {node.module}.{alias.name}")
    return found


def test_no_module_imports_another_modules_private_name():
    """A name with a leading underscore is its module's own: what another module needs is public."""
    assert _private_imports(REPO) == []


def test_the_private_import_check_finds_one(tmp_path):
    for package in PACKAGES:
        shutil.copytree(REPO / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "clients", tmp_path / "clients", ignore=shutil.ignore_patterns("__pycache__"))
    (tmp_path / "delivery" / "sneaky.py").write_text(
        "from routing.serving.payloads import _reject_constant\n"
    )
    assert _private_imports(tmp_path) == ["delivery/sneaky.py:1 routing.serving.payloads._reject_constant"]
