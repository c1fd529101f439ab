"""`hotline worker`: run the transcription worker pool in the foreground (Ctrl-C / SIGTERM stops it cleanly)."""

from __future__ import annotations

import argparse
import sys

from config import Settings


def register(sub: argparse._SubParsersAction) -> None:
    worker = sub.add_parser("worker", help="run transcription workers (Vosk) on the job queue")
    worker.add_argument("--processes", type=int, default=None,
                        help="bulk worker processes (default: asr.workers; 0 = one per core)")
    worker.add_argument("--fast-path-workers", type=int, default=1,
                        help="extra workers reserved for IVR description clips (default: 1)")
    worker.set_defaults(func=run_worker)


def run_worker(args: argparse.Namespace, settings: Settings) -> int:
    from asr.pool import PoolConfig, PoolError, WorkerPool  # noqa: PLC0415 - keep `hotline --help` light

    if args.processes is not None and args.processes < 0 or args.fast_path_workers < 0:
        sys.stderr.write("hotline worker: process counts must be >= 0\n")
        return 2
    config = PoolConfig.from_settings(settings, processes=args.processes, fast_path_workers=args.fast_path_workers,
                                      settings_file=args.config, log_level=args.log_level)
    try:
        pool = WorkerPool(config)
    except PoolError as exc:
        sys.stderr.write(f"hotline worker: {exc}\n")
        return 2
    sys.stdout.write(f"hotline worker: {config.processes} bulk + {config.fast_path_workers} fast-path workers "
                     f"on {settings.database.url.split('@')[-1]}\n")
    sys.stdout.flush()
    pool.run_forever()
    return 0
