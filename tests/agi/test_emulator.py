"""The Asterisk peer emulator driven by real HotlineAGI sessions through the FastAGI server."""

from __future__ import annotations

import asyncio
import time
import wave
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest

from agi.channel import ChannelHungUp, DigitsResult, PlayResult, RecordResult
from agi.emulator import (CallerScript, CallReport, CallSpec, EmulatorConfig, QueueOutcome, TimedKey, run_call,
                          run_calls)
from agi.protocol import HotlineAGI
from agi.request import AgiRequest
from scripted_server import raw_call

Flow = Callable[[HotlineAGI, AgiRequest], Any]


def serve(agi_server: Callable, flow: Flow) -> tuple[Any, dict[str, Any]]:
    """Start a server whose handler runs ``flow`` and keeps what it returned or raised, per script."""
    seen: dict[str, Any] = {}

    def handler(agi: HotlineAGI, request: AgiRequest) -> None:
        try:
            seen[request.script] = flow(agi, request)
        except Exception as exc:  # noqa: BLE001 - the test inspects it
            seen[request.script] = exc
            raise

    return agi_server(handler), seen


async def call(server: Any, spec: CallSpec, config: EmulatorConfig = EmulatorConfig()) -> CallReport:
    host, port = server.address
    return await run_call(host, port, spec, config)


def write_clip(path: Path, seconds: float, freq: float = 300.0) -> Path:
    t = np.arange(int(seconds * 8000)) / 8000
    data = (8000 * np.sin(2 * np.pi * freq * t)).astype("<i2")
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(data.tobytes())
    return path


async def test_channel_status_is_4_before_answer_and_6_after(agi_server: Callable) -> None:
    server, seen = serve(agi_server, lambda agi, req: (agi.channel_status(), agi.answer(), agi.channel_status()))
    report = await call(server, CallSpec(script="main", answered=False))
    assert seen["main"] == (4, None, 6)
    assert report.agistatus == "SUCCESS" and not report.hung_up


async def test_env_block_and_request(agi_server: Callable) -> None:
    server, seen = serve(agi_server, lambda agi, req: (dict(agi.env), req))
    await call(server, CallSpec(script="main?lang=zh", args=("arg1", "两个字"), callerid="13800138000",
                                calleridname="Zhang", linkedid="1795901013.0"))
    env, req = seen["main"]
    assert list(env)[:3] == ["agi_network", "agi_network_script", "agi_request"]
    assert len([k for k in env if not k.startswith("agi_arg_")]) == 22
    assert (env["agi_callerid"], env["agi_callingpres"]) == ("13800138000", "0")
    assert (req.script, dict(req.params), req.args, req.linkedid) == ("main", {"lang": "zh"}, ("arg1", "两个字"),
                                                                      "1795901013.0")


async def test_caller_responses_at_input_prompts(agi_server: Callable) -> None:
    def flow(agi: HotlineAGI, req: AgiRequest) -> list:
        return [agi.get_data("menu", 3000, 4), agi.get_data("menu", 3000, 4), agi.get_data("menu", 3000, 1),
                agi.get_data("menu", 3000, 4), agi.wait_for_digit(1000)]
    server, seen = serve(agi_server, flow)
    await call(server, CallSpec(caller=CallerScript(responses=("12#", "12", "345", "", "9"))))
    # "345" against max 1 digit: "3" ends the input; 4 and 5 are still being keyed and reach the next prompt
    assert seen["main"] == [DigitsResult("12", False), DigitsResult("12", True), DigitsResult("3", False),
                            DigitsResult("45", True), "9"]


async def test_timed_keys_interrupt_playback_only_with_escape_digits(agi_server: Callable) -> None:
    server, seen = serve(agi_server, lambda agi, req: agi.stream_file("long", "123"))
    report = await call(server, CallSpec(caller=CallerScript(keys=(TimedKey(0.5, "5"), TimedKey(1.25, "2")))),
                        EmulatorConfig(sound_seconds={"long": 5.0}))
    assert seen["main"] == PlayResult("2", 10000)
    assert report.variables["PLAYBACKSTATUS"] == "FAILED"


async def test_missing_prompt_with_a_sounds_dir(agi_server: Callable, tmp_path: Path) -> None:
    write_clip(tmp_path / "hello.wav", 1.0)
    server, seen = serve(agi_server, lambda agi, req: (agi.stream_file("hello"), agi.stream_file("nope"),
                                                       agi.channel_status()))
    report = await call(server, CallSpec(), EmulatorConfig(sounds_dir=tmp_path))
    assert seen["main"] == (PlayResult(None, 8000), PlayResult(None, 0, missing=True), 6)
    assert report.agistatus == "FAILURE"


async def test_hangup_during_playback_then_dead_mode(agi_server: Callable) -> None:
    def flow(agi: HotlineAGI, req: AgiRequest) -> tuple:
        try:
            agi.stream_file("long")
        except ChannelHungUp:
            pass
        agi.set_variable("AFTER", "yes")
        return agi.hung_up, agi.get_variable("AFTER"), agi.get_variable("CHANNEL")
    server, seen = serve(agi_server, flow)
    report = await call(server, CallSpec(channel="Local/1@x-1;2", caller=CallerScript(hangup_after_s=1.5)),
                        EmulatorConfig(sound_seconds={"long": 5.0}))
    assert seen["main"] == (True, "yes", "Local/1@x-1;2")
    assert report.hung_up and report.agistatus == "HANGUP" and report.hangup_at_s == pytest.approx(1.5)
    assert report.commands[1].replies == ("200 result=-1 endpos=12000", "HANGUP")


async def test_hangup_at_a_chosen_command(agi_server: Callable) -> None:
    def flow(agi: HotlineAGI, req: AgiRequest) -> int:
        count = 0
        try:
            for _ in range(10):
                agi.stream_file("p")
                count += 1
        except ChannelHungUp:
            return count
        return -1
    server, seen = serve(agi_server, flow)
    report = await call(server, CallSpec(caller=CallerScript(hangup_at_command=4)))  # 1 = GET VARIABLE linkedid
    assert seen["main"] == 2
    assert report.hung_up


async def test_wall_clock_mode_sends_hangup_while_the_server_is_idle(agi_server: Callable) -> None:
    def flow(agi: HotlineAGI, req: AgiRequest) -> tuple:
        agi.answer()
        time.sleep(0.4)  # idle past the caller's hangup (0.2 s at time_scale 1)
        raised = False
        try:
            agi.wait_for_digit(100)
        except ChannelHungUp:
            raised = True
        return raised, agi.get_variable("CHANNEL(state)")
    server, seen = serve(agi_server, flow)
    started = time.monotonic()
    report = await call(server, CallSpec(caller=CallerScript(hangup_after_s=0.2)), EmulatorConfig(time_scale=1.0, count_idle_time=True))
    assert seen["main"][0] is True
    assert report.hung_up and time.monotonic() - started >= 0.4


async def test_time_scale_keeps_tests_fast(agi_server: Callable) -> None:
    server, seen = serve(agi_server, lambda agi, req: agi.exec_app("Queue", "hotline,c,,,600"))
    started = time.monotonic()
    report = await call(server, CallSpec(caller=CallerScript(queue=QueueOutcome("answered", after_s=30, talk_s=60))),
                        EmulatorConfig(time_scale=0.001))
    assert report.queue is not None and report.queue.talk_s == pytest.approx(60)
    assert report.duration_s == pytest.approx(90, abs=0.5)
    assert 0.09 <= time.monotonic() - started < 3


def queue_flow(agi: HotlineAGI, req: AgiRequest) -> tuple:
    try:
        result = agi.exec_app("Queue", req.params.get("data", "hotline,c,,,20"))
    except ChannelHungUp:
        result = "hangup"
    return result, agi.get_variable("QUEUESTATUS"), agi.get_variable("MEMBERNAME")


@pytest.mark.parametrize("outcome,data,expected", [
    (QueueOutcome("answered", agent="1001", after_s=3, talk_s=20), "hotline,c,,,20", (0, "CONTINUE", "1001")),
    (QueueOutcome("answered", agent="1001", after_s=3, talk_s=20), "hotline,,,,20", ("hangup", None, "1001")),
    (QueueOutcome("answered", agent="1001", after_s=30), "hotline,c,,,5", (0, "TIMEOUT", None)),
    (QueueOutcome("timeout"), "hotline,c,,,5", (0, "TIMEOUT", None)),
    (QueueOutcome("leaveempty", after_s=4), "hotline,c", (0, "LEAVEEMPTY", None)),
    (QueueOutcome("joinempty"), "hotline,c", (0, "JOINEMPTY", None)),
    (QueueOutcome("abandon", after_s=2.5), "hotline,c,,,20", ("hangup", None, None)),
    (QueueOutcome("answered", after_s=1, talk_s=10, caller_ends_talk=True), "hotline,c", ("hangup", None, "1001")),
])
async def test_queue_outcomes(agi_server: Callable, outcome: QueueOutcome, data: str, expected: tuple) -> None:
    server, seen = serve(agi_server, queue_flow)
    report = await call(server, CallSpec(script=f"main?data={data}", caller=CallerScript(queue=outcome)))
    assert seen["main"] == expected
    assert report.queue is not None
    assert report.hung_up == (expected[0] == "hangup")


async def test_queue_wait_and_talk_times(agi_server: Callable) -> None:
    server, _ = serve(agi_server, queue_flow)
    report = await call(server, CallSpec(caller=CallerScript(queue=QueueOutcome("answered", "1002", 3, 20))))
    assert report.queue is not None
    assert (report.queue.outcome, report.queue.agent, report.queue.wait_s, report.queue.talk_s) == \
        ("ANSWERED", "1002", 3, 20)
    assert report.variables["QEHOLDTIME"] == "3"


async def test_agent_connect_gosub_opens_the_agents_session(agi_server: Callable) -> None:
    def flow(agi: HotlineAGI, req: AgiRequest) -> Any:
        if req.script == "agent-connect":
            return req.linkedid, req.args, agi.get_variable("CALLERID(num)")
        return agi.exec_app("Queue", "hotline,c,,,30,,agent-connect(1001,x)")
    server, seen = serve(agi_server, flow)
    report = await call(server, CallSpec(linkedid="1795901133.56", callerid="13800138000",
                                         caller=CallerScript(queue=QueueOutcome("answered", "1001", 2, 5))))
    assert seen["main"] == 0
    assert seen["agent-connect"] == ("1795901133.56", ("1001", "x"), "13800138000")
    assert report.queue is not None and report.queue.agent_session is not None
    assert report.queue.agent_session.linkedid == "1795901133.56"


async def test_record_file_writes_the_callers_clip(agi_server: Callable, tmp_path: Path) -> None:
    clip = write_clip(tmp_path / "clip.wav", 2.0)
    target = tmp_path / "rec" / "desc"
    server, seen = serve(agi_server, lambda agi, req: agi.record_file(str(target), "wav", "#", 30000))
    report = await call(server, CallSpec(caller=CallerScript(say=(clip,))))
    result = seen["main"]
    assert isinstance(result, RecordResult) and result.reason == "dtmf" and result.digit == "#"
    with wave.open(str(target) + ".wav", "rb") as w:
        assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, 8000, 2)
        frames = w.getnframes()
        data = np.frombuffer(w.readframes(frames), dtype="<i2")
    assert frames == result.endpos == int((0.3 + 2.0 + 0.1) * 8000)
    assert np.abs(data[int(0.5 * 8000):int(2.0 * 8000)]).max() > 4000  # the clip is in there
    assert report.recordings == [Path(str(target) + ".wav")]


@pytest.mark.parametrize("end,silence,reason", [("silence", 3, "timeout"), ("hangup", None, "hangup"),
                                                ("timeout", None, "timeout")])
async def test_record_file_endings(agi_server: Callable, tmp_path: Path, end: str, silence: int | None,
                                   reason: str) -> None:
    clip = write_clip(tmp_path / "clip.wav", 1.0)
    server, seen = serve(agi_server, lambda agi, req: agi.record_file(str(tmp_path / "r"), "wav", "#", 5000,
                                                                       False, silence))
    await call(server, CallSpec(caller=CallerScript(say=(clip,), record_end=end)))  # type: ignore[arg-type]
    assert seen["main"].reason == reason


async def test_mixmonitor_files_like_asterisk(agi_server: Callable, tmp_path: Path) -> None:
    def flow(agi: HotlineAGI, req: AgiRequest) -> None:
        agi.stream_file("hello")
        agi.exec_app("Queue", "hotline,c,,,60")
    server, _ = serve(agi_server, flow)
    spool = tmp_path / "spool"
    report = await call(server, CallSpec(linkedid="1795901133.57", mixmonitor=True,
                                         caller=CallerScript(queue=QueueOutcome("answered", after_s=2, talk_s=8),
                                                             talk_audio=write_clip(tmp_path / "c.wav", 3.0))),
                        EmulatorConfig(spool_dir=spool, sound_seconds={"hello": 1.5}))
    names = sorted(p.name for p in report.mixmonitor_files)
    assert names == ["1795901133.57-in.wav", "1795901133.57-out.wav", "1795901133.57.wav"]
    lengths = set()
    for path in report.mixmonitor_files:
        assert path.read_bytes()[:4] == b"RIFF" and len(path.read_bytes()) == 44 + 2 * (path.stat().st_size - 44) // 2
        with wave.open(str(path), "rb") as w:
            assert (w.getnchannels(), w.getframerate(), w.getsampwidth()) == (1, 8000, 2)
            lengths.add(w.getnframes())
    assert lengths == {int(11.5 * 8000)}
    with wave.open(str(spool / "1795901133.57-in.wav"), "rb") as w:
        received = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2")
    assert np.abs(received[: int(3.5 * 8000)]).max() == 0        # the caller is silent before the bridge
    assert np.abs(received[int(4 * 8000): int(6 * 8000)]).max() > 4000  # then talks to the agent


async def test_variables_unset_vs_empty_and_functions(agi_server: Callable) -> None:
    def flow(agi: HotlineAGI, req: AgiRequest) -> tuple:
        agi.set_variable("EMPTY", "")
        agi.set_variable("CALLERID(name)", "李四")
        return (agi.get_variable("UNSET"), agi.get_variable("EMPTY"), agi.get_full_variable("${UNSET}-x"),
                agi.get_variable("CALLERID(num)"), agi.get_variable("CALLERID(name)"),
                agi.get_variable("CHANNEL(state)"), agi.get_variable("CHANNEL(linkedid)"))
    server, seen = serve(agi_server, flow)
    await call(server, CallSpec(callerid="13800138000", linkedid="1.1"))
    assert seen["main"] == (None, "", "-x", "13800138000", "李四", "Up", "1.1")


async def test_raw_errors_and_case_insensitive_commands(agi_server: Callable) -> None:
    def flow(agi: HotlineAGI, req: AgiRequest) -> list:
        out = []
        for line in ("FOO BAR", "GET", "", "SET VARIABLE X", "answer", "noop", "get variable CHANNEL(state)"):
            try:
                reply = agi.command(line)
                out.append(reply.raw)
            except Exception as exc:  # noqa: BLE001
                out.append((type(exc).__name__, getattr(exc, "code", None)))
        return out
    server, seen = serve(agi_server, flow)
    await call(server, CallSpec())
    assert seen["main"] == [("CommandFailed", 510), ("CommandFailed", 510), ("CommandFailed", 510),
                            ("CommandFailed", 520), "200 result=0", "200 result=0", "200 result=1 (Up)"]


async def test_many_calls_at_once(agi_server: Callable) -> None:
    server, _ = serve(agi_server, lambda agi, req: (agi.answer(), agi.stream_file("p"),
                                                    agi.exec_app("Queue", "q,c,,,5")))
    host, port = server.address
    specs = [CallSpec(caller=CallerScript(queue=QueueOutcome("answered", after_s=1, talk_s=1))) for _ in range(200)]
    reports = await run_calls(host, port, specs, EmulatorConfig(time_scale=0.001))
    assert all(isinstance(r, CallReport) and r.queue and r.queue.outcome == "ANSWERED" for r in reports)
    assert len({r.uniqueid for r in reports if isinstance(r, CallReport)}) == 200


def test_queue_outcome_parsing() -> None:
    assert QueueOutcome.parse("answered:agent=1001,after=3,talk=20") == QueueOutcome("answered", "1001", 3.0, 20.0)
    assert QueueOutcome.parse("abandon:after=10").after_s == 10
    with pytest.raises(ValueError):
        QueueOutcome.parse("answered:colour=blue")
    with pytest.raises(ValueError):
        QueueOutcome.parse("maybe")


# ---------------------------------------------------------------- the server closes (or talks) mid-command
def send_then_close(*lines: str) -> Callable[[asyncio.StreamReader, asyncio.StreamWriter], Any]:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write("".join(f"{line}\n" for line in lines).encode())
        await writer.drain()   # and the full close in raw_call's finally
    return script


REAL_TIME = EmulatorConfig(time_scale=1.0, sound_seconds={"long": 120.0})


async def test_close_during_wait_for_digit_forever_ends_the_call_at_once() -> None:
    report, _, elapsed = await raw_call(send_then_close("WAIT FOR DIGIT -1"), CallSpec(), REAL_TIME)
    assert elapsed < 1.0
    # ast_waitfordigit_full returns 1 when agi->ctrl becomes readable, and handle_waitfordigit prints it
    assert [(c.line, c.replies, c.interrupted) for c in report.commands] == [("WAIT FOR DIGIT -1", ("200 result=1",), True)]
    assert (report.close_reason, report.closed_during, report.agistatus, report.hung_up) == \
        ("eof", "WAIT FOR DIGIT -1", "SUCCESS", False)
    assert report.duration_s < 1.0 and report.closed_at_s is not None and report.closed_at_s < 1.0


async def test_close_during_a_long_stream_file_stops_it_without_a_reply() -> None:
    report, _, elapsed = await raw_call(send_then_close('STREAM FILE long ""'), CallSpec(), REAL_TIME)
    assert elapsed < 1.0
    # handle_streamfile: ast_waitstream_full returned 1 -> "don't print a result line", PLAYBACKSTATUS not set
    assert [(c.replies, c.interrupted) for c in report.commands] == [((), True)]
    assert "PLAYBACKSTATUS" not in report.variables
    assert (report.close_reason, report.closed_during, report.agistatus) == ("eof", 'STREAM FILE long ""', "SUCCESS")


@pytest.mark.parametrize("outcome,status,reply", [
    (QueueOutcome("answered", agent="1001", after_s=300, talk_s=600), "SUCCESS", "200 result=0"),
    (QueueOutcome("abandon", after_s=400), "HANGUP", "200 result=-1"),
])
async def test_close_during_exec_queue_fast_forwards_the_queue(outcome: QueueOutcome, status: str, reply: str) -> None:
    line = 'EXEC Queue "hotline,c,,,900"'
    report, _, elapsed = await raw_call(send_then_close(line), CallSpec(caller=CallerScript(queue=outcome)), REAL_TIME)
    assert elapsed < 1.0
    # pbx_exec does not look at the AGI socket: the queue runs to its end (in call time), then the reply goes out
    assert [(c.line, c.replies[0], c.interrupted) for c in report.commands] == [(line, reply, False)]
    assert report.queue is not None and report.queue.outcome == ("ANSWERED" if status == "SUCCESS" else "ABANDON")
    assert report.duration_s == pytest.approx(900 if status == "SUCCESS" else 400)
    assert (report.close_reason, report.closed_during, report.agistatus) == ("eof", line, status)


@pytest.mark.parametrize("line,variables,expected", [
    ('STREAM FILE long ""', {}, b"HANGUP\n"),
    ("WAIT FOR DIGIT -1", {}, b"200 result=1\nHANGUP\n"),
    ('STREAM FILE long ""', {"AGISIGHUP": "no"}, b""),
])
async def test_half_close_shows_what_asterisk_sends_after_eof(line: str, variables: dict, expected: bytes) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
        writer.write(f"{line}\n".encode())
        writer.write_eof()            # shutdown(SHUT_WR): we can still read what Asterisk sends
        return await asyncio.wait_for(reader.read(), 5)

    report, received, elapsed = await raw_call(script, CallSpec(variables=variables), REAL_TIME)
    assert elapsed < 1.0
    assert received == expected
    assert report.sighup_sent == (expected.endswith(b"HANGUP\n")) and report.agistatus == "SUCCESS"


async def test_a_failure_before_the_close_stays_the_agistatus(tmp_path: Path) -> None:
    config = EmulatorConfig(time_scale=1.0, sounds_dir=tmp_path)
    report, _, elapsed = await raw_call(send_then_close('STREAM FILE nope ""', "WAIT FOR DIGIT -1"), CallSpec(), config)
    assert elapsed < 1.0
    assert [c.replies for c in report.commands] == [("200 result=-1 endpos=0",), ("200 result=1",)]
    assert report.agistatus == "FAILURE"


async def test_close_between_commands() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> str:
        writer.write(b"NOOP\n")
        return (await reader.readline()).decode()

    report, reply, _ = await raw_call(script, CallSpec(), REAL_TIME)
    assert reply == "200 result=0\n"
    assert (report.close_reason, report.closed_during, report.agistatus) == ("eof", None, "SUCCESS")
    assert not report.commands[0].interrupted


@pytest.mark.parametrize("first,first_replies", [('STREAM FILE long ""', ()), ("WAIT FOR DIGIT 60000", ("200 result=1",))])
async def test_a_new_command_during_a_socket_watching_command_cuts_it_short(first: str, first_replies: tuple) -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> list[str]:
        writer.write(f"{first}\n".encode())
        await writer.drain()
        await asyncio.sleep(0.3)
        writer.write(b"NOOP\n")
        await writer.drain()
        return [(await reader.readline()).decode() for _ in range(len(first_replies) + 1)]

    report, received, elapsed = await raw_call(script, CallSpec(), REAL_TIME)
    assert elapsed < 1.5
    assert received == [f"{r}\n" for r in first_replies] + ["200 result=0\n"]
    assert [(c.line, c.replies, c.interrupted) for c in report.commands] == \
        [(first, first_replies, True), ("NOOP", ("200 result=0",), False)]
    assert report.commands[0].end_s == pytest.approx(0.3, abs=0.2)


async def test_exec_does_not_watch_the_socket_while_the_server_is_connected() -> None:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> list[str]:
        writer.write(b'EXEC Wait 0.5\n')
        await asyncio.sleep(0.1)
        writer.write(b"NOOP\n")      # queued behind the application, as in Asterisk
        await writer.drain()
        return [(await reader.readline()).decode() for _ in range(2)]

    report, received, elapsed = await raw_call(script, CallSpec(), REAL_TIME)
    assert received == ["200 result=0\n", "200 result=0\n"]
    assert 0.45 <= elapsed < 1.5
    assert not any(c.interrupted for c in report.commands)
