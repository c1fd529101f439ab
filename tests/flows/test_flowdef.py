"""Flow validation: every problem reported with file and line."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from agi.flowdef import FlowError, load_flows, parse_flow
from agi.prompts import PromptError, build_prompts, check_prompts, inventory
from cli.main import main as cli_main

GOOD = """\
flow: demo
start: hello
nodes:
  hello:
    type: play
    prompt: {sound: hl-demo, text: 你好}
    next: bye
  bye:
    type: hangup
"""


def problems(text: str, name: str = "demo.yaml") -> list[str]:
    _, found = parse_flow(textwrap.dedent(text), name)
    return [str(p) for p in found]


def test_good_flow_has_no_problems():
    flow, found = parse_flow(GOOD, "demo.yaml")
    assert found == [] and flow is not None and flow.start == "hello"


@pytest.mark.parametrize("text,expected", [
    (GOOD.replace("type: play", "type: dance"), "demo.yaml:5: node 'hello': unknown node type 'dance'"),
    (GOOD.replace("next: bye", "next: byebye"), "demo.yaml:4: node 'hello': next to a missing node 'byebye'"),
    (GOOD.replace("text: 你好", "text: ''"), "demo.yaml:6: node 'hello': prompt without text"),
    (GOOD.replace("start: hello", "start: nowhere"), "demo.yaml:2: start node 'nowhere' does not exist"),
    (GOOD.replace("    next: bye\n", ""), "demo.yaml:4: node 'hello': a play node needs 'next'"),
    (GOOD + "  orphan:\n    type: hangup\n", "demo.yaml:10: node 'orphan' is unreachable from start 'hello'"),
    (GOOD.replace("flow: demo", "flow: other"), "demo.yaml:1: flow name 'other' must match the file name 'demo'"),
    (GOOD.replace("    prompt: {sound: hl-demo, text: 你好}\n", ""),
     "demo.yaml:4: node 'hello': missing required key 'prompt' for a play node"),
])
def test_each_problem_names_file_and_line(text, expected):
    found = problems(text)
    assert any(p.startswith(expected) for p in found), found


def test_loop_without_exit():
    text = """\
    flow: loop
    start: a
    nodes:
      a:
        type: play
        prompt: {sound: a, text: 甲}
        next: b
      b:
        type: play
        prompt: {sound: b, text: 乙}
        next: a
    """
    found = problems(text, "loop.yaml")
    assert "loop.yaml:4: node 'a': loop without exit (no path from here reaches hangup, end or another flow)" in found
    assert "loop.yaml:8: node 'b': loop without exit (no path from here reaches hangup, end or another flow)" in found


def test_bad_digit_patterns_and_menu_keys():
    text = """\
    flow: bad
    start: m
    nodes:
      m:
        type: menu
        prompt: {sound: m, text: 菜单}
        choices:
          "12": c
          "A": c
          "1": c
        on_fail: c
      c:
        type: collect
        prompt: {sound: c, text: 号码}
        pattern: '[a-z]+'
        max_digits: 11
        next: e
      e:
        type: hangup
    """
    found = problems(text, "bad.yaml")
    assert "bad.yaml:8: node 'm': bad digit pattern '12' in choices: one of 0-9 * # expected" in found
    assert "bad.yaml:9: node 'm': bad digit pattern 'A' in choices: one of 0-9 * # expected" in found
    assert any(p.startswith("bad.yaml:15: node 'c': bad digit pattern '[a-z]+'") for p in found)


def test_unknown_keys_duplicates_enums_and_queue_statuses():
    text = """\
    flow: q
    start: s
    nodes:
      s:
        type: set
        fields: {appeal_type: 闲聊, caller_number: '1'}
        colour: red
        next: q
      q:
        type: queue
        answered: h
        statuses: {TIMEOUT: h, BUSY: h}
      h:
        type: hangup
        outcome: 成功
      h:
        type: hangup
    """
    found = problems(text, "q.yaml")
    assert "q.yaml:16: duplicate key 'h'" in found
    assert "q.yaml:7: node 's': unknown key 'colour' for a set node" in found
    assert any(p.startswith("q.yaml:6: node 's': appeal_type = '闲聊' is not one of") for p in found)
    assert any(p.startswith("q.yaml:6: node 's': field 'caller_number' cannot be set") for p in found)
    assert any(p.startswith("q.yaml:12: node 'q': unknown QUEUESTATUS 'BUSY'") for p in found)
    assert any(p.startswith("q.yaml:9: node 'q': QUEUESTATUS FULL, JOINEMPTY") for p in found)


def test_yaml_syntax_error_has_a_line():
    assert problems("flow: x\nnodes: [a,\n", "x.yaml")[0].startswith("x.yaml:")


def test_load_flows_collects_all_files_and_cross_flow_gotos(tmp_path):
    (tmp_path / "demo.yaml").write_text(GOOD.replace("  bye:\n    type: hangup\n",
                                                     "  bye:\n    type: goto\n    flow: ghost\n"), encoding="utf-8")
    (tmp_path / "broken.yaml").write_text("flow: broken\nstart: a\nnodes:\n  a: {type: nope}\n", encoding="utf-8")
    with pytest.raises(FlowError) as err:
        load_flows(tmp_path)
    text = [str(p) for p in err.value.problems]
    assert any(t.startswith("broken.yaml:4: node 'a': unknown node type 'nope' (known: agent_connect,") for t in text)
    assert any(t.startswith("demo.yaml:") and "goto to a missing flow 'ghost'" in t for t in text)


def test_shipped_flows_are_valid_and_complete(shipped_flows):
    assert {"main", "menu", "survey", "agent-connect", "queue", "voicemail", "call-end"} <= set(shipped_flows)
    main = shipped_flows["main"]
    # GB/T 33358: no menu between the greeting and a human in the default flow
    assert [n.type for n in main.nodes.values()].count("menu") == 0
    assert "录音" in main.nodes["greeting"].prompt.text
    assert all(x in main.nodes["greeting"].prompt.text for x in ("110", "119", "120"))
    assert len(inventory(shipped_flows)) >= 30


def test_cli_flows_check(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("cli.main.configure_logging", lambda **kw: None)
    assert cli_main(["flows", "check"]) == 0
    assert "flows OK" in capsys.readouterr().out
    (tmp_path / "demo.yaml").write_text(GOOD.replace("type: play", "type: dance"), encoding="utf-8")
    assert cli_main(["flows", "check", "--dir", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "demo.yaml:5: node 'hello': unknown node type 'dance'" in out


def test_prompt_conflicts_are_refused(tmp_path):
    (tmp_path / "demo.yaml").write_text(GOOD, encoding="utf-8")
    (tmp_path / "other.yaml").write_text(GOOD.replace("flow: demo", "flow: other").replace("你好", "再见"),
                                         encoding="utf-8")
    with pytest.raises(PromptError):
        inventory(load_flows(tmp_path))


def test_build_and_check_prompts(tmp_path):
    flows_dir = tmp_path / "flows"
    flows_dir.mkdir()
    (flows_dir / "demo.yaml").write_text(GOOD, encoding="utf-8")
    flows = load_flows(flows_dir)
    sounds = tmp_path / "sounds"
    assert check_prompts(flows, sounds) == ["hl-demo"]
    assert build_prompts(flows, sounds) == ["hl-demo"]
    assert check_prompts(flows, sounds) == []
    import soundfile as sf
    info = sf.info(str(sounds / "hl-demo.wav"))
    assert (info.samplerate, info.channels, info.subtype) == (8000, 1, "PCM_16") and info.duration > 0.2
    assert build_prompts(flows, sounds) == []          # only missing ones are built
