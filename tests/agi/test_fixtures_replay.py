"""Replay every recorded Asterisk 22.10.1 session (tests/fixtures/asterisk/*.log) against our two sides.

1. Asterisk's recorded lines drive :class:`HotlineAGI` over a socketpair: every reply is parsed right.
2. The emulator answers a scripted server sending the recorded commands: its bytes equal the recording.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import wave
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from agi.channel import ChannelHungUp, CommandFailed, DigitsResult, PlayResult
from agi.emulator import CallerScript, CallSpec, EmulatorConfig, GosubTarget, TimedKey, run_call
from agi.protocol import AgiReply, HotlineAGI
from fixture_log import FIXTURE_DIR, Session, all_sessions, parse_log

SESSIONS = all_sessions()


def _ids(sessions: list[Session]) -> list[str]:
    return [s.name for s in sessions]


# ---------------------------------------------------------------- expectations, one per recorded command
@dataclass(frozen=True)
class R:
    result: str
    data: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    text: str = ""


@dataclass(frozen=True)
class Fail:
    code: int
    first_line: str = ""


class Hup:
    pass


U = "Invalid or unknown command"
DEAD_AFTER = [Hup(), R("1", "{channel}"), R("1"), R("1", "yes"), R("1"), Hup(), Hup(), Hup()]
RAW_EXPECTED: dict[str, list[object]] = {
    "env-block": [R("4"), R("0"), R("6")],
    "errors": [
        Fail(510, U),
        Fail(520, "Invalid command syntax.  Proper usage follows:"),
        Fail(520), Fail(520), Fail(520), Fail(520), Fail(520), Fail(520), Fail(520), Fail(520), Fail(520),
        Fail(510, U), Fail(510, U),
        R("0"), R("0", extra={"endpos": "3404"}), R("1", "Up"), R("0"),
    ],
    "get-data-digits": [R("12"), R("1234")],
    "gosub": [R("0", text="Gosub complete"), R("1", "ok-"), R("0", text="Gosub complete"), R("1", "ok-x"),
              R("-1", text="Gosub label not found"), R("6")],
    "hangup-during-command": [R("-1", extra={"endpos": "12000"}), *DEAD_AFTER],
    "hangup-during-command-pause": [R("-1", extra={"endpos": "12000"}), *DEAD_AFTER],
    "say-and-vars": [R("0"), R("0"), R("1", "13800138000"), R("0"), R("1", ""), R("1"), R("1", "含空格 的值"),
                     R("1", "含空格 的值"), R("1", "Zhang"), R("6"), R("0"), R("0")],
    "stream-file": [R("50", extra={"endpos": "14560"}), R("1", "FAILED"), R("0", extra={"endpos": "3404"}),
                    R("1", "SUCCESS"), R("-1", extra={"endpos": "0"}), R("1", "SUCCESS"), R("6")],
    "wait-for-digit": [R("55"), R("35"), R("42"), R("0")],
}


class RecordedAsterisk(threading.Thread):
    """Plays the recorded Asterisk side on one end of a socketpair, checking each command byte for byte."""

    def __init__(self, sock: socket.socket, session: Session) -> None:
        super().__init__(daemon=True)
        self.sock, self.session = sock, session
        self.received: list[str] = []
        self.mismatch: str | None = None

    def run(self) -> None:
        f = self.sock.makefile("rwb")
        try:
            f.write(("".join(t + "\n" for t in self.session.env_lines)).encode())
            f.flush()
            for command, replies in self.session.exchanges():
                raw = f.readline()
                if not raw:
                    return
                got = raw.decode("utf-8")
                self.received.append(got[:-1])
                if got != command + "\n":
                    self.mismatch = f"expected {command!r}, got {got!r}"
                    return
                f.write("".join(t + "\n" for t in replies).encode("utf-8"))
                f.flush()
            f.readline()  # wait for the close
        finally:
            f.close()
            self.sock.close()


def _pair(session: Session) -> tuple[HotlineAGI, RecordedAsterisk, socket.socket]:
    ours, theirs = socket.socketpair()
    peer = RecordedAsterisk(theirs, session)
    peer.start()
    ours.settimeout(10)
    agi = HotlineAGI(ours.makefile("rb"), ours.makefile("wb"))
    return agi, peer, ours


def test_every_fixture_file_parses_and_matches_its_hashes() -> None:
    files = sorted(FIXTURE_DIR.glob("*.log"))
    assert len(files) == 8
    sessions = [s for p in files for s in parse_log(p)]
    assert len(sessions) == 9
    assert set(RAW_EXPECTED) == {s.name for s in sessions}
    for s in sessions:
        assert s.header_bytes["a"][0] == len(s.stream("A"))


@pytest.mark.parametrize("session", SESSIONS, ids=_ids(SESSIONS))
def test_hotline_agi_parses_every_recorded_reply(session: Session) -> None:
    agi, peer, sock = _pair(session)
    assert agi.env == session.env
    assert agi.env["agi_accountcode"] == ""
    expected = RAW_EXPECTED[session.name]
    exchanges = session.exchanges()
    assert len(expected) == len(exchanges)
    for (command, replies), want in zip(exchanges, expected):
        if isinstance(want, R):
            reply = agi.command(command)
            assert isinstance(reply, AgiReply), command
            data = want.data.format(channel=session.env["agi_channel"]) if want.data else want.data
            assert (reply.code, reply.result, reply.data, dict(reply.extra), reply.text) == \
                (200, want.result, data, want.extra, want.text), command
        elif isinstance(want, Fail):
            with pytest.raises(CommandFailed) as info:
                agi.command(command)
            assert info.value.code == want.code, command
            if want.first_line:
                assert info.value.text.split("\n")[0] == want.first_line
            if want.code == 520:  # the whole usage block was consumed, nothing left over for the next command
                usage = [r for r in replies[1:-1]]
                assert info.value.text.split("\n")[1:] == usage
        else:
            with pytest.raises(ChannelHungUp):
                agi.command(command)
            assert agi.hung_up
    hung_up_at_end = agi.hung_up
    agi.close()
    sock.close()
    peer.join(5)
    assert not peer.is_alive()
    assert peer.mismatch is None
    assert peer.received == [c for c, _ in exchanges]
    assert hung_up_at_end == (session.agistatus == "HANGUP")


# ---------------------------------------------------------------- high-level methods on the recorded wire
HIGH_LEVEL: dict[str, list[tuple[str, tuple, object]]] = {
    "env-block": [("channel_status", (), 4), ("answer", (), None), ("channel_status", (), 6)],
    "get-data-digits": [("get_data", ("beep", 5000, 4), DigitsResult("12", False)),
                        ("get_data", ("beep", 5000, 4), DigitsResult("1234", False))],
    "stream-file": [("stream_file", ("demo-thanks", "123"), PlayResult("2", 14560)),
                    ("get_variable", ("PLAYBACKSTATUS",), "FAILED"),
                    ("stream_file", ("beep", ""), PlayResult(None, 3404)),
                    ("get_variable", ("PLAYBACKSTATUS",), "SUCCESS"),
                    ("stream_file", ("no-such-prompt", ""), PlayResult(None, 0, missing=True)),
                    ("get_variable", ("PLAYBACKSTATUS",), "SUCCESS"),
                    ("channel_status", (), 6)],
    "wait-for-digit": [("wait_for_digit", (5000,), "7"), ("wait_for_digit", (5000,), "#"),
                       ("wait_for_digit", (5000,), "*"), ("wait_for_digit", (2000,), None)],
    "say-and-vars": [("say_digits", ("20261128",), None), ("say_number", (42,), None),
                     ("get_full_variable", ("${CALLERID(num)}",), "13800138000"),
                     ("get_variable", ("UNSET_VAR",), None), ("get_full_variable", ("${UNSET_VAR}",), ""),
                     ("set_variable", ("X", "含空格 的值"), None), ("get_variable", ("X",), "含空格 的值"),
                     ("get_full_variable", ("${X}",), "含空格 的值"), ("get_variable", ("CALLERID(name)",), "Zhang"),
                     ("channel_status", (), 6), ("set_music", (True, "default"), None), ("set_music", (False,), None)],
    "gosub": [("gosub", ("fixtures-sub", "s", 1), 0), ("get_variable", ("GOSUB_RETVAL",), "ok-"),
              ("gosub", ("fixtures-sub", "s", 1, "x,y"), 0), ("get_variable", ("GOSUB_RETVAL",), "ok-x"),
              ("gosub", ("no-such-context", "s", 1), -1), ("channel_status", (), 6)],
}


@pytest.mark.parametrize("name", sorted(HIGH_LEVEL))
def test_channel_methods_send_the_recorded_lines_and_return_typed_results(name: str) -> None:
    session = next(s for s in SESSIONS if s.name == name)
    agi, peer, sock = _pair(session)
    for method, args, want in HIGH_LEVEL[name]:
        assert getattr(agi, method)(*args) == want, (method, args)
    agi.close()
    sock.close()
    peer.join(5)
    assert not peer.is_alive()
    assert peer.mismatch is None
    assert len(peer.received) == len(session.exchanges())


@pytest.mark.parametrize("name", ["hangup-during-command", "hangup-during-command-pause"])
def test_hangup_session_through_channel_methods(name: str) -> None:
    session = next(s for s in SESSIONS if s.name == name)
    agi, peer, sock = _pair(session)
    with pytest.raises(ChannelHungUp):
        agi.stream_file("demo-thanks")
    assert agi.hung_up
    sent_before = agi.commands_sent
    # the recorded script sent STREAM FILE beep anyway; we refuse it locally without touching the wire …
    with pytest.raises(ChannelHungUp):
        agi.stream_file("beep")
    assert agi.commands_sent == sent_before
    # … so send the recorded line raw to stay in step with the recording: 511 (after the HANGUP line)
    with pytest.raises(ChannelHungUp):
        agi.command('STREAM FILE beep ""')
    assert agi.get_variable("CHANNEL") == session.env["agi_channel"]
    agi.set_variable("AFTER_HANGUP", "yes")
    assert agi.get_variable("AFTER_HANGUP") == "yes"
    agi.verbose("still here after hangup")
    with pytest.raises(ChannelHungUp):
        agi.channel_status()
    for raw in ("CHANNEL STATUS", "ANSWER"):
        with pytest.raises(ChannelHungUp):
            agi.command(raw)
    agi.hangup()  # 511 on a dead channel is expected, not an error
    agi.close()
    sock.close()
    peer.join(5)
    assert not peer.is_alive()
    assert peer.mismatch is None
    assert peer.received == [c for c, _ in session.exchanges()]


# ---------------------------------------------------------------- the emulator against the recorded commands
def _write_wav(path: Path, samples: int) -> None:
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * samples)


CALLERS: dict[str, CallerScript] = {
    "get-data-digits": CallerScript(keys=tuple(TimedKey(t, k) for t, k in [
        (1.0, "1"), (1.35, "2"), (1.7, "#"), (3.7, "1"), (4.05, "2"), (4.4, "3"), (4.75, "4")])),
    "stream-file": CallerScript(keys=(TimedKey(1.0, "5"), TimedKey(1.82, "2"))),
    "wait-for-digit": CallerScript(keys=(TimedKey(1.2, "7"), TimedKey(2.3, "#"), TimedKey(3.4, "*"))),
    "hangup-during-command": CallerScript(hangup_after_s=1.5),
    "hangup-during-command-pause": CallerScript(hangup_after_s=1.5),
}


def _spec_for(session: Session) -> CallSpec:
    env = session.env
    args = tuple(v for k, v in sorted(env.items()) if k.startswith("agi_arg_"))
    callerid = env["agi_callerid"] if env["agi_callerid"] != "unknown" else None
    return CallSpec(
        script=env["agi_network_script"], args=args, request=env["agi_request"], channel=env["agi_channel"],
        uniqueid=env["agi_uniqueid"], threadid=env["agi_threadid"], callerid=callerid,
        calleridname=env["agi_calleridname"] if callerid else None, context=env["agi_context"],
        extension=env["agi_extension"], priority=int(env["agi_priority"]), answered=session.name != "env-block",
        caller=CALLERS.get(session.name, CallerScript()),
    )


@pytest.fixture()
def fixture_config(tmp_path: Path) -> EmulatorConfig:
    sounds = tmp_path / "sounds"
    sounds.mkdir()
    _write_wav(sounds / "beep.wav", 3404)
    _write_wav(sounds / "demo-thanks.wav", 44000)
    return EmulatorConfig(sounds_dir=sounds, subroutines={"fixtures-sub": GosubTarget(0.425, "ok-${ARG1}")})


@pytest.mark.parametrize("session", SESSIONS, ids=_ids(SESSIONS))
async def test_emulator_answers_byte_for_byte(session: Session, fixture_config: EmulatorConfig) -> None:
    received = bytearray()
    problems: list[str] = []

    async def scripted_server(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), 5)
                received.extend(line)
                if line in (b"\n", b""):
                    break
            for command, replies in session.exchanges():
                writer.write((command + "\n").encode("utf-8"))
                await writer.drain()
                for _ in replies:
                    received.extend(await asyncio.wait_for(reader.readline(), 5))
        except asyncio.TimeoutError:
            problems.append(f"emulator stopped answering after {bytes(received[-200:])!r}")
        finally:
            writer.close()

    server = await asyncio.start_server(scripted_server, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    spec = _spec_for(session)
    report = await run_call("127.0.0.1", port, spec, fixture_config)
    server.close()
    await server.wait_closed()
    assert not problems
    assert bytes(received) == session.stream("A")
    assert report.agistatus == session.agistatus
