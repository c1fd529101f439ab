"""`hotline serve`: the whole service in one process.

FastAGI server (flows + call-record journal), web app, embedded transcription workers, the recording
sweeper and the stale-record sweep, started in that order and stopped in reverse. Refuses to start on an
out-of-date schema, bad flow files or missing prompts, naming the command that fixes each.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import signal
import sys
from contextlib import AsyncExitStack
from typing import Callable

from aiohttp import web

from agi.flowdef import FlowError
from agi.flows import FlowRuntime, MissingPrompts, adopt_orphan_journals
from agi.journal import JournalError
from agi.process_agi import FLOW_HANDLERS, resolve_handler
from agi.server import options_from_settings, start_server_async
from asr.pool import PoolConfig, WorkerPool
from config import Settings
from config.log import get_logger
from recorder.finalize import finalize_pending
from store.db import Database, SchemaOutOfDate, open_database
from store.migrate import check_schema
from store.models import utcnow
from store.sweep import sweep as sweep_stale_records
from web.app import create_app, ensure_admin

log = get_logger("serve")

SWEEP_INTERVAL_SECONDS = 15.0


def register(sub: argparse._SubParsersAction) -> None:
    serve = sub.add_parser("serve", help="run the FastAGI server, web app, workers and recording sweeper")
    serve.add_argument("--workers", type=int, default=None, help="embedded transcription workers (default: asr.embedded_workers)")
    serve.add_argument("--no-agi", action="store_true", help="do not run the FastAGI server")
    serve.add_argument("--no-web", action="store_true", help="do not run the web app")
    serve.set_defaults(func=run_serve)


def run_serve(args: argparse.Namespace, settings: Settings) -> int:
    db = open_database(settings.database.url, settings.database.echo)
    try:
        check_schema(db)
    except SchemaOutOfDate as exc:
        sys.stderr.write(f"hotline serve: {exc}\n")
        db.dispose()
        return 2
    password = ensure_admin(db)
    if password is not None:
        sys.stderr.write(f"首次启动：已创建管理员 admin，一次性密码 {password} （只显示这一次，请登录后修改）\n")
    try:
        return asyncio.run(_serve(args, settings, db))
    except (FlowError, MissingPrompts, JournalError) as exc:
        sys.stderr.write(f"hotline serve: {exc}\n")
        return 2
    except OSError as exc:
        if exc.errno != errno.EADDRINUSE:
            raise
        sys.stderr.write(f"hotline serve: cannot listen: {exc.strerror} ({exc}); is another `hotline serve` "
                         f"running? Change agi.port / web.port or stop it\n")
        return 2
    finally:
        db.dispose()


async def _stopped_within(stop: asyncio.Event, seconds: float) -> bool:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except asyncio.TimeoutError:
        return False


async def _every(stop: asyncio.Event, interval: float, work: Callable[[], int], done_event: str, failed_event: str,
                 first_wait: bool = False) -> None:
    """Run the blocking ``work`` in a thread every ``interval`` seconds until ``stop``, logging how many things it
    handled. A failure (e.g. database down) is logged and retried next time: it must not stop the service."""
    loop = asyncio.get_running_loop()
    if first_wait and await _stopped_within(stop, interval):
        return
    while not stop.is_set():
        try:
            count = await loop.run_in_executor(None, work)
            if count:
                log.info(done_event, count=count)
        except Exception:  # noqa: BLE001 - see the docstring
            log.exception(failed_event)
        if await _stopped_within(stop, interval):
            return


async def _sweep_recordings(db: Database, settings: Settings, stop: asyncio.Event) -> None:
    """Finalize completed calls' recordings every few seconds (archive, checksum, enqueue transcription)."""
    await _every(stop, SWEEP_INTERVAL_SECONDS, lambda: len(finalize_pending(db, settings)),
                 "recordings_swept", "recording_sweep_failed")


async def _sweep_stale_records(db: Database, settings: Settings, stop: asyncio.Event,
                               interval: float | None = None) -> None:
    """Close call records left open (crash + unreachable ``h`` extension) every ``records.sweep_interval_seconds``.

    The first run waits one interval, so the journal of a restarted process is replayed before anything is judged
    stale."""
    await _every(stop, float(settings.records.sweep_interval_seconds) if interval is None else interval,
                 lambda: sweep_stale_records(db, utcnow(), settings.records.max_open_seconds,
                                             tz=settings.general.timezone).count,
                 "stale_records_swept", "stale_record_sweep_failed", first_wait=True)


async def _serve(args: argparse.Namespace, settings: Settings, db: Database) -> int:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async with AsyncExitStack() as stack:
        if not args.no_agi:
            runtime = await loop.run_in_executor(None, lambda: FlowRuntime.start(settings, database=db))
            stack.callback(runtime.stop)
            runtime.install(FLOW_HANDLERS)
            adopted = await loop.run_in_executor(None, adopt_orphan_journals, settings, db)
            if adopted:
                log.info("process_agi_journals_adopted", count=adopted)
            server = await start_server_async(resolve=resolve_handler, options=options_from_settings(settings.agi))
            stack.push_async_callback(server.stop_async)

        if not args.no_web:
            runner = web.AppRunner(create_app(settings, db), access_log=None)
            await runner.setup()
            stack.push_async_callback(runner.cleanup)
            await web.TCPSite(runner, settings.web.host, settings.web.port).start()
            log.info("web_listening", host=settings.web.host, port=settings.web.port)

        workers = settings.asr.embedded_workers if args.workers is None else args.workers
        if workers > 0:
            pool = WorkerPool(PoolConfig.from_settings(settings, processes=workers))
            await pool.astart()
            stack.push_async_callback(pool.astop)

        sweeper = asyncio.create_task(_sweep_recordings(db, settings, stop))
        stack.push_async_callback(lambda: sweeper)  # awaited after `stop` is set
        record_sweeper = asyncio.create_task(_sweep_stale_records(db, settings, stop))
        stack.push_async_callback(lambda: record_sweeper)

        log.info("hotline_ready")
        await stop.wait()
        log.info("hotline_stopping")
    return 0
