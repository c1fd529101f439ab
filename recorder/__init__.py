"""Recording life-cycle: finalize MixMonitor legs, verify, archive, quarantine and retention.

Public entry points (``hotline serve`` runs the sweeper periodically)::

    recorder.finalize.finalize_pending(db, settings, *, settle_seconds=30.0, now=None) -> list[FinalizeResult]
    recorder.finalize.finalize_record(db, settings, record_id) -> list[FinalizeResult]
    recorder.retention.purge(db, settings, *, older_than_days=None, dry_run=False, now=None, actor=...) -> list[PurgeResult]
    recorder.verify.verify_archive(db, settings, record_id=None) -> VerifyReport
"""
