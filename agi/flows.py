"""Wiring: settings → flows, prompts check, journal + applier, services → one handler per flow for the server.

``hotline serve`` (owned by the server's author) should do::

    runtime = FlowRuntime.start(settings)          # FlowError / MissingPrompts stop start-up
    runtime.install(FLOW_HANDLERS)                 # agi.process_agi.FLOW_HANDLERS: flow name → handler
    ... run agi.server with FLOW_HANDLERS ...
    runtime.stop()                                 # flushes the journal, stops the applier

A handler is ``handler(agi, request)``; it runs the flow over the channel and returns when the flow ends
(the server then closes the connection). It never raises for a caller's behaviour.
"""

from __future__ import annotations

import os
import shutil

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, MutableMapping

from agi.applier_process import ApplierProcess
from agi.calls import CallRecords, StoreServices, apply_entries
from agi.channel import Channel
from agi.engine import EngineConfig, FlowRun
from agi.flowdef import Flow, load_flows
from agi.hours import BusinessHours
from agi.journal import Journal, JournalApplier, JournalError
from agi.prompts import check_prompts
from config import Settings
from config.log import get_logger, unbind_call
from store.db import Database, open_database

log = get_logger(__name__)

Handler = Callable[[Any, Any], None]


class MissingPrompts(Exception):
    """Flows use sounds that do not exist under settings.agi.sounds_dir (run `hotline prompts build`)."""

    def __init__(self, missing: list[str], sounds_dir: str) -> None:
        self.missing = missing
        super().__init__(f"{len(missing)} prompt(s) missing under {sounds_dir}: {', '.join(missing)} "
                         f"(run `hotline prompts build`)")


def engine_config(settings: Settings) -> EngineConfig:
    return EngineConfig(access_number=settings.general.access_number, default_queue=settings.queue.default_queue,
                        long_wait_seconds=settings.queue.long_wait_seconds, timezone=settings.general.timezone,
                        callback_deadline_hours=settings.kpi.callback_deadline_hours)


def request_args(request: Any, channel: Channel) -> tuple[str, ...]:
    args = getattr(request, "args", None)
    if args is not None:
        return tuple(str(a) for a in args)
    env = channel.env
    out = []
    i = 1
    while f"agi_arg_{i}" in env:
        out.append(env[f"agi_arg_{i}"])
        i += 1
    return tuple(out)


@dataclass
class FlowRuntime:
    settings: Settings
    flows: dict[str, Flow]
    journal: Journal
    applier: JournalApplier | ApplierProcess
    records: CallRecords
    services: StoreServices
    config: EngineConfig
    database: Database

    @classmethod
    def start(cls, settings: Settings, database: Database | None = None, check_sounds: bool = True,
              start_applier: bool = True, journal_dir: str | Path | None = None,
              applier_mode: str | None = None) -> "FlowRuntime":
        """``applier_mode`` ("process" | "thread") overrides ``settings.agi.applier``."""
        flows = load_flows(settings.agi.flows_dir)
        if check_sounds:
            missing = check_prompts(flows, settings.agi.sounds_dir)
            if missing:
                raise MissingPrompts(missing, settings.agi.sounds_dir)
        db = database or open_database(settings.database.url, settings.database.echo)
        journal = Journal(journal_dir or settings.agi.journal_dir)
        tz = settings.general.timezone
        applier: JournalApplier | ApplierProcess
        if (applier_mode or settings.agi.applier) == "process":
            applier = ApplierProcess(journal, db.url, tz)
        else:
            applier = JournalApplier(journal, lambda entries: apply_entries(db, entries, tz))
        clip_dir = str(Path(settings.recordings.spool_dir).resolve() / "ivr")
        Path(clip_dir).mkdir(parents=True, exist_ok=True)
        services = StoreServices(lambda: db, BusinessHours.from_settings(settings.hours, tz), clip_dir, tz,
                                 store_up=lambda: applier.store_up)
        runtime = cls(settings, flows, journal, applier, CallRecords(journal), services, engine_config(settings), db)
        if start_applier:
            applier.start()
        log.info("flows_loaded", flows=sorted(flows))
        return runtime

    def run(self, flow_name: str, channel: Channel, args: tuple[str, ...] = (), linkedid: str | None = None) -> Any:
        try:
            return FlowRun(self.flows, channel, self.records, self.services, self.config, args,
                           linkedid=linkedid).run(flow_name)
        finally:
            unbind_call()

    def handler(self, flow_name: str) -> Handler:
        def handle(agi: Any, request: Any) -> None:
            self.run(flow_name, agi, request_args(request, agi), getattr(request, "linkedid", None))
        handle.__name__ = f"flow_{flow_name.replace('-', '_')}"
        return handle

    def install(self, registry: MutableMapping[str, Handler]) -> None:
        """Register one handler per flow (name = the FastAGI script name)."""
        for name in self.flows:
            registry[name] = self.handler(name)

    def stop(self) -> bool:
        """Apply what is journaled (up to 5 s), then stop. True when nothing was left unapplied."""
        drained = self.applier.drain(timeout=5.0) and not self.applier.deferred
        self.applier.stop()
        self.journal.close()
        self.services.close()
        return drained


__all__ = ["FlowRuntime", "MissingPrompts", "engine_config", "request_args"]


# --------------------------------------------------------------------------- process AGI / lazy registration
# agi.process_agi imports this module when a flow name is not registered yet (FLOW_MODULES). Importing it
# registers one handler per flow file; the runtime behind them starts on the first call with the process's
# settings. `hotline serve` replaces these with `FlowRuntime.start(settings).install(FLOW_HANDLERS)`.
_lazy_lock = __import__("threading").Lock()
_lazy_runtime: FlowRuntime | None = None


PROCESS_JOURNALS = "proc"


def process_journal_dir(journal_dir: str | Path, pid: int | None = None) -> Path:
    """Process AGI runs one Python process per call, so each keeps its own journal directory."""
    return Path(journal_dir) / PROCESS_JOURNALS / str(pid if pid is not None else os.getpid())


def adopt_orphan_journals(settings: Settings, database: Database) -> int:
    """Apply and remove the journals left by process-AGI calls that ended before the store took their records
    (database down, process killed). A directory still locked by a live process is skipped. Returns the
    number of directories emptied."""
    root = Path(settings.agi.journal_dir) / PROCESS_JOURNALS
    emptied = 0
    for directory in sorted(root.glob("*")) if root.is_dir() else ():
        if directory == process_journal_dir(settings.agi.journal_dir):
            continue
        try:
            journal = Journal(directory)
        except JournalError:
            continue  # its process is still running the call
        applier = JournalApplier(journal, lambda entries: apply_entries(database, entries, settings.general.timezone))
        applier.start()
        done = applier.drain(timeout=5.0) and not applier.deferred
        applier.stop()
        journal.close()
        if done:
            shutil.rmtree(directory, ignore_errors=True)
            emptied += 1
        else:
            log.warning("orphan_journal_kept", directory=str(directory), error=applier.last_error)
    return emptied


def _stop_process_runtime(runtime: FlowRuntime, directory: Path) -> None:
    if runtime.stop():
        shutil.rmtree(directory, ignore_errors=True)
    else:
        log.warning("process_journal_kept", directory=str(directory), error=runtime.applier.last_error)


def default_runtime() -> FlowRuntime:
    """The runtime of a process-AGI call (`hotline-agi <flow>`): its own journal directory, removed once applied;
    journals of earlier processes that could not reach the store are adopted after the call starts."""
    global _lazy_runtime
    with _lazy_lock:
        if _lazy_runtime is None:
            import atexit

            from config import load_settings
            settings = load_settings()
            directory = process_journal_dir(settings.agi.journal_dir)
            # one call per process: a second process for the applier would cost more than it saves
            runtime = FlowRuntime.start(settings, check_sounds=False, journal_dir=directory, applier_mode="thread")
            atexit.register(_stop_process_runtime, runtime, directory)
            atexit.register(adopt_orphan_journals, settings, runtime.database)
            _lazy_runtime = runtime
        return _lazy_runtime


def _lazy_handler(name: str) -> Handler:
    def handle(agi: Any, request: Any) -> None:
        default_runtime().handler(name)(agi, request)
    return handle


def _register_on_import() -> None:
    try:
        from agi.process_agi import FLOW_HANDLERS
        from config import load_settings
        names = load_flows(load_settings().agi.flows_dir)
    except Exception as exc:  # noqa: BLE001 - a bad flow file is reported by `hotline flows check` / serve
        log.error("flows_not_registered", error=str(exc))
        return
    for name in names:
        FLOW_HANDLERS.setdefault(name, _lazy_handler(name))


_register_on_import()
