"""Model versions on local disk, so a worker (re)started while MLflow is down or hung serves at once.

Keyed by model, version and artifact digest::

    <root>/index/<model>/<version>.json   {"source": <the registry's source URI>, "digest": <sha256>}
    <root>/blobs/<digest>/                the model directory as MLflow stores it (MLmodel, weights, ...)

The index says which artifact a version is; it counts only while the registry (the database
mirror) still names the same ``source``, so a model deleted and re-created under the same name
never gets the old weights. The blob is content-addressed: its name is the SHA-256 over every
file's relative path and content, checked again on every load, so a corrupted or half-written
entry is never served (it is removed and downloaded again). Versions that share an artifact share
one blob. Several workers may fill the cache at once: each downloads into its own temporary
directory and renames it into place; the loser discards its copy.

``var/model-cache`` under ``make run`` (``MODEL_CACHE_DIR``), a volume in the chart. Deleting the
directory is always safe: the next load downloads again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote

# A blob no worker has used for this long is removed when a worker prunes (a week).
UNUSED_FOR_SECONDS = 7 * 24 * 3600


def tree_digest(root: Path) -> str:
    """SHA-256 over every file below ``root``: relative path and content, in a stable order."""
    outer = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        inner = hashlib.sha256()
        with open(path, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                inner.update(chunk)
        outer.update(path.relative_to(root).as_posix().encode() + b"\0" + inner.digest())
    return outer.hexdigest()


class ModelCache:
    """The cache under one root directory (see the module docstring for the layout)."""

    def __init__(self, root: Path | str) -> None:
        self.root = Path(root)

    def _index(self, name: str, version: int) -> Path:
        return self.root / "index" / quote(name, safe="") / f"{int(version)}.json"

    def lookup(self, name: str, version: int, source: str) -> Path | None:
        """The verified local directory of this version, or None (not cached, moved, or corrupt)."""
        index = self._index(name, version)
        try:
            entry = json.loads(index.read_text())
        except (OSError, ValueError):
            return None
        if not source or entry.get("source") != source:
            return None
        blob = self.root / "blobs" / str(entry.get("digest", ""))
        if not blob.is_dir() or tree_digest(blob) != entry["digest"]:
            shutil.rmtree(blob, ignore_errors=True)  # corrupt or half-removed: never serve it
            index.unlink(missing_ok=True)
            return None
        with contextlib.suppress(OSError):
            os.utime(index)  # last use, for pruning
        return blob

    def store(self, name: str, version: int, source: str, fill: Callable[[Path], str | Path]) -> Path:
        """Download with ``fill(directory)`` (returns where the model landed), keep it, return its path."""
        tmp = self.root / "tmp" / uuid.uuid4().hex
        tmp.mkdir(parents=True)
        try:
            landed = Path(fill(tmp))
            digest = tree_digest(landed)
            blob = self.root / "blobs" / digest
            blob.parent.mkdir(parents=True, exist_ok=True)
            if not blob.is_dir():
                try:
                    os.rename(landed, blob)
                except OSError:
                    if not blob.is_dir():  # not another worker's identical copy: a real failure
                        raise
            if source:
                self._index_write(name, version, {"source": source, "digest": digest})
            return blob
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def _index_write(self, name: str, version: int, entry: dict[str, str]) -> None:
        index = self._index(name, version)
        index.parent.mkdir(parents=True, exist_ok=True)
        part = index.with_name(f".{index.name}.{uuid.uuid4().hex}")
        part.write_text(json.dumps(entry))
        os.replace(part, index)  # atomic: a reader sees the old entry or the new one

    def prune(self, unused_for: float = UNUSED_FOR_SECONDS) -> int:
        """Remove index entries unused for ``unused_for`` seconds and blobs no entry names; the count."""
        cutoff, removed = time.time() - unused_for, 0
        named: set[str] = set()
        for index in self.root.glob("index/*/*.json"):
            try:
                if index.stat().st_mtime < cutoff:
                    index.unlink()
                    removed += 1
                else:
                    named.add(json.loads(index.read_text()).get("digest", ""))
            except (OSError, ValueError):
                continue
        for blob in self.root.glob("blobs/*"):
            if blob.name not in named and blob.stat().st_mtime < cutoff:
                shutil.rmtree(blob, ignore_errors=True)
                removed += 1
        return removed
