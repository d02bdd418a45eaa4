"""Who may do what: the one table of action -> permission that the admin and the API both use.

The services call ``permission_check`` themselves, so no front door can forget it. The groups
("data scientist", "approver", "SRE") are created with these permissions by migration 0001;
0005 gives the SRE group the service-token permissions.
"""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser

from routing.governance.errors import GovernanceError

Actor = AbstractBaseUser | AnonymousUser | str

ACTION_PERMISSIONS: dict[str, str] = {
    "endpoint_create": "routing.add_endpoint",
    "challenger_start": "routing.start_challenger",
    "shadow_set": "routing.start_challenger",
    "shadow_remove": "routing.start_challenger",
    "challenger_retire": "routing.start_challenger",
    "traffic_split_set": "routing.set_traffic",
    "promotion_request": "routing.request_promotion",
    "promotion_approve": "routing.approve_promotion",
    "promotion_reject": "routing.approve_promotion",
    "endpoint_promote": "routing.promote_endpoint",
    "endpoint_rollback": "routing.rollback_endpoint",
    "endpoint_pause": "routing.pause_endpoint",
    "endpoint_resume": "routing.pause_endpoint",
    # A split that hands challengers most of the traffic, asked for by one person (see
    # routing.governance.traffic_changes); approving it is promotion_approve.
    "traffic_change_request": "routing.set_traffic",
    # Service tokens for /predict (routing.governance.tokens); the SRE group has these (migration 0005).
    "service_token_create": "routing.create_token",
    "service_token_revoke": "routing.revoke_token",
    "service_token_update": "routing.edit_token_scope",
}

ROLE_GROUPS = ("data scientist", "approver", "SRE")


def actor_can(actor: Actor, action: str) -> bool:
    """True when ``actor`` may perform ``action``; a string actor is the system (commands)."""
    if isinstance(actor, str):
        return True
    if not actor.is_authenticated or not actor.is_active:
        return False
    return actor.has_perm(ACTION_PERMISSIONS[action])


def permission_check(actor: Actor, action: str) -> None:
    """Raise a 403 ``GovernanceError`` unless ``actor`` may perform ``action``."""
    if not actor_can(actor, action):
        who = actor if isinstance(actor, str) else (actor.get_username() or "anonymous")
        raise GovernanceError(
            "forbidden",
            f"{who} lacks the permission {ACTION_PERMISSIONS[action]!r} needed to {action.replace('_', ' ')}.",
            status=403,
        )
