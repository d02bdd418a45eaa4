"""Installs do not float: lock files with hashes, and the venv holds exactly what they pin."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from tests.mlflow_server import REPO

pytestmark = pytest.mark.single_pass("postgresql")

HASHED_PIN = re.compile(
    r"^[A-Za-z0-9][A-Za-z0-9._-]*==\S+ \\\n(    --hash=sha256:[0-9a-f]{64}( \\)?\n)+", re.MULTILINE
)


def _direct(path: str) -> set[str]:
    names = set()
    for line in (REPO / path).read_text().splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==", line)
        if match:
            names.add(re.sub(r"[-_.]+", "-", match.group(1)).lower())
    return names


def _locked(path: str) -> dict[str, int]:
    """name -> number of hashes, for every pin of a lock file."""
    text = (REPO / path).read_text()
    out = {}
    for block in HASHED_PIN.finditer(text):
        name = block.group(0).split("==", 1)[0]
        out[re.sub(r"[-_.]+", "-", name).lower()] = block.group(0).count("--hash=sha256:")
    return out


def test_every_pin_of_both_lock_files_carries_hashes_and_every_direct_requirement_is_locked():
    for lock, direct in (
        ("requirements.lock", "requirements.txt"),
        ("requirements-dev.lock", "requirements-dev.txt"),
    ):
        pinned = _locked(lock)
        lines = [line for line in (REPO / lock).read_text().splitlines() if re.match(r"^[A-Za-z0-9]", line)]
        assert len(pinned) == len(lines) > 100, f"{lock}: a pin without hashes"
        assert _direct(direct) <= set(pinned), f"{lock} misses {_direct(direct) - set(pinned)}"
        assert not re.search(r"^-e ", (REPO / lock).read_text(), re.MULTILINE), (
            "an editable line breaks --require-hashes"
        )


def test_the_venv_holds_exactly_the_lock_and_the_client_is_editable():
    result = subprocess.run(
        [sys.executable, "scripts/check_lock.py"], cwd=REPO, capture_output=True, text=True
    )

    assert result.returncode == 0, result.stderr
    assert "lock ok" in result.stdout


def test_make_installs_the_venv_from_the_lock_with_hashes():
    makefile = (REPO / "Makefile").read_text()
    stamp = makefile.split("$(STAMP):", 1)[1].split("\n\n", 1)[0]
    assert "requirements-dev.lock" in stamp.splitlines()[0]
    assert "--require-hashes" in stamp and "-r requirements-dev.lock" in stamp
    assert "-e ./clients/python" in stamp and "--no-deps" in stamp
    assert re.search(r"^lock:", makefile, re.MULTILINE) and "--generate-hashes" in makefile
