"""WSGI entry point for gunicorn (``controlplane.wsgi:application``) and ``manage.py runserver``.

``application`` is ``controlplane.dispatch.ServingDispatch`` around Django's handler: the scoring
routes go straight to their view, every other path through Django unchanged.

The serving half starts before the server accepts requests (``routing.serving.worker``): under
gunicorn in the ``post_worker_init`` hook of ``controlplane/gunicorn.conf.py`` (which sets
``CONTROLPLANE_SERVING_STARTED_BY``), under any other server here, when the app is loaded. Never
load this module in a process that forks workers afterwards (gunicorn's ``--preload``).
"""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "controlplane.settings")

_django = get_wsgi_application()

from controlplane.dispatch import ServingDispatch  # noqa: E402 - needs the settings configured above

# /predict straight to its view, everything else through Django's handler (controlplane.dispatch).
application = ServingDispatch(_django)

if os.environ.get("CONTROLPLANE_SERVING_STARTED_BY") != "gunicorn":
    from routing.serving.worker import worker_start

    worker_start()
