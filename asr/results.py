"""Store a finished transcription: one ``transcripts`` row per channel, the agent console event for IVR clips,
and the job marked done, all in the caller's transaction (so a result lands exactly once)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from asr.transcript import CHANNEL_SPEAKERS, SPEAKER_CALLER, Transcript
from store import jobs
from store.models import AgentEvent, Call, Recording
from store.models import Transcript as TranscriptRow

IVR_CLIP = "ivr_clip"
TRANSCRIPT_READY = "transcript_ready"
ANY_AGENT = "*"     # the call is not answered yet: whichever agent picks it up


@dataclass(frozen=True)
class StoredResult:
    recording_id: int
    call_id: int | None
    transcript_ids: tuple[int, ...]
    agent_event_id: int | None
    text: str


def speaker_for(recording: Recording, channel: int) -> str:
    """Channel 0 is the caller (诉求人), channel 1 the agent (坐席); clips and voicemail are the caller's."""
    if recording.kind != "call" or (recording.channels or 1) == 1:
        return SPEAKER_CALLER
    return CHANNEL_SPEAKERS[channel] if 0 <= channel < len(CHANNEL_SPEAKERS) else SPEAKER_CALLER


def store_transcript(session: Session, job: jobs.ClaimedJob, recording: Recording, transcript: Transcript) -> StoredResult:
    """Replace the recording's transcripts with ``transcript``, publish a clip's text, complete ``job``.

    Raises :class:`store.jobs.LeaseLost` (roll back) when the job is no longer this worker's."""
    jobs.complete(session, job.id, job.lease_owner)  # first: a lost lease stops us before any write
    session.execute(delete(TranscriptRow).where(TranscriptRow.recording_id == recording.id))
    call_id = recording.call_id if recording.call_id is not None else job.call_id
    rows: list[TranscriptRow] = []
    for ch in sorted(transcript.channels, key=lambda c: c.channel):
        rows.append(TranscriptRow(recording_id=recording.id, call_id=call_id, channel=ch.channel,
                                  speaker=speaker_for(recording, ch.channel), model=transcript.model[:128],
                                  segments=[s.to_dict() for s in ch.segments], text=ch.text))
    session.add_all(rows)
    session.flush()
    text = " ".join(r.text for r in rows if r.text)
    event_id: int | None = None
    if recording.kind == IVR_CLIP:
        call = session.get(Call, call_id) if call_id is not None else None
        event = AgentEvent(agent_id=(call.agent_id if call is not None and call.agent_id else ANY_AGENT),
                           call_id=call_id, kind=TRANSCRIPT_READY,
                           payload={"record_id": call.record_id if call is not None else recording.record_id,
                                    "recording_id": recording.id, "text": text})
        session.add(event)
        session.flush()
        event_id = event.id
    return StoredResult(recording_id=recording.id, call_id=call_id, transcript_ids=tuple(r.id for r in rows),
                        agent_event_id=event_id, text=text)
