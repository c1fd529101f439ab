"""Who may see what: the one place holding the role rules for calls and claimant identity.

* an agent sees the calls they handled (``Call.agent_id == user.agent_id``) plus their live screen pop;
* QA, supervisors and admins see every call;
* a confidential claimant's name and phone numbers (``claimant_name``, ``contact_phone``,
  ``caller_number``) are masked for everyone except admins and the handling agent;
* the ticket of a call is written by its handling agent, a supervisor or an admin.

Functions take a :class:`~web.state.CurrentUser` and either a ``Call`` row or an Appendix C record dict.
"""

from __future__ import annotations

from typing import Any, Mapping

from sqlalchemy import ColumnElement, false, true

from store.masking import mask_identity
from store.models import Call
from web.state import CurrentUser

ROLES_SEEING_ALL_CALLS = frozenset({"qa", "supervisor", "admin"})
ROLES_SEEING_IDENTITY = frozenset({"admin"})
ROLES_EDITING_ANY_TICKET = frozenset({"supervisor", "admin"})


def _get(obj: Call | Mapping[str, Any], name: str) -> Any:
    return obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)


def is_handling_agent(user: CurrentUser, call: Call | Mapping[str, Any]) -> bool:
    """The user is the agent who took this call."""
    return bool(user.agent_id) and _get(call, "agent_id") == user.agent_id


def can_view_call(user: CurrentUser | None, call: Call | Mapping[str, Any]) -> bool:
    if user is None:
        return False
    return user.role in ROLES_SEEING_ALL_CALLS or is_handling_agent(user, call)


def call_scope(user: CurrentUser) -> ColumnElement[bool]:
    """A WHERE clause restricting a ``select(Call)`` to the calls ``user`` may see (for lists and searches)."""
    if user.role in ROLES_SEEING_ALL_CALLS:
        return true()
    if user.agent_id:
        return Call.agent_id == user.agent_id
    return false()


def sees_identity(user: CurrentUser, call: Call | Mapping[str, Any]) -> bool:
    """Whether the claimant's name and numbers are shown unmasked to this user."""
    if not _get(call, "confidential"):
        return True
    return user.role in ROLES_SEEING_IDENTITY or is_handling_agent(user, call)


def visible_record(user: CurrentUser, record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as this user may see it (identity masked for confidential claimants)."""
    return dict(record) if sees_identity(user, record) else mask_identity(record)


def can_edit_ticket(user: CurrentUser | None, call: Call | Mapping[str, Any]) -> bool:
    if user is None:
        return False
    return user.role in ROLES_EDITING_ANY_TICKET or is_handling_agent(user, call)


def can_play_recording(user: CurrentUser | None, call: Call | Mapping[str, Any]) -> bool:
    """Playback and download follow the viewing rule (and are audited by the caller: ``audit_request``)."""
    return can_view_call(user, call)
