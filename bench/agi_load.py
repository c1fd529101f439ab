"""FastAGI load benchmark: emulated Asterisk calls against the FastAGI server (in its own process).

    .venv/bin/python bench/agi_load.py                       # all phases, default sizes
    .venv/bin/python bench/agi_load.py --hold 2000 --walks 5000 --process-calls 40 --flow bench-ivr

Phases:
  hold        N calls held at once in EXEC Queue (real time): peak concurrent calls, server peak RSS
  throughput  complete IVR walks with no emulated media time: walks/s, per-command server overhead p50/p99
              (emulator-side: from writing a reply to reading the next command, i.e. the server's turnaround)
  open loop   (--rate R) calls arriving at R a second (Poisson) with real-time media: per-command turnaround
              under a given offered load rather than the queueing of a saturated closed loop
  process     the same walk as process AGI, one `hotline-agi` Python process per call (classic pyst2 way)

The shipped flows (``--flow main``) run as `hotline serve` runs them: FlowRuntime with the fsync'd journal and
the applier (``--applier process|thread``, default settings.agi.applier); the throughput phase then waits
until every record is complete in the store and says how long after the last walk that was. Settings come
from the environment as usual (HOTLINE_DATABASE__URL, HOTLINE_AGI__JOURNAL_DIR, …).

`--flow NAME` uses a handler from ``agi.process_agi.FLOW_HANDLERS`` (e.g. the real "main" flow once the flow
engine registers it); the default "bench-ivr" is a built-in realistic walk defined here.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from agi.emulator import CallerScript, CallSpec, EmulatorConfig, QueueOutcome, run_call, run_process_call  # noqa: E402
from agi.process_agi import lookup_handler, resolve_handler  # noqa: E402
from bench.ivr_flow import BENCH_FLOW  # noqa: E402  (registers the "bench-ivr" flow)

def _store_complete(expected: int, timeout_s: float) -> tuple[int, float]:
    """Wait until the store holds ``expected`` complete call records (the journal applier's lag)."""
    from sqlalchemy import func, select

    from config import load_settings
    from store.db import open_database
    from store.models import Call

    db = open_database(load_settings().database.url)
    started = time.perf_counter()
    try:
        while True:
            with db.session() as session:
                complete = session.scalar(select(func.count()).select_from(Call).where(Call.state == "complete")) or 0
            waited = time.perf_counter() - started
            if complete >= expected or waited > timeout_s:
                return complete, waited
            time.sleep(0.01)
    finally:
        db.dispose()


class _Servers:
    """The FastAGI server process(es) under test; figures are summed over them (and their children)."""

    def __init__(self, args: argparse.Namespace, log: Any) -> None:
        self.procs: list[subprocess.Popen[str]] = []
        self.port = 0
        for index in range(max(args.servers, 1)):
            proc = subprocess.Popen([sys.executable, __file__, "--serve", "--flow", args.flow, "--port", str(self.port),
                                     "--index", str(index), "--servers", str(args.servers), "--log-level", args.log_level]
                                    + (["--applier", args.applier] if args.applier else []),
                                    stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
            assert proc.stdout is not None
            self.port = int(proc.stdout.readline().split()[1])
            self.procs.append(proc)

    @property
    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(p.pid) for p in self.procs)

    def peak_rss_mb(self) -> float:
        return sum(peak_rss_mb(p.pid) for p in self.procs)

    def rss_mb(self) -> float:
        return sum(current_rss_mb(p.pid) for p in self.procs)

    def stop(self) -> None:
        for p in self.procs:
            assert p.stdin is not None
            p.stdin.close()
        for p in self.procs:
            p.wait(30)


# ---------------------------------------------------------------- server process
def serve(flow: str, port: int, applier: str | None = None, log_level: str = "INFO", index: int = 0,
          reuse_port: bool = False) -> int:
    from agi.server import ServerOptions, start_server
    from config.log import configure_logging

    configure_logging(json=True, level=log_level)
    runtime = None
    if flow != BENCH_FLOW:
        # the shipped flows wired as `hotline serve` wires them (journal, applier as settings.agi.applier says)
        from agi.flows import FlowRuntime
        from agi.process_agi import FLOW_HANDLERS
        from config import load_settings
        settings = load_settings()
        journal = Path(settings.agi.journal_dir) / f"server-{index}" if reuse_port else None
        runtime = FlowRuntime.start(settings, applier_mode=applier, journal_dir=journal)
        runtime.install(FLOW_HANDLERS)
    lookup_handler(flow)  # fail early on an unknown flow
    # each script to its own flow, as `hotline serve` does: the Queue gosub's agent session runs agent-connect
    server = start_server(resolve=resolve_handler, options=ServerOptions(port=port, max_sessions=10000,
                                                                         stop_grace_s=2.0, reuse_port=reuse_port))
    assert server.address is not None
    sys.stdout.write(f"READY {server.address[1]}\n")
    sys.stdout.flush()
    try:
        sys.stdin.readline()  # the parent closes stdin to stop us
    finally:
        server.stop(2.0)
        if runtime is not None:
            runtime.stop()
    return 0


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_pids(pid: int) -> list[int]:
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            out.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return out


def cpu_seconds(pid: int) -> float:
    """CPU time of the process and its live children (the journal applier process)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    own = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own + sum(cpu_seconds(c) for c in child_pids(pid))


def current_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class PhaseResult:
    calls: int
    ok: int
    seconds: float
    turnarounds_ms: list[float]
    first_ms: list[float]

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(int(q * len(ordered)), len(ordered) - 1)]


def _spec(i: int, flow: str, hold_s: float, digits: str) -> CallSpec:
    return CallSpec(script=f"{flow}?queue=hotline&timeout=600", callerid=f"1380013{i % 10000:04d}",
                    extension="12345", context="from-pstn",
                    caller=CallerScript(responses=(digits,), queue=QueueOutcome("answered", agent="1001",
                                                                                 after_s=hold_s, talk_s=0.0)))


@dataclass
class _Tally:
    """What the calls of one phase saw, collected as they end."""

    turnarounds_ms: list[float] = field(default_factory=list)
    first_ms: list[float] = field(default_factory=list)
    ok: int = 0
    active: int = 0
    peak: int = 0

    async def call(self, port: int, spec: CallSpec, config: EmulatorConfig) -> None:
        self.active += 1
        self.peak = max(self.peak, self.active)
        try:
            report = await run_call("127.0.0.1", port, spec, config)
        finally:
            self.active -= 1
        if report.error is None and report.commands and report.queue is not None:
            self.ok += 1
            self.turnarounds_ms.extend(t * 1000 for t in report.turnarounds_s)
            if report.first_command_s is not None:
                self.first_ms.append(report.first_command_s * 1000)

    def result(self, calls: int, elapsed: float, outcomes: list[object]) -> tuple[PhaseResult, int]:
        errors = [r for r in outcomes if isinstance(r, BaseException)]
        if errors:
            sys.stderr.write(f"  {len(errors)} calls failed, first: {errors[0]!r}\n")
        return PhaseResult(calls, self.ok, elapsed, self.turnarounds_ms, self.first_ms), self.peak


async def _run_phase(port: int, flow: str, calls: int, concurrency: int, config: EmulatorConfig,
                     hold_s: float) -> tuple[PhaseResult, int]:
    """``calls`` calls, at most ``concurrency`` at once (a closed loop: a new call starts when one ends)."""
    sem = asyncio.Semaphore(concurrency)
    tally = _Tally()

    async def one(i: int) -> None:
        async with sem:
            await tally.call(port, _spec(i, flow, hold_s, "1"), config)

    started = time.perf_counter()
    outcomes = await asyncio.gather(*(one(i) for i in range(calls)), return_exceptions=True)
    return tally.result(calls, time.perf_counter() - started, outcomes)


async def _run_open_loop(port: int, flow: str, rate: float, seconds: float, config: EmulatorConfig,
                         hold_s: float, seed: int = 12345) -> tuple[PhaseResult, int]:
    """Calls arrive at ``rate`` a second (Poisson, seeded) for ``seconds``, whatever the server's pace: the
    per-command turnaround under a given offered load, not the queueing of a saturated closed loop."""
    rng = random.Random(seed)
    tally = _Tally()
    loop = asyncio.get_running_loop()
    started = loop.time()
    tasks = []
    due = started
    while due - started < seconds:
        await asyncio.sleep(max(0.0, due - loop.time()))
        tasks.append(asyncio.create_task(tally.call(port, _spec(len(tasks), flow, hold_s, "1"), config)))
        due += rng.expovariate(rate)
    outcomes = await asyncio.gather(*tasks, return_exceptions=True)
    return tally.result(len(tasks), loop.time() - started, outcomes)


async def _process_phase(flow: str, calls: int, concurrency: int) -> PhaseResult:
    sem = asyncio.Semaphore(concurrency)
    ok = 0
    env = dict(os.environ, PYTHONPATH=str(ROOT), HOTLINE_FLOW_MODULES="bench.ivr_flow")
    os.environ.update({"PYTHONPATH": env["PYTHONPATH"], "HOTLINE_FLOW_MODULES": env["HOTLINE_FLOW_MODULES"]})
    command = [str(Path(sys.executable).with_name("hotline-agi")), flow]
    config = EmulatorConfig(time_scale=0.0)

    async def one(i: int) -> None:
        nonlocal ok
        async with sem:
            report = await run_process_call(command, _spec(i, flow, 0.0, "1"), config)
            if report.queue is not None:
                ok += 1

    started = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(calls)))
    return PhaseResult(calls, ok, time.perf_counter() - started, [], [])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flow", default=BENCH_FLOW)
    parser.add_argument("--hold", type=int, default=2000, help="calls held at once in the queue")
    parser.add_argument("--hold-seconds", type=float, default=10.0)
    parser.add_argument("--walks", type=int, default=5000, help="IVR walks in the throughput phase")
    parser.add_argument("--concurrency", type=int, default=100, help="calls in flight in the throughput phase")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="open-loop phase: calls arriving per second (Poisson), real-time media")
    parser.add_argument("--rate-seconds", type=float, default=20.0)
    parser.add_argument("--applier", choices=("process", "thread"), default=None,
                        help="journal applier of the shipped flows (default: settings.agi.applier)")
    parser.add_argument("--log-level", default="INFO",
                        help="the server's log level (INFO as in production; its JSON log goes to --server-log)")
    parser.add_argument("--server-log", default=os.devnull, help="file for the server's log (default: discarded)")
    parser.add_argument("--process-calls", type=int, default=40)
    parser.add_argument("--process-concurrency", type=int, default=4)
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--servers", type=int, default=1,
                        help="FastAGI server processes on one port (SO_REUSEPORT), each with its own journal")
    args = parser.parse_args(argv)
    if args.serve:
        return serve(args.flow, args.port, args.applier, args.log_level, args.index, args.servers > 1)

    from config.log import configure_logging
    configure_logging(json=True, level="ERROR")
    out = sys.stdout.write
    server_log = open(args.server_log, "ab")
    servers = _Servers(args, server_log)
    port = servers.port
    out(f"FastAGI server pids {servers.pids} on port {port}, flow {args.flow!r}, {os.cpu_count()} CPUs\n")
    out(f"server RSS at start: {servers.rss_mb():.1f} MB\n")
    try:
        if args.hold:
            config = EmulatorConfig(time_scale=1.0, default_sound_s=0.3, idle_timeout_s=600)
            result, peak = asyncio.run(_run_phase(port, args.flow, args.hold, args.hold, config, args.hold_seconds))
            out(f"hold: {result.ok}/{result.calls} calls completed, {peak} held at once for {args.hold_seconds:.0f} s "
                f"in EXEC Queue; wall {result.seconds:.1f} s; server peak RSS {servers.peak_rss_mb():.1f} MB\n")
            out(f"  per-command server turnaround, all {args.hold} calls arriving at once: p50 {pct(result.turnarounds_ms, 0.5):.3f} ms, "
                f"p99 {pct(result.turnarounds_ms, 0.99):.3f} ms ({len(result.turnarounds_ms)} commands)\n")
        if args.walks:
            config = EmulatorConfig(time_scale=0.0)
            cpu_server, cpu_self = servers.cpu_seconds(), time.process_time()
            result, _ = asyncio.run(_run_phase(port, args.flow, args.walks, args.concurrency, config, 0.0))
            cpu_server, cpu_self = servers.cpu_seconds() - cpu_server, time.process_time() - cpu_self
            out(f"throughput: {result.ok}/{result.calls} IVR walks in {result.seconds:.2f} s = {result.rate:.0f} walks/s "
                f"({args.concurrency} in flight), {len(result.turnarounds_ms)} commands\n")
            out(f"  CPU: server {cpu_server:.2f} s ({cpu_server / max(result.ok, 1) * 1000:.2f} ms a walk), "
                f"emulator {cpu_self:.2f} s\n")
            out(f"  per-command server turnaround: p50 {pct(result.turnarounds_ms, 0.5):.3f} ms, "
                f"p99 {pct(result.turnarounds_ms, 0.99):.3f} ms, max {max(result.turnarounds_ms or [0]):.1f} ms\n")
            out(f"  session set-up (connect → first command): p50 {pct(result.first_ms, 0.5):.3f} ms, "
                f"p99 {pct(result.first_ms, 0.99):.3f} ms\n")
            if args.flow != BENCH_FLOW:
                expected = args.walks + (args.hold or 0)
                complete, lag = _store_complete(expected, timeout_s=120.0)
                out(f"  records complete in the store: {complete}/{expected}, the last "
                    f"{lag:.2f} s after the last walk ended ({result.ok / (result.seconds + lag):.0f} walks/s "
                    f"counted to the last stored record)\n")
            fast_rate = result.rate
        else:
            fast_rate = float("nan")
        if args.rate:
            config = EmulatorConfig(time_scale=1.0, default_sound_s=0.3, idle_timeout_s=600)
            cpu_server, cpu_self = servers.cpu_seconds(), time.process_time()
            result, peak = asyncio.run(_run_open_loop(port, args.flow, args.rate, args.rate_seconds, config, 1.0))
            cpu_server, cpu_self = servers.cpu_seconds() - cpu_server, time.process_time() - cpu_self
            out(f"open loop: {result.ok}/{result.calls} calls arriving at {args.rate:.0f}/s for {args.rate_seconds:.0f} s "
                f"(real-time media, 1 s in the queue), up to {peak} at once; server CPU "
                f"{cpu_server / result.seconds * 100:.0f}% of one core, emulator {cpu_self / result.seconds * 100:.0f}%\n")
            out(f"  per-command server turnaround: p50 {pct(result.turnarounds_ms, 0.5):.3f} ms, "
                f"p99 {pct(result.turnarounds_ms, 0.99):.3f} ms, p99.9 {pct(result.turnarounds_ms, 0.999):.3f} ms, "
                f"max {max(result.turnarounds_ms or [0]):.1f} ms ({len(result.turnarounds_ms)} commands)\n")
            out(f"  session set-up (connect → first command): p50 {pct(result.first_ms, 0.5):.3f} ms, "
                f"p99 {pct(result.first_ms, 0.99):.3f} ms\n")
        out(f"server peak RSS overall: {servers.peak_rss_mb():.1f} MB\n")
        if args.process_calls:
            proc = asyncio.run(_process_phase(args.flow, args.process_calls, args.process_concurrency))
            out(f"process AGI baseline: {proc.ok}/{proc.calls} walks in {proc.seconds:.2f} s = {proc.rate:.1f} walks/s "
                f"({args.process_concurrency} processes at once)\n")
            if fast_rate == fast_rate and proc.rate:       # a throughput phase ran
                out(f"FastAGI / process AGI: {fast_rate / proc.rate:.1f}x\n")
    finally:
        servers.stop()
        server_log.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
