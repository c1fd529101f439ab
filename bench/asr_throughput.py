"""ASR throughput: our engine (per-leg, silence gated, process pool) against `vosk-transcriber`.

    .venv/bin/python bench/asr_throughput.py                      # 8 calls, one worker per core
    .venv/bin/python bench/asr_throughput.py --calls 16 --turns 16 --modes fresh,reuse

Corpus: synthetic two-leg calls at 8 kHz made of known Korean sentences (espeak-ng, for the
vosk-model-small-ko test model): agent and caller alternate turns with pauses, each leg carrying low
line noise while the other party speaks; MixMonitor-style ``<id>-in.wav`` / ``<id>-out.wav`` plus the
mono mix ``<id>-mix.wav`` that vosk-transcriber gets (it cannot keep the legs apart).

Contenders, same model, same cores, one run:
  vosk-transcriber   the CLI shipped with vosk, on the mixed files (one invocation over the corpus folder;
                     its thread pool runs one task per core), ffmpeg resampling, 4000-byte chunks
  engine/<mode>      asr.engine on the two legs of each call, a process pool with one worker per core,
                     each loading the model once. Modes: ``fresh`` = a new KaldiRecognizer per channel;
                     ``reuse`` = one recognizer per worker, Reset() between channels (what asr/worker.py uses)

Figures: call-recording seconds per wall second (start-up and model load included for everyone) and
per CPU second (user + system of all the contender's processes: the fair figure when other work shares
the machine), ratios to vosk-transcriber, peak RSS of the largest process, CER against the known
sentences (spaces and punctuation ignored). Also the fast-path latency: a 10 s caller clip with an
already-loaded model, fresh and reused recognizer.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing as mp
import os
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402

from asr.engine import EngineOptions, TranscriptionEngine, measure_clip_latency  # noqa: E402
from asr.audio import Audio  # noqa: E402
from asr.model import ModelInfo, resolve_model  # noqa: E402
from asr.text import character_error_rate  # noqa: E402
from asr.transcript import Transcript, merge_conversation  # noqa: E402
from config import load_settings  # noqa: E402

RATE = 8000
NOISE_DBFS = -60.0
AGENT_LINES = (
    "안녕하세요 서울시 민원 센터입니다",
    "무엇을 도와드릴까요",
    "주소를 말씀해 주세요",
    "언제부터 그랬습니까",
    "담당 부서에 바로 전달하겠습니다",
    "연락처를 확인하겠습니다",
    "처리 결과는 문자로 알려 드리겠습니다",
    "다른 문의 사항은 없으십니까",
    "불편을 드려서 죄송합니다",
    "감사합니다 좋은 하루 되세요",
)
CALLER_LINES = (
    "도로에 물이 새고 있어요",
    "오늘 아침부터 계속 그래요",
    "버스가 너무 늦게 와요",
    "쓰레기를 치워 주세요",
    "가로등이 고장 났어요",
    "공사 소음 때문에 잠을 못 자요",
    "아파트 앞에 차가 불법 주차되어 있어요",
    "시청 근처 사거리입니다",
    "네 맞습니다",
    "빨리 처리해 주시면 좋겠어요",
)


# ---------------------------------------------------------------- corpus
@dataclass(frozen=True)
class Call:
    id: str
    caller: Path
    agent: Path
    mix: Path
    seconds: float
    reference: str


def tts(text: str, voice_args: list[str], cache: Path) -> np.ndarray:
    key = hashlib.sha1(("|".join(voice_args) + text).encode()).hexdigest()[:16]
    out = cache / f"{key}.wav"
    if not out.exists():
        raw = cache / f"{key}.raw.wav"
        subprocess.run(["espeak-ng", "-v", "ko", *voice_args, "-w", str(raw), text], check=True)
        subprocess.run(["sox", str(raw), "-r", str(RATE), "-c", "1", "-b", "16", str(out)], check=True)
        raw.unlink()
    data, _ = sf.read(str(out), dtype="float32")
    return data


def make_corpus(workdir: Path, calls: int, turns: int, seed: int) -> list[Call]:
    rng = random.Random(seed)
    noise_rng = np.random.default_rng(seed)
    cache = workdir / "tts"
    cache.mkdir(parents=True, exist_ok=True)
    voices = {0: ["-s", "135", "-p", "60"], 1: ["-s", "125", "-p", "40"]}  # caller, agent
    out: list[Call] = []
    for n in range(calls):
        placed: list[tuple[float, int, str, np.ndarray]] = []
        t = rng.uniform(0.3, 1.0)
        for k in range(turns):
            ch = 1 if k % 2 == 0 else 0  # the agent greets first
            lines = AGENT_LINES if ch == 1 else CALLER_LINES
            for _ in range(rng.choice((1, 1, 2))):
                text = rng.choice(lines)
                x = tts(text, voices[ch], cache)
                placed.append((t, ch, text, x))
                t += len(x) / RATE + rng.uniform(0.2, 0.5)
            t += rng.uniform(0.4, 1.5)  # the pause before the other party answers
        frames = int((t + 1.0) * RATE)
        legs = (noise_rng.standard_normal((frames, 2)) * 10 ** (NOISE_DBFS / 20)).astype(np.float32)
        for start, ch, _text, x in placed:
            a = int(start * RATE)
            legs[a:a + len(x), ch] += x
        cid = f"call{n:03d}"
        caller, agent, mix = workdir / f"{cid}-in.wav", workdir / f"{cid}-out.wav", workdir / "mix" / f"{cid}.wav"
        mix.parent.mkdir(exist_ok=True)
        sf.write(str(caller), legs[:, 0], RATE, subtype="PCM_16")
        sf.write(str(agent), legs[:, 1], RATE, subtype="PCM_16")
        sf.write(str(mix), np.clip(legs.sum(axis=1), -1, 1), RATE, subtype="PCM_16")
        out.append(Call(cid, caller, agent, mix, frames / RATE, " ".join(p[2] for p in placed)))
    return out


# ---------------------------------------------------------------- our engine, process pool
_engine: TranscriptionEngine | None = None


def _init_worker(info: ModelInfo, options: EngineOptions) -> None:
    global _engine
    from config.log import configure_logging

    configure_logging(json=True, level="WARNING")
    _engine = TranscriptionEngine(info, options)


def _transcribe(call: Call) -> tuple[str, dict[str, Any], int, int, float]:
    assert _engine is not None
    t = _engine.transcribe_legs(call.caller, call.agent)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return call.id, t.to_dict(), os.getpid(), usage.ru_maxrss, usage.ru_utime + usage.ru_stime


@dataclass(frozen=True)
class RunResult:
    name: str
    wall_seconds: float
    cpu_seconds: float  # user + system of every process of the contender, start-up and model load included
    peak_rss_mb: float  # the largest single process
    texts: dict[str, str]


def run_engine(mode: str, corpus: list[Call], info: ModelInfo, workers: int, chunk_seconds: float) -> RunResult:
    options = EngineOptions(reuse_recognizer=(mode == "reuse"), chunk_seconds=chunk_seconds)
    ctx = mp.get_context("spawn")  # a clean process per worker, as the worker pool runs them
    started = time.perf_counter()
    texts: dict[str, str] = {}
    peak_kb = 0
    cpu_by_pid: dict[int, float] = {}
    with ctx.Pool(workers, initializer=_init_worker, initargs=(info, options)) as pool:
        for cid, data, pid, rss_kb, cpu in pool.imap_unordered(_transcribe, sorted(corpus, key=lambda c: -c.seconds)):
            turns = merge_conversation(Transcript.from_dict(data))
            texts[cid] = " ".join(t.text for t in turns)
            peak_kb = max(peak_kb, rss_kb)
            cpu_by_pid[pid] = max(cpu_by_pid.get(pid, 0.0), cpu)
    wall = time.perf_counter() - started
    return RunResult(f"engine/{mode}", wall, sum(cpu_by_pid.values()), peak_kb / 1024, texts)


# ---------------------------------------------------------------- vosk-transcriber
def run_vosk_transcriber(corpus: list[Call], model_path: Path, workdir: Path) -> RunResult:
    exe = shutil.which("vosk-transcriber", path=str(Path(sys.executable).parent)) or shutil.which("vosk-transcriber")
    if exe is None:
        raise SystemExit("vosk-transcriber not found (it ships with the vosk package)")
    if shutil.which("ffmpeg") is None:
        raise SystemExit("vosk-transcriber needs ffmpeg on PATH")
    out_dir = workdir / "vt_out"
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir()
    cmd = [exe, "--model", str(model_path), "-i", str(corpus[0].mix.parent), "-o", str(out_dir),
           "-t", "txt", "--log-level", "WARNING"]
    log_path = workdir / "vt_stderr.log"
    with log_path.open("wb") as log_file:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log_file)
        _pid, status, usage = os.wait4(proc.pid, 0)  # rusage of this child alone: its peak RSS
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        err = log_path.read_text(errors="replace")
        raise SystemExit(f"vosk-transcriber failed ({proc.returncode}): {err[-2000:]}")
    texts = {}
    for call in corpus:
        result = out_dir / f"{call.id}.txt"
        texts[call.id] = result.read_text(encoding="utf-8").replace("\n", " ") if result.exists() else ""
    return RunResult("vosk-transcriber", wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, texts)


# ---------------------------------------------------------------- figures
def cer(run: RunResult, corpus: list[Call]) -> float:
    errors = chars = 0
    for call in corpus:
        e, n = character_error_rate(call.reference, run.texts.get(call.id, ""))
        errors += e
        chars += n
    return errors / chars if chars else float("nan")


def latency(info: ModelInfo, corpus_dir: Path, clip_seconds: float) -> dict[str, list[float]]:
    """Fast path: a ``clip_seconds`` caller clip, model already loaded, fresh vs reused recognizer."""
    cache = corpus_dir / "tts"
    parts, total = [], 0
    i = 0
    while total < clip_seconds * RATE:
        x = tts(CALLER_LINES[i % len(CALLER_LINES)], ["-s", "135", "-p", "60"], cache)
        parts += [x, np.zeros(int(0.4 * RATE), dtype=np.float32)]
        total += len(x) + int(0.4 * RATE)
        i += 1
    clip = np.concatenate(parts)[: int(clip_seconds * RATE)]
    audio = Audio(samples=clip.reshape(-1, 1), sample_rate=RATE, source="latency-clip")
    out = {}
    for mode in ("fresh", "reuse"):
        engine = TranscriptionEngine(info, EngineOptions(reuse_recognizer=(mode == "reuse")))
        engine.transcribe_clip(audio)  # warm: for reuse this is the worker's start-up burst
        out[mode] = measure_clip_latency(engine, audio, repeats=3).runs_seconds
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--calls", type=int, default=8)
    ap.add_argument("--turns", type=int, default=12, help="turns per call (agent and caller alternate)")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="engine processes (default: cores)")
    ap.add_argument("--modes", default="fresh,reuse", help="engine modes to run: fresh, reuse")
    ap.add_argument("--chunk-seconds", type=float, default=EngineOptions().chunk_seconds)
    ap.add_argument("--latency-seconds", type=float, default=10.0)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--repeat", type=int, default=1, help="run every contender this many times")
    ap.add_argument("--workdir", type=Path, default=None, help="keep the corpus here (default: a temp dir)")
    ap.add_argument("--json", action="store_true", help="also print the figures as one JSON line")
    args = ap.parse_args(argv)

    from config.log import configure_logging

    configure_logging(json=True, level="WARNING")
    info = resolve_model(load_settings())
    tmp = None
    workdir = args.workdir
    if workdir is None:
        tmp = tempfile.TemporaryDirectory(prefix="asr_bench_")
        workdir = Path(tmp.name)
    workdir.mkdir(parents=True, exist_ok=True)
    w = sys.stdout.write
    try:
        t0 = time.perf_counter()
        corpus = make_corpus(workdir, args.calls, args.turns, args.seed)
        audio_seconds = sum(c.seconds for c in corpus)
        w(f"corpus: {len(corpus)} calls, {audio_seconds:.1f} s of call recordings (8 kHz, two legs each), "
          f"made in {time.perf_counter() - t0:.1f} s; model {info.name}; {os.cpu_count()} cores\n")
        modes = [m.strip() for m in args.modes.split(",") if m.strip()]
        figures = []
        for rep in range(args.repeat):
            runs = [run_vosk_transcriber(corpus, info.path, workdir)]
            for mode in modes:
                runs.append(run_engine(mode, corpus, info, args.workers, args.chunk_seconds))
            base, base_cpu = audio_seconds / runs[0].wall_seconds, audio_seconds / runs[0].cpu_seconds
            w(f"run {rep + 1}/{args.repeat}, load average before: {os.getloadavg()[0]:.1f}\n")
            w(f"{'contender':<18} {'wall s':>8} {'rec s/wall s':>13} {'ratio':>6} {'cpu s':>8} {'rec s/cpu s':>12} "
              f"{'ratio':>6} {'peak RSS MB':>12} {'CER':>7}\n")
            for run in runs:
                speed, cpu_speed = audio_seconds / run.wall_seconds, audio_seconds / run.cpu_seconds
                row = {"repeat": rep + 1, "name": run.name, "wall_seconds": round(run.wall_seconds, 2),
                       "throughput": round(speed, 3), "ratio": round(speed / base, 3),
                       "cpu_seconds": round(run.cpu_seconds, 2), "cpu_throughput": round(cpu_speed, 3),
                       "cpu_ratio": round(cpu_speed / base_cpu, 3), "peak_rss_mb": round(run.peak_rss_mb, 1),
                       "cer": round(cer(run, corpus), 4)}
                figures.append(row)
                w(f"{run.name:<18} {row['wall_seconds']:>8.2f} {speed:>13.2f} {row['ratio']:>6.2f} "
                  f"{row['cpu_seconds']:>8.2f} {cpu_speed:>12.2f} {row['cpu_ratio']:>6.2f} "
                  f"{row['peak_rss_mb']:>12.1f} {row['cer']:>7.3f}\n")
            sys.stdout.flush()
        lat = latency(info, workdir, args.latency_seconds)
        for mode, runs_s in lat.items():
            w(f"fast path {args.latency_seconds:.0f} s clip, model loaded, {mode} recognizer: "
              f"{', '.join(f'{r:.3f}' for r in runs_s)} s (median {float(np.median(runs_s)):.3f} s)\n")
        if args.json:
            w(json.dumps({"audio_seconds": round(audio_seconds, 1), "runs": figures, "latency": lat}) + "\n")
    finally:
        if tmp is not None:
            tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
