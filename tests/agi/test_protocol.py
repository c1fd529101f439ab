"""HotlineAGI against every reply form res_agi produces (table-driven), quoting, and pyst2's pitfalls."""

from __future__ import annotations

import io
import threading
from typing import Any

import pytest

from agi.channel import ChannelHungUp, CommandFailed, DigitsResult, PlayResult, ProtocolError, RecordResult
from agi.emulator.wire import parse_args
from agi.protocol import HotlineAGI, parse_reply_line, quote_arg, read_env_block

ENV = b"agi_network: yes\nagi_network_script: main?lang=zh\nagi_uniqueid: 1795901013.1\nagi_accountcode: \n\n"
USAGE_520 = (b"520-Invalid command syntax.  Proper usage follows:\n"
             b"Returns <literal>0</literal> if <replaceable>variablename</replaceable> is not set.\n"
             b"Example return code: 200 result=1 (testvariable)\n"
             b"200 result=0\n"
             b"520-looks like a continuation\n"
             b"520 End of proper usage.\n")
DEAD = b"511 Command Not Permitted on a dead channel or intercept routine\n"


def make(replies: bytes) -> tuple[HotlineAGI, io.BytesIO]:
    out = io.BytesIO()
    return HotlineAGI(io.BytesIO(ENV + replies), out), out


HUP = ChannelHungUp
CASES: list[tuple[str, str, tuple, bytes, Any, str, bool]] = [
    # id, method, args, Asterisk's reply bytes, expected return (or exception type), line sent, hung_up after
    ("answer", "answer", (), b"200 result=0\n", None, "ANSWER", False),
    ("status-ring", "channel_status", (), b"200 result=4\n", 4, "CHANNEL STATUS", False),
    ("stream-done", "stream_file", ("beep",), b"200 result=0 endpos=3404\n", PlayResult(None, 3404), 'STREAM FILE beep ""', False),
    ("stream-digit", "stream_file", ("demo-thanks", "123"), b"200 result=50 endpos=14560\n", PlayResult("2", 14560),
     'STREAM FILE demo-thanks "123"', False),
    ("stream-missing", "stream_file", ("no-such-prompt",), b"200 result=-1 endpos=0\n", PlayResult(None, 0, True),
     'STREAM FILE no-such-prompt ""', False),
    ("stream-hangup", "stream_file", ("demo-thanks",), b"200 result=-1 endpos=12000\nHANGUP\n", HUP,
     'STREAM FILE demo-thanks ""', True),
    ("stream-511", "stream_file", ("beep",), b"HANGUP\n" + DEAD, HUP, 'STREAM FILE beep ""', True),
    ("getdata-hash", "get_data", ("beep", 5000, 4), b"200 result=12\n", DigitsResult("12", False), "GET DATA beep 5000 4", False),
    ("getdata-max", "get_data", ("beep", 5000, 4), b"200 result=1234\n", DigitsResult("1234", False), "GET DATA beep 5000 4", False),
    ("getdata-hash-empty", "get_data", ("beep", 5000, 4), b"200 result=\n", DigitsResult("", False), "GET DATA beep 5000 4", False),
    ("getdata-timeout-empty", "get_data", ("beep", 5000, 4), b"200 result= (timeout)\n", DigitsResult("", True),
     "GET DATA beep 5000 4", False),
    ("getdata-timeout-digits", "get_data", ("beep", 5000, 4), b"200 result=12 (timeout)\n", DigitsResult("12", True),
     "GET DATA beep 5000 4", False),
    ("getdata-hangup", "get_data", ("beep", 5000, 4), b"200 result=-1\nHANGUP\n", HUP, "GET DATA beep 5000 4", True),
    ("wait-digit", "wait_for_digit", (5000,), b"200 result=55\n", "7", "WAIT FOR DIGIT 5000", False),
    ("wait-star", "wait_for_digit", (5000,), b"200 result=42\n", "*", "WAIT FOR DIGIT 5000", False),
    ("wait-timeout", "wait_for_digit", (2000,), b"200 result=0\n", None, "WAIT FOR DIGIT 2000", False),
    ("wait-hangup", "wait_for_digit", (2000,), b"200 result=-1\nHANGUP\n", HUP, "WAIT FOR DIGIT 2000", True),
    ("say-digits", "say_digits", ("20261128",), b"200 result=0\n", None, 'SAY DIGITS 20261128 ""', False),
    ("say-number-digit", "say_number", (42, "#"), b"200 result=35\n", "#", 'SAY NUMBER 42 "#"', False),
    ("getvar-set", "get_variable", ("X",), "200 result=1 (含空格 的值)\n".encode(), "含空格 的值", "GET VARIABLE X", False),
    ("getvar-paren", "get_variable", ("X",), b"200 result=1 (a (b) c)\n", "a (b) c", "GET VARIABLE X", False),
    ("getvar-empty", "get_variable", ("X",), b"200 result=1 ()\n", "", "GET VARIABLE X", False),
    ("getvar-unset", "get_variable", ("UNSET_VAR",), b"200 result=0\n", None, "GET VARIABLE UNSET_VAR", False),
    ("getvar-dead", "get_variable", ("CHANNEL",), b"HANGUP\n200 result=1 (Local/1009@x-1;2)\n", "Local/1009@x-1;2",
     "GET VARIABLE CHANNEL", True),
    ("getfullvar", "get_full_variable", ("${CALLERID(num)}",), b"200 result=1 (13800138000)\n", "13800138000",
     "GET FULL VARIABLE ${CALLERID(num)}", False),
    ("getfullvar-unset", "get_full_variable", ("${UNSET_VAR}",), b"200 result=1 ()\n", "", "GET FULL VARIABLE ${UNSET_VAR}", False),
    ("setvar-utf8-space", "set_variable", ("X", "含空格 的值"), b"200 result=1\n", None, 'SET VARIABLE X "含空格 的值"', False),
    ("setvar-quotes", "set_variable", ("X", 'say "hi" \\o/'), b"200 result=1\n", None, 'SET VARIABLE X "say \\"hi\\" \\\\o/"', False),
    ("setvar-empty", "set_variable", ("X", ""), b"200 result=1\n", None, 'SET VARIABLE X ""', False),
    ("gosub", "gosub", ("fixtures-sub", "s", 1), b"100 result=0 Trying...\n200 result=0 Gosub complete\n", 0,
     "GOSUB fixtures-sub s 1", False),
    ("gosub-missing", "gosub", ("nowhere", "s", 1), b"200 result=-1 Gosub label not found\n", -1, "GOSUB nowhere s 1", False),
    ("exec-queue", "exec_app", ("Queue", "hotline,c,,,60"), b"200 result=0\n", 0, 'EXEC Queue "hotline,c,,,60"', False),
    ("exec-abandon", "exec_app", ("Queue", "hotline,c"), b"200 result=-1\nHANGUP\n", HUP, 'EXEC Queue "hotline,c"', True),
    ("exec-unknown-app", "exec_app", ("Nope",), b"200 result=-2\n", CommandFailed, "EXEC Nope", False),
    ("record-dtmf", "record_file", ("/tmp/x",), b"200 result=35 (dtmf) endpos=16000\n", RecordResult("#", 16000, "dtmf"),
     'RECORD FILE /tmp/x wav "#" 30000 0 beep', False),
    ("record-timeout", "record_file", ("/tmp/x", "wav", "#", 5000, False, 3), b"200 result=0 (timeout) endpos=8000\n",
     RecordResult(None, 8000, "timeout"), 'RECORD FILE /tmp/x wav "#" 5000 0 s=3', False),
    ("record-hangup", "record_file", ("/tmp/x",), b"200 result=-1 (hangup) endpos=4000\nHANGUP\n",
     RecordResult(None, 4000, "hangup"), 'RECORD FILE /tmp/x wav "#" 30000 0 beep', True),
    ("record-writefile", "record_file", ("/nope/x",), b"200 result=-1 (writefile)\n", CommandFailed,
     'RECORD FILE /nope/x wav "#" 30000 0 beep', False),
    ("music-on", "set_music", (True,), b"200 result=0\n", None, "SET MUSIC on default", False),
    ("verbose", "verbose", ("two\nlines",), b"200 result=1\n", None, 'VERBOSE "two lines" 1', False),
    ("unknown-510", "get_variable", ("X",), b"510 Invalid or unknown command\n", CommandFailed, "GET VARIABLE X", False),
    ("usage-520", "get_variable", ("X",), USAGE_520, CommandFailed, "GET VARIABLE X", False),
    ("status-511", "channel_status", (), DEAD, HUP, "CHANNEL STATUS", True),
    ("eof", "answer", (), b"", HUP, "ANSWER", True),
    ("eof-mid-line", "answer", (), b"200 res", HUP, "ANSWER", True),
    ("garbage", "answer", (), b"hello there\n", ProtocolError, "ANSWER", False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_reply_forms(case: tuple) -> None:
    _id, method, args, replies, expected, line, hung_after = case
    agi, out = make(replies)
    if isinstance(expected, type) and issubclass(expected, Exception):
        with pytest.raises(expected):
            getattr(agi, method)(*args)
    else:
        assert getattr(agi, method)(*args) == expected
    assert out.getvalue() == (line + "\n").encode("utf-8")
    assert agi.hung_up is hung_after


def test_520_block_is_consumed_whole_and_the_next_reply_is_read_right() -> None:
    agi, _ = make(USAGE_520 + b"200 result=1 (after)\n")
    with pytest.raises(CommandFailed) as info:
        agi.get_variable("X")
    assert info.value.code == 520
    assert "Example return code: 200 result=1 (testvariable)" in info.value.text
    assert "200 result=0" in info.value.text.split("\n")
    assert agi.get_variable("Y") == "after"


def test_hangup_line_is_recorded_once_and_media_commands_then_fail_without_touching_the_wire() -> None:
    agi, out = make(b"200 result=-1 endpos=12000\nHANGUP\n200 result=1 (yes)\n")
    with pytest.raises(ChannelHungUp):
        agi.stream_file("demo-thanks")
    assert agi.get_variable("AFTER") == "yes"  # dead mode: variables still work; HANGUP line skipped
    written = out.getvalue()
    for method, args in [("answer", ()), ("stream_file", ("beep",)), ("get_data", ("beep", 1000, 1)),
                         ("wait_for_digit", (100,)), ("say_digits", ("1",)), ("exec_app", ("Queue", "q")),
                         ("channel_status", ()), ("set_music", (True,)), ("record_file", ("/tmp/x",)),
                         ("gosub", ("c", "s", 1))]:
        with pytest.raises(ChannelHungUp):
            getattr(agi, method)(*args)
    assert out.getvalue() == written


def test_hangup_is_idempotent_on_a_dead_channel() -> None:
    agi, out = make(DEAD)
    agi.mark_hung_up()
    agi.hangup()  # 511 expected, not raised
    assert out.getvalue() == b"HANGUP\n"
    agi.close()
    agi.hangup()  # closed: nothing sent, nothing raised
    assert agi.closed


def test_constructor_installs_no_signal_handler_and_works_off_the_main_thread() -> None:
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            agi, _ = make(b"200 result=0\n")
            agi.answer()
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    t = threading.Thread(target=worker)
    t.start()
    t.join(5)
    assert errors == []


def test_no_stderr_output(capsys: pytest.CaptureFixture[str]) -> None:
    agi, _ = make(b"200 result=0 endpos=10\n")
    agi.stream_file("beep")
    captured = capsys.readouterr()
    assert "COMMAND" not in captured.err and "RESULT" not in captured.err and "ENV LINE" not in captured.err


@pytest.mark.parametrize("data,problem", [
    (b"", "EOF"), (b"agi_network: yes\n", "EOF"), (b"GET / HTTP/1.1\r\n\r\n", "not an AGI"),
    (b"\n", "empty"), (b"agi_x: " + b"a" * 70000 + b"\n", "over-long"),
])
def test_bad_environment_blocks(data: bytes, problem: str) -> None:
    with pytest.raises(ProtocolError, match=problem):
        read_env_block(io.BytesIO(data))


def test_env_values_keep_colons_and_empty_values() -> None:
    env = read_env_block(io.BytesIO(b"agi_request: agi://127.0.0.1:4573/main?lang=zh\nagi_accountcode: \n\n"))
    assert env == {"agi_request": "agi://127.0.0.1:4573/main?lang=zh", "agi_accountcode": ""}


@pytest.mark.parametrize("value", ["plain", "含空格 的值", 'a "quoted" word', "back\\slash", "", "tab\there", "#"])
def test_quoting_round_trips_through_asterisks_argument_parser(value: str) -> None:
    assert parse_args(f"SET VARIABLE X {quote_arg(value)}") == ["SET", "VARIABLE", "X", value]


def test_line_breaks_in_arguments_are_refused() -> None:
    with pytest.raises(ValueError):
        quote_arg("a\nb")


@pytest.mark.parametrize("line,result,data,extra,text", [
    ("200 result=1 (timeout) endpos=20", "1", "timeout", {"endpos": "20"}, ""),
    ("200 result=0 Gosub complete", "0", None, {}, "Gosub complete"),
    ("200 result=", "", None, {}, ""),
    ("200 result=-1 endpos=0", "-1", None, {"endpos": "0"}, ""),
])
def test_parse_reply_line(line: str, result: str, data: str | None, extra: dict, text: str) -> None:
    reply = parse_reply_line(line)
    assert (reply.result, reply.data, dict(reply.extra), reply.text) == (result, data, extra, text)
