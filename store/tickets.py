"""Ticket numbers (工单编号): 14 digits, YYYYMMDD in the hotline's time zone + a 6-digit daily sequence.

One atomic ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` per number: PostgreSQL's row lock and SQLite's
single writer (``BEGIN IMMEDIATE``) make concurrent allocations distinct; numbers are never reused.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from store.models import utcnow

DAILY_LIMIT = 999_999


class TicketSequenceExhausted(Exception):
    """More than 999,999 tickets in one day."""


_ALLOCATE = text(
    "INSERT INTO ticket_sequences (day, last_value) VALUES (:day, 1) "
    "ON CONFLICT (day) DO UPDATE SET last_value = ticket_sequences.last_value + 1 "
    "RETURNING last_value"
)


def ticket_day(now: datetime, tz: str) -> str:
    return now.astimezone(ZoneInfo(tz)).strftime("%Y%m%d")


def allocate_ticket_no(session: Session, tz: str = "Asia/Shanghai", now: datetime | None = None) -> str:
    """Next ticket number for the day of ``now`` (default: the current time) in time zone ``tz``.

    Runs inside the caller's write transaction: the increment commits or rolls back with it, so a number is
    handed out only together with the ticket that stores it.
    """
    day = ticket_day(now or utcnow(), tz)
    value = session.execute(_ALLOCATE, {"day": day}).scalar_one()
    if value > DAILY_LIMIT:
        raise TicketSequenceExhausted(f"ticket sequence for {day} exhausted")
    return f"{day}{value:06d}"
