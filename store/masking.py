"""Masking of claimant identity (confidential claimants, role rules, exports)."""

from __future__ import annotations

from typing import Any, Mapping

IDENTITY_FIELDS = ("claimant_name", "contact_phone", "caller_number")


def mask_number(number: str | None) -> str | None:
    """Keep the last four digits: ``13800138000`` → ``*******8000``."""
    if not number:
        return number
    if len(number) <= 4:
        return "*" * len(number)
    return "*" * (len(number) - 4) + number[-4:]


def mask_name(name: str | None) -> str | None:
    """Keep the first character: ``张三丰`` → ``张**``."""
    if not name:
        return name
    return name[0] + "*" * (len(name) - 1) if len(name) > 1 else "*"


def mask_identity(record: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the record with the claimant's name and phone numbers masked."""
    out = dict(record)
    out["claimant_name"] = mask_name(out.get("claimant_name"))
    out["contact_phone"] = mask_number(out.get("contact_phone"))
    out["caller_number"] = mask_number(out.get("caller_number"))
    return out
