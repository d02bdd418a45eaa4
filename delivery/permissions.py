"""Who may do what with rollout plans: delivery's actions mapped onto routing's permissions.

A plan changes traffic and may end in a promotion, so it asks for the permissions the same
changes need when a person makes them by hand (the role groups of routing's migrations).
"""

from __future__ import annotations

from routing.governance.errors import GovernanceError
from routing.governance.permissions import Actor

ACTION_PERMISSIONS: dict[str, str] = {
    "rollout_start": "routing.start_challenger",
    "rollout_pause": "routing.set_traffic",
    "rollout_resume": "routing.set_traffic",
    "rollout_abort": "routing.start_challenger",
    "rollout_approve": "routing.approve_promotion",
    # Bandit mode moves weights on its own: whoever may set the split may turn it on or off.
    "bandit_start": "routing.set_traffic",
    "bandit_stop": "routing.set_traffic",
}


def rollout_permission_check(actor: Actor, action: str) -> None:
    """Raise a 403 ``GovernanceError`` unless ``actor`` may perform ``action`` (a string actor is the system)."""
    if isinstance(actor, str):
        return
    perm = ACTION_PERMISSIONS[action]
    if actor.is_authenticated and actor.is_active and actor.has_perm(perm):
        return
    who = actor.get_username() or "anonymous"
    raise GovernanceError(
        "forbidden", f"{who} lacks the permission {perm!r} needed to {action.replace('_', ' ')}.", status=403
    )
