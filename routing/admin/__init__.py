"""routing's admin pages, in two files that mirror the app's halves.

``governance``: the endpoint page with its action buttons, variants, promotion requests and
"start as challenger" on a model version. ``serving``: service tokens and the prediction log.
``workers``: the serving workers' status rows (read-only). ``batch``: batch scoring jobs with
progress bars (read-only).
Django's admin autodiscovery imports this package; importing both modules registers their pages.
"""

from __future__ import annotations

from routing.admin import batch, governance, serving, workers

__all__ = ["batch", "governance", "serving", "workers"]
