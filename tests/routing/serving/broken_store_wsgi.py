"""The control plane's WSGI app, with ``mlflow.pyfunc`` unimportable in the first worker only.

``None`` in ``sys.modules`` makes every ``import mlflow.pyfunc`` raise ``ImportError`` from the
import system itself, as a half-imported mlflow does. The marker file (named by
``BROKEN_STORE_MARKER``) records the broken worker's pid, so later workers start normally.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

_marker = Path(os.environ["BROKEN_STORE_MARKER"])
if not _marker.exists():
    _marker.write_text(str(os.getpid()))
    sys.modules["mlflow.pyfunc"] = None  # type: ignore[assignment]

from controlplane.wsgi import application  # noqa: E402

__all__ = ["application"]
