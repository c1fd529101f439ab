"""Transcript data: per-channel, word-timed; JSON round trip; merge into one conversation; SRT/text."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

SPEAKER_CALLER = "诉求人"   # channel 0 / the -in leg
SPEAKER_AGENT = "坐席"      # channel 1 / the -out leg
SPEAKER_MIXED = "混合"      # a mixed-down (or single unknown) channel, e.g. --channels mix
Speaker = Literal["诉求人", "坐席", "混合"]
CHANNEL_SPEAKERS: tuple[str, str] = (SPEAKER_CALLER, SPEAKER_AGENT)


def _r(t: float) -> float:
    return round(float(t), 3)


@dataclass(frozen=True)
class Word:
    start: float
    end: float
    word: str
    conf: float

    def to_dict(self) -> dict[str, Any]:
        return {"start": _r(self.start), "end": _r(self.end), "word": self.word, "conf": round(float(self.conf), 4)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Word:
        return cls(start=float(d["start"]), end=float(d["end"]), word=str(d["word"]), conf=float(d["conf"]))


@dataclass(frozen=True)
class Segment:
    start: float
    end: float
    text: str
    words: list[Word] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"start": _r(self.start), "end": _r(self.end), "text": self.text, "words": [w.to_dict() for w in self.words]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Segment:
        return cls(start=float(d["start"]), end=float(d["end"]), text=str(d["text"]),
                   words=[Word.from_dict(w) for w in d.get("words", [])])


@dataclass(frozen=True)
class ChannelTranscript:
    channel: int
    speaker: str
    segments: list[Segment] = field(default_factory=list)

    @property
    def text(self) -> str:
        return " ".join(s.text for s in self.segments if s.text)

    @property
    def words(self) -> list[Word]:
        return [w for s in self.segments for w in s.words]

    def to_dict(self) -> dict[str, Any]:
        return {"channel": self.channel, "speaker": self.speaker, "segments": [s.to_dict() for s in self.segments]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ChannelTranscript:
        return cls(channel=int(d["channel"]), speaker=str(d["speaker"]),
                   segments=[Segment.from_dict(s) for s in d.get("segments", [])])


@dataclass(frozen=True)
class Transcript:
    model: str
    duration_seconds: float
    channels: list[ChannelTranscript] = field(default_factory=list)

    def channel(self, index: int) -> ChannelTranscript:
        for ch in self.channels:
            if ch.channel == index:
                return ch
        raise KeyError(index)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "duration_seconds": _r(self.duration_seconds),
                "channels": [c.to_dict() for c in self.channels]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Transcript:
        return cls(model=str(d["model"]), duration_seconds=float(d["duration_seconds"]),
                   channels=[ChannelTranscript.from_dict(c) for c in d.get("channels", [])])


@dataclass(frozen=True)
class Turn:
    speaker: str
    start: float
    end: float
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"speaker": self.speaker, "start": _r(self.start), "end": _r(self.end), "text": self.text}


def merge_conversation(transcript: Transcript, join_gap_seconds: float = 1.5) -> list[Turn]:
    """One time-ordered conversation from the per-channel segments (for the QA player and agent view).

    Segments are ordered by start time (ties: channel order); consecutive segments of the same speaker
    closer than ``join_gap_seconds`` become one turn."""
    items = sorted(((s, ch.speaker, ch.channel) for ch in transcript.channels for s in ch.segments if s.text),
                   key=lambda it: (it[0].start, it[2], it[0].end))
    turns: list[Turn] = []
    for seg, speaker, _channel in items:
        last = turns[-1] if turns else None
        if last is not None and last.speaker == speaker and seg.start - last.end <= join_gap_seconds:
            sep = "" if _ends_cjk(last.text) and _starts_cjk(seg.text) else " "
            turns[-1] = Turn(speaker, last.start, max(last.end, seg.end), last.text + sep + seg.text)
        else:
            turns.append(Turn(speaker, seg.start, seg.end, seg.text))
    return turns


def _is_ideograph(ch: str) -> bool:
    return "\u3400" <= ch <= "\u9fff" or "\uf900" <= ch <= "\ufaff" or "\U00020000" <= ch <= "\U0003134f"


def _ends_cjk(text: str) -> bool:
    return bool(text) and _is_ideograph(text[-1])


def _starts_cjk(text: str) -> bool:
    return bool(text) and _is_ideograph(text[0])


def _srt_time(t: float) -> str:
    ms = int(round(max(t, 0.0) * 1000))
    h, rem = divmod(ms, 3_600_000)
    m, rem = divmod(rem, 60_000)
    s, ms = divmod(rem, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def to_srt(transcript: Transcript) -> str:
    """SubRip subtitles of the merged conversation, each cue prefixed with its speaker."""
    cues = []
    for i, turn in enumerate(merge_conversation(transcript), 1):
        cues.append(f"{i}\n{_srt_time(turn.start)} --> {_srt_time(turn.end)}\n{turn.speaker}：{turn.text}\n")
    return "\n".join(cues)


def to_text(transcript: Transcript) -> str:
    """Plain text of the merged conversation: ``[mm:ss.s-mm:ss.s] speaker：text`` per turn."""
    def ts(t: float) -> str:
        m, s = divmod(max(t, 0.0), 60.0)
        return f"{int(m):02d}:{s:04.1f}"

    return "".join(f"[{ts(t.start)}-{ts(t.end)}] {t.speaker}：{t.text}\n" for t in merge_conversation(transcript))
