"""The chart's alert rules and dashboards are exact copies of monitoring/ (one source of truth).

Helm cannot read outside the chart, so ``scripts/sync-chart-assets.sh`` copies
``monitoring/alerts/*.yml`` and ``monitoring/dashboards/*.json`` into
``helm/controlplane/files/``; these tests fail as soon as a copy differs or is missing.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.mlflow_server import REPO

pytestmark = pytest.mark.single_pass("postgresql")

SCRIPT = REPO / "scripts" / "sync-chart-assets.sh"
PAIRS = [
    ("monitoring/alerts", "helm/controlplane/files/alerts", "*.yml"),
    ("monitoring/dashboards", "helm/controlplane/files/dashboards", "*.json"),
]


@pytest.mark.parametrize(("source", "copy", "pattern"), PAIRS)
def test_the_chart_copies_are_byte_identical_to_monitoring(source: str, copy: str, pattern: str) -> None:
    originals = {p.name: p.read_bytes() for p in (REPO / source).glob(pattern)}
    copies = {p.name: p.read_bytes() for p in (REPO / copy).glob(pattern)}
    assert sorted(copies) == sorted(originals), "run scripts/sync-chart-assets.sh"
    for name, content in originals.items():
        assert copies[name] == content, f"{copy}/{name} differs: run scripts/sync-chart-assets.sh"


def _tree(tmp_path: Path) -> Path:
    """A scratch copy of the repository parts the sync script touches."""
    root = tmp_path / "repo"
    (root / "scripts").mkdir(parents=True)
    shutil.copy(SCRIPT, root / "scripts" / SCRIPT.name)
    for source, copy, _ in PAIRS:
        (root / source).mkdir(parents=True)
        (root / copy).mkdir(parents=True)
    (root / "monitoring/alerts/slo.yml").write_text("groups: []\n")
    (root / "monitoring/dashboards/overview.json").write_text('{"title": "x"}\n')
    return root


def _sync(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = root / "scripts" / SCRIPT.name
    return subprocess.run(["bash", str(script), *args], capture_output=True, text=True, timeout=30)


def test_the_sync_script_copies_new_and_changed_files_and_removes_stale_ones(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    (root / "helm/controlplane/files/alerts/old.yml").write_text("groups: []\n")
    assert _sync(root, "--check").returncode == 1
    assert _sync(root).returncode == 0
    assert (root / "helm/controlplane/files/dashboards/overview.json").read_text() == '{"title": "x"}\n'
    assert not (root / "helm/controlplane/files/alerts/old.yml").exists()
    assert _sync(root, "--check").returncode == 0


def test_the_sync_check_names_a_copy_that_drifted(tmp_path: Path) -> None:
    root = _tree(tmp_path)
    assert _sync(root).returncode == 0
    (root / "monitoring/alerts/slo.yml").write_text("groups: [] # edited\n")
    result = _sync(root, "--check")
    assert result.returncode == 1
    assert "helm/controlplane/files/alerts/slo.yml" in result.stdout
