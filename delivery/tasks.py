"""Background jobs of delivery: the rollout controller on beat's timer (a thin task over the controller).

Safe on any number of workers and beats at once: each plan is claimed per tick inside
``delivery.controller.rollout_tick`` (see its docstring), so no lease is needed for the job as a
whole and two controllers can share many plans.
"""

from __future__ import annotations

from celery import shared_task
from celery.app.task import Task
from django.db import InterfaceError, OperationalError

from delivery.bandits import bandit_controller_run
from delivery.controller import rollout_controller_run

TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(name="delivery.rollout_controller", bind=True, autoretry_for=TRANSIENT_ERRORS, max_retries=2)
def rollout_controller(self: Task) -> str:
    """One tick over every running plan (advance, hold or roll back each) and every bandit (new
    weights from its posteriors), each acted on once per tick across workers."""
    done = {**rollout_controller_run(), **bandit_controller_run()}
    return "success" if done else "skipped"
