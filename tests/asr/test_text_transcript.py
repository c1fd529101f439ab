"""Text helpers, transcript JSON round trip, conversation merge, SRT/text output, model lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from asr.model import ModelError, package_model_dir, read_model_sample_rate, resolve_model
from asr.text import character_error_rate, join_cjk, normalize_for_cer
from asr.transcript import (ChannelTranscript, Segment, Transcript, Word, merge_conversation, to_srt, to_text)
from config import load_settings


def test_join_cjk_removes_only_spaces_between_ideographs() -> None:
    assert join_cjk("我 要 投诉 噪音 问题") == "我要投诉噪音问题"
    assert join_cjk("도로에 물이 새고 있어요") == "도로에 물이 새고 있어요"
    assert join_cjk("我 的 wifi 坏 了") == "我的 wifi 坏了"
    assert join_cjk("  12345 热线  ") == "12345 热线"


def test_cer_ignores_spaces_and_punctuation() -> None:
    assert normalize_for_cer("你好， 世界！") == "你好世界"
    assert character_error_rate("你好世界", "你 好，世 界") == (0, 4)
    assert character_error_rate("你好世界", "你坏世") == (2, 4)
    assert character_error_rate("도로에 물이", "도로 물이") == (1, 5)


def _sample() -> Transcript:
    caller = ChannelTranscript(0, "诉求人", [
        Segment(5.0, 6.0, "路灯坏了", [Word(5.0, 5.5, "路灯", 0.9), Word(5.5, 6.0, "坏了", 0.8)]),
        Segment(6.5, 7.0, "在东门", [Word(6.5, 7.0, "在东门", 0.7)]),
    ])
    agent = ChannelTranscript(1, "坐席", [
        Segment(0.5, 2.0, "您好请讲", [Word(0.5, 2.0, "您好请讲", 1.0)]),
        Segment(9.0, 10.0, "好的", [Word(9.0, 10.0, "好的", 1.0)]),
    ])
    return Transcript(model="m", duration_seconds=11.0, channels=[caller, agent])


def test_transcript_round_trip() -> None:
    t = _sample()
    assert Transcript.from_dict(t.to_dict()) == t
    assert t.channel(1).text == "您好请讲 好的"
    with pytest.raises(KeyError):
        t.channel(2)


def test_merge_conversation_orders_and_joins_turns() -> None:
    turns = merge_conversation(_sample())
    assert [(tu.speaker, tu.start, tu.end, tu.text) for tu in turns] == [
        ("坐席", 0.5, 2.0, "您好请讲"),
        ("诉求人", 5.0, 7.0, "路灯坏了在东门"),
        ("坐席", 9.0, 10.0, "好的"),
    ]


def test_srt_and_text_output() -> None:
    srt = to_srt(_sample())
    assert srt.startswith("1\n00:00:00,500 --> 00:00:02,000\n坐席：您好请讲\n")
    assert "3\n00:00:09,000 --> 00:00:10,000\n坐席：好的" in srt
    assert to_text(_sample()).splitlines()[1] == "[00:05.0-00:07.0] 诉求人：路灯坏了在东门"


def test_model_defaults_to_the_installed_package() -> None:
    info = resolve_model(load_settings(environ={}))
    assert info.path == package_model_dir()
    assert (info.path / "am" / "final.mdl").is_file()
    assert info.name == "vosk-model-small-ko" and info.sample_rate == 16000


def test_model_sample_rate_from_conf(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mfcc.conf").write_text("--use-energy=false\n--sample-frequency=8000\n")
    assert read_model_sample_rate(tmp_path) == 8000
    (tmp_path / "conf" / "mfcc.conf").write_text("--use-energy=false\n")
    assert read_model_sample_rate(tmp_path) == 16000


def test_configured_model_path_is_checked(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="not found"):
        resolve_model(load_settings(environ={"HOTLINE_ASR__MODEL_PATH": str(tmp_path / "missing")}))
    with pytest.raises(ModelError, match="not a Vosk model"):
        resolve_model(load_settings(environ={"HOTLINE_ASR__MODEL_PATH": str(tmp_path)}))
    (tmp_path / "am").mkdir()
    (tmp_path / "am" / "final.mdl").write_bytes(b"x")
    (tmp_path / "conf").mkdir()
    (tmp_path / "conf" / "mfcc.conf").write_text("--sample-frequency=8000\n")
    info = resolve_model(load_settings(environ={"HOTLINE_ASR__MODEL_PATH": str(tmp_path),
                                                "HOTLINE_ASR__MODEL_NAME": "vosk-model-cn-0.22"}))
    assert (info.name, info.sample_rate) == ("vosk-model-cn-0.22", 8000)
