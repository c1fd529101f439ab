"""Named errors of the recording life-cycle."""

from __future__ import annotations


class RecorderError(Exception):
    """Base of recorder errors."""


class RecordingRejected(RecorderError):
    """A spool file (or set of files) cannot be archived; ``reason`` is stored as the quarantine reason."""

    def __init__(self, reason: str, path: str | None = None) -> None:
        super().__init__(f"{path}: {reason}" if path else reason)
        self.reason = reason
        self.path = path


class CallNotComplete(RecorderError):
    """The call record is still open (no hangup yet): its recording cannot be checked against the call times."""


class ArchiveMismatch(RecorderError):
    """An archived row's file is missing or no longer hashes to the stored sha256."""


class RecordingNotFound(RecorderError, LookupError):
    """No ``recordings`` row with that id."""
