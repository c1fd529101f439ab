"""The emulator's 520 usage blocks and argument checks, command by command, as res_agi (Asterisk 22) has them.

A raw scripted FastAGI server sends each line and reads Asterisk's answer, so these tests do not depend on
our own protocol layer.
"""

from __future__ import annotations

import asyncio
from typing import Awaitable, Callable

import pytest

from agi.emulator import CallReport, CallSpec, EmulatorConfig, run_call
from agi.emulator.usage import RECORDED, USAGE
from agi.emulator.wire import COMMANDS, USAGE_HEAD, USAGE_TAIL, c_atoi, find_command, scan_float, scan_int
from fixture_log import FIXTURE_DIR, parse_log
from scripted_server import Script, raw_call

async def read_reply(reader: asyncio.StreamReader) -> list[str]:
    """One answer: a single line, a whole 520 block, or GOSUB's 100 line plus its final line; an unsolicited
    ``HANGUP`` line that came first is kept at the front."""
    lines = [(await asyncio.wait_for(reader.readline(), 5)).decode("utf-8")]
    while lines[-1] == "HANGUP\n":
        lines.append((await asyncio.wait_for(reader.readline(), 5)).decode("utf-8"))
    if lines[-1].startswith("520-"):
        while not lines[-1].startswith("520 "):
            lines.append((await asyncio.wait_for(reader.readline(), 5)).decode("utf-8"))
    elif lines[-1].startswith("100 "):
        lines.append((await asyncio.wait_for(reader.readline(), 5)).decode("utf-8"))
    assert all(line.endswith("\n") for line in lines), lines
    return [line[:-1] for line in lines]


async def scripted_call(script: Script, spec: CallSpec | None = None,
                        config: EmulatorConfig = EmulatorConfig()) -> tuple[CallReport, object]:
    """Run one emulated call against a server that runs ``script`` after the environment block."""
    report, value, _ = await raw_call(script, spec or CallSpec(), config)
    return report, value


async def exchange(lines: list[str], spec: CallSpec | None = None,
                   config: EmulatorConfig = EmulatorConfig()) -> tuple[CallReport, list[list[str]]]:
    async def script(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> list[list[str]]:
        replies = []
        for line in lines:
            writer.write((line + "\n").encode("utf-8"))
            await writer.drain()
            replies.append(await read_reply(reader))
        return replies

    report, replies = await scripted_call(script, spec, config)
    return report, replies  # type: ignore[return-value]


# ---------------------------------------------------------------------------- the texts themselves
def _recorded_blocks() -> dict[str, list[str]]:
    """command key -> usage lines, from every 520 block of errors.log."""
    session = next(s for s in parse_log(FIXTURE_DIR / "errors.log") if s.name == "errors")
    blocks: dict[str, list[str]] = {}
    for command, replies in session.exchanges():
        if replies and replies[0] == USAGE_HEAD:
            cmd = find_command(command.split())
            assert cmd is not None and replies[-1] == USAGE_TAIL
            assert blocks.setdefault(cmd.key, replies[1:-1]) == replies[1:-1]
    return blocks


def test_recorded_texts_are_exactly_those_of_errors_log() -> None:
    blocks = _recorded_blocks()
    assert len(blocks) == 8
    assert {k: list(v) for k, v in RECORDED.items()} == blocks


def test_derived_usage_reproduces_the_eight_recorded_texts() -> None:
    for key, lines in RECORDED.items():
        assert USAGE[key] == lines, key


def test_every_registered_command_has_usage_text() -> None:
    assert len(COMMANDS) == 47
    assert set(USAGE) == {c.key for c in COMMANDS}
    for key, lines in USAGE.items():
        assert lines and all(line and line == line.rstrip() and "\n" not in line for line in lines), key
        assert not any(line.startswith("520 ") for line in lines), key  # would end the block early


# ---------------------------------------------------------------------------- wrong arguments -> 520
BAD_ARGUMENTS: dict[str, list[str]] = {
    "channel status": ["CHANNEL STATUS a b"],
    "control stream file": ["CONTROL STREAM FILE beep", 'CONTROL STREAM FILE beep "" x',
                            'CONTROL STREAM FILE beep "" 3000 # * p x', "CONTROL STREAM FILE a b c d e f g h"],
    "database del": ["DATABASE DEL fam", "DATABASE DEL fam key x"],
    "database deltree": ["DATABASE DELTREE", "DATABASE DELTREE a b c"],
    "database get": ["DATABASE GET fam"],
    "database put": ["DATABASE PUT fam key"],
    "exec": ["EXEC"],
    "get data": ["GET DATA"],
    "get full variable": ["GET FULL VARIABLE", "GET FULL VARIABLE a b c"],
    "get option": ["GET OPTION beep", 'GET OPTION beep "" 1 2'],
    "get variable": ["GET VARIABLE", "GET VARIABLE a b"],
    "hangup": ["HANGUP a b"],
    "receive char": ["RECEIVE CHAR", "RECEIVE CHAR 1 2"],
    "receive text": ["RECEIVE TEXT"],
    "record file": ["RECORD FILE f wav #", "RECORD FILE f wav # abc"],
    "say alpha": ["SAY ALPHA abc", 'SAY ALPHA abc "" x', 'SAY ALPHA abc "" u 1'],
    "say digits": ['SAY DIGITS abc ""', "SAY DIGITS 123", 'SAY DIGITS 1 "" x'],
    "say number": ['SAY NUMBER abc ""', "SAY NUMBER 1", 'SAY NUMBER 1 "" f x'],
    "say phonetic": ["SAY PHONETIC abc", 'SAY PHONETIC abc "" x'],
    "say date": ['SAY DATE x ""', "SAY DATE 1"],
    "say time": ['SAY TIME x ""', 'SAY TIME 1 "" x'],
    "say datetime": ['SAY DATETIME x ""', "SAY DATETIME 1"],
    "send image": ["SEND IMAGE"],
    "send text": ["SEND TEXT a b"],
    "set autohangup": ["SET AUTOHANGUP", "SET AUTOHANGUP soon"],
    "set context": ["SET CONTEXT"],
    "set extension": ["SET EXTENSION a b"],
    "set music": ["SET MUSIC"],
    "set priority": ["SET PRIORITY", "SET PRIORITY no-such-label"],
    "set variable": ["SET VARIABLE X", 'SET VARIABLE X "y" z'],
    "stream file": ["STREAM FILE beep", 'STREAM FILE beep "" x', 'STREAM FILE beep "" 1 2', "STREAM FILE"],
    "tdd mode": ["TDD MODE"],
    "verbose": ["VERBOSE"],
    "wait for digit": ["WAIT FOR DIGIT", "WAIT FOR DIGIT abc", "WAIT FOR DIGIT --5", "WAIT FOR DIGIT 1 2"],
    "speech set": ["SPEECH SET a"],
    "speech load grammar": ["SPEECH LOAD GRAMMAR a"],
    "speech unload grammar": ["SPEECH UNLOAD GRAMMAR"],
    "speech activate grammar": ["SPEECH ACTIVATE GRAMMAR a b"],
    "speech deactivate grammar": ["SPEECH DEACTIVATE GRAMMAR"],
    "speech recognize": ["SPEECH RECOGNIZE prompt"],
    "gosub": ["GOSUB", "GOSUB ctx s", "GOSUB ctx s 1 a b"],
}
# res_agi's handlers for these never return RESULT_SHOWUSAGE, whatever the arguments
NEVER_USAGE: dict[str, str] = {
    "answer": "ANSWER please",
    "asyncagi break": "ASYNCAGI BREAK now",
    "noop": "NOOP a b c",
    "set callerid": "SET CALLERID",
    "speech create": "SPEECH CREATE",
    "speech destroy": "SPEECH DESTROY x",
}


def test_the_tables_cover_every_command() -> None:
    assert set(BAD_ARGUMENTS) | set(NEVER_USAGE) == {c.key for c in COMMANDS}
    assert not set(BAD_ARGUMENTS) & set(NEVER_USAGE)
    for key, lines in BAD_ARGUMENTS.items():
        for line in lines:
            assert find_command(line.split()).key == key, line  # type: ignore[union-attr]


@pytest.mark.parametrize("key", sorted(BAD_ARGUMENTS))
async def test_wrong_arguments_get_the_usage_block(key: str) -> None:
    lines = BAD_ARGUMENTS[key]
    report, replies = await exchange([*lines, "NOOP"])
    for line, reply in zip(lines, replies):
        assert reply[0] == USAGE_HEAD, line
        assert reply[-1] == USAGE_TAIL, line
        assert tuple(reply[1:-1]) == USAGE[key], line
    assert replies[-1] == ["200 result=0"]  # the block was terminated: the next command is answered normally
    assert report.agistatus == "SUCCESS"    # RESULT_SHOWUSAGE is not a failure
    assert [c.replies[0] for c in report.commands[:-1]] == [USAGE_HEAD] * len(lines)


async def test_commands_without_usage_errors_answer_whatever_the_arguments() -> None:
    _, replies = await exchange(list(NEVER_USAGE.values()))
    assert replies == [["200 result=0"], ["200 result=0"], ["200 result=0"], ["200 result=1"], ["200 result=0"],
                       ["200 result=0"]]


# ---------------------------------------------------------------------------- what res_agi accepts
def test_c_number_parsing() -> None:
    assert [scan_int(t) for t in ("5", " 5", "+5", "-5", "5x", "x5", "--5", "", " ")] == \
        [5, 5, 5, -5, 5, None, None, None, None]
    assert c_atoi("12abc") == 12 and c_atoi("abc") == 0 and c_atoi(" -3") == -3
    assert scan_float("1.5") == 1.5 and scan_float("2s") == 2.0 and scan_float("soon") is None


async def test_arguments_res_agi_accepts() -> None:
    """sscanf/atoi semantics: a leading number is enough; these all run instead of answering 520."""
    _, replies = await exchange([
        "WAIT FOR DIGIT +1",           # sscanf("%30d") takes a sign
        "WAIT FOR DIGIT 1ms",          # ... and ignores what follows the number
        'SAY NUMBER 12abc ""',
        'SAY DIGITS 12x ""',
        'SAY NUMBER 7 "" f',           # the gender argument
        'SAY ALPHA ab "" u',           # the case-sensitivity argument
        'SAY DATETIME 0 "" "ABdY" UTC',
        'STREAM FILE beep "" 0',
        "GET DATA beep abc 2",         # atoi: a bad timeout is 0, not a usage error
        "RECORD FILE /nonexistent/x ulaw # 1ms",
        "SET AUTOHANGUP 0",
        "SET PRIORITY 3",
        "VERBOSE hello",
        "SET MUSIC maybe",
        "HANGUP",
    ], config=EmulatorConfig(sound_seconds={"beep": 0.4255}))
    assert [r[0] for r in replies] == [
        "200 result=0", "200 result=0", "200 result=0", "200 result=0", "200 result=0", "200 result=0",
        "200 result=0", "200 result=0 endpos=3404", "200 result= (timeout)", "200 result=-1 (writefile)",
        "200 result=0", "200 result=0", "200 result=1", "200 result=0", "200 result=1"]
    assert replies[-1] == ["200 result=1"]


async def test_hangup_takes_the_channel_name_as_its_only_argument() -> None:
    spec = CallSpec(channel="Local/1@x-1;2")
    report, replies = await exchange(["HANGUP Local/9@x-9;2", "CHANNEL STATUS", "HANGUP Local/1@x-1;2",
                                      "CHANNEL STATUS"], spec)
    assert replies[:3] == [["200 result=-1"], ["200 result=6"], ["200 result=1"]]
    assert report.commands[2].replies == ("200 result=1", "HANGUP")
    assert report.hung_up and report.agistatus == "HANGUP"


async def test_stream_file_offset_and_missing_file(tmp_path) -> None:
    (tmp_path / "beep.sln").write_bytes(b"\0\0" * 3404)
    report, replies = await exchange(['STREAM FILE beep "" 1000', 'STREAM FILE nope "" 1200',
                                      "GET VARIABLE PLAYBACKSTATUS"], config=EmulatorConfig(sounds_dir=tmp_path))
    # ast_tellstream at the end is the whole file; a missing file answers with the offset it was given
    assert replies == [["200 result=0 endpos=3404"], ["200 result=-1 endpos=1200"], ["200 result=1 (SUCCESS)"]]
    assert report.agistatus == "FAILURE"


async def test_get_data_default_timeouts_and_missing_prompt(tmp_path) -> None:
    (tmp_path / "menu.sln").write_bytes(b"\0\0" * 8000)      # a one-second prompt
    report, replies = await exchange(["GET DATA menu", "GET DATA menu 0 0", "GET DATA nope 1000 1"],
                                     config=EmulatorConfig(sounds_dir=tmp_path))
    assert replies == [["200 result= (timeout)"], ["200 result=-1"], ["200 result=-1"]]
    first = report.commands[0]
    assert first.end_s - first.start_s == pytest.approx(1.0 + 6.0)   # prompt, then 6 s for the first digit
    assert report.agistatus == "SUCCESS" and not report.hung_up


async def test_gosub_priority_is_parsed_like_sscanf() -> None:
    from agi.emulator import GosubTarget
    config = EmulatorConfig(subroutines={"sub": GosubTarget(0.5, "r")})
    report, replies = await exchange(["GOSUB sub s 1", "GOSUB sub s n", "GOSUB sub s 2"], config=config)
    assert replies == [["100 result=0 Trying...", "200 result=0 Gosub complete"],
                       ["200 result=-1 Gosub label not found"], ["200 result=-1 Gosub label not found"]]
    assert report.agistatus == "FAILURE"


async def test_database_family_commands() -> None:
    _, replies = await exchange(["DATABASE PUT f a 1", "DATABASE PUT f b 2", "DATABASE DEL f a", "DATABASE DEL f a",
                                 "DATABASE GET f b", "DATABASE DELTREE f", "DATABASE DELTREE f", "DATABASE GET f b"])
    # DELTREE answers 0 when it deleted something and 1 when it did not: res_agi has it that way round
    assert [r[0] for r in replies] == ["200 result=1", "200 result=1", "200 result=1", "200 result=0",
                                       "200 result=1 (2)", "200 result=0", "200 result=1", "200 result=0"]


async def test_dead_channel_permissions_follow_res_agi() -> None:
    spec = CallSpec()
    lines = ["HANGUP", "DATABASE DEL f a", "SPEECH DESTROY", "SPEECH UNLOAD GRAMMAR g", "ASYNCAGI BREAK",
             "SAY ALPHA a \"\"", "SET CONTEXT x", "GOSUB sub s 1"]
    report, replies = await exchange(lines, spec)
    dead = "511 Command Not Permitted on a dead channel or intercept routine"
    assert replies[0] == ["200 result=1"]
    assert replies[1:] == [["HANGUP", "200 result=0"], ["200 result=0"], ["200 result=0"], ["200 result=0"], [dead],
                           [dead], [dead]]
    assert report.agistatus == "HANGUP"
