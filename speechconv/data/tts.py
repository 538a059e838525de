"""Wrappers around offline TTS engines (espeak-ng, flite, festival, optional piper).

Each engine turns a list of :class:`TtsJob` into raw WAV files (engine sample rate); resampling,
trimming and levels are done by the caller. Festival jobs are batched into one festival process
per call to avoid its ~0.5 s start-up; each utterance selects its voice and parameters explicitly,
so the audio does not depend on how jobs are batched.
"""

from __future__ import annotations

import functools
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speechconv.errors import SpeechconvError

ENGINES = ("espeak", "flite", "festival", "piper")
ENGINE_BINARIES = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival", "piper": "piper"}
APT_PACKAGES = "espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
PIPER_VOICES_ENV = "SPEECHCONV_PIPER_VOICES"

# espeak-ng variants that do not sound like a person speaking (or are test voices).
_ESPEAK_SKIP_VARIANTS = {
    "Demonic",
    "Half-LifeAnnouncementSystem",
    "UniversalRobot",
    "anikaRobot",
    "fast_test",
    "klatt",
}
_ESPEAK_VARIANT_LIMIT = 40  # variants per dialect; keeps the voice table small but diverse
# flite's awb_time is a talking-clock voice that can only say times.
_FLITE_SKIP_VOICES = {"awb_time"}
_TIMEOUT_S = 120


class TtsError(SpeechconvError):
    """A TTS engine is missing or failed."""


@dataclass(frozen=True)
class TtsJob:
    """One utterance to synthesize into ``out_path`` (WAV at the engine's native rate)."""

    text: str
    engine: str
    voice: str
    params: dict = field(default_factory=dict)
    out_path: str = ""


def _run(cmd: list[str], what: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=_TIMEOUT_S)
    except FileNotFoundError:
        raise TtsError(f"{what}: {cmd[0]} not found (apt-get install {APT_PACKAGES})") from None
    except subprocess.TimeoutExpired:
        raise TtsError(f"{what}: {cmd[0]} timed out after {_TIMEOUT_S} s") from None
    if proc.returncode != 0:
        message = (proc.stderr or proc.stdout).strip().splitlines()
        raise TtsError(f"{what}: {cmd[0]} failed ({message[-1] if message else proc.returncode})")
    return proc


def _piper_models() -> list[Path]:
    folders = [os.environ.get(PIPER_VOICES_ENV, ""), str(Path.home() / ".local/share/piper")]
    models: list[Path] = []
    for folder in folders:
        if folder and Path(folder).is_dir():
            models.extend(sorted(Path(folder).glob("*.onnx")))
    return models


@functools.lru_cache(maxsize=None)
def available_engines() -> dict[str, bool]:
    """Which engines can be used here: binary on PATH and at least one English voice."""
    found = {}
    for engine in ENGINES:
        if shutil.which(ENGINE_BINARIES[engine]) is None:
            found[engine] = False
            continue
        try:
            found[engine] = bool(list_voices(engine))
        except TtsError:
            found[engine] = False
    return found


@functools.lru_cache(maxsize=None)
def list_voices(engine: str) -> tuple[str, ...]:
    """English voices of ``engine``, sorted (empty when the engine has none)."""
    if engine == "espeak":
        dialects = _espeak_dialects()
        variants = _espeak_variants()
        return tuple(sorted(f"{d}+{v}" if v else d for d in dialects for v in ("", *variants)))
    if engine == "flite":
        out = _run(["flite", "-lv"], "flite voices").stdout
        names = out.split(":", 1)[-1].split()
        return tuple(sorted(n for n in names if n not in _FLITE_SKIP_VOICES))
    if engine == "festival":
        out = _run(["festival", "-b", "(print (voice.list))"], "festival voices").stdout
        return tuple(sorted(re.findall(r"[A-Za-z0-9_]+", out)))
    if engine == "piper":
        return tuple(str(model) for model in _piper_models())
    raise TtsError(f"unknown TTS engine {engine!r} (choose from {', '.join(ENGINES)})")


def _espeak_dialects() -> list[str]:
    out = _run(["espeak-ng", "--voices=en"], "espeak-ng voices").stdout
    mbrola = shutil.which("mbrola") is not None
    dialects = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) < 5 or not cols[1].startswith("en"):
            continue
        voice_file = cols[4]
        if voice_file.startswith("mb/") and not mbrola:
            continue
        dialects.append(voice_file.split("/", 1)[-1] if voice_file.startswith("gmw/") else voice_file)
    return sorted(set(dialects))


def _espeak_variants() -> list[str]:
    out = _run(["espeak-ng", "--voices=variant"], "espeak-ng variants").stdout
    names = []
    for line in out.splitlines()[1:]:
        cols = line.split()
        if len(cols) >= 5 and cols[4].startswith("!v/"):
            name = cols[4][3:]
            if name not in _ESPEAK_SKIP_VARIANTS:
                names.append(name)
    return sorted(set(names))[:_ESPEAK_VARIANT_LIMIT]


def sample_params(engine: str, voice: str, rng: np.random.Generator) -> dict:
    """Random speaking rate and pitch for one utterance (JSON-serialisable, rounded)."""
    if engine == "espeak":
        return {"speed_wpm": int(rng.integers(120, 211)), "pitch": int(rng.integers(20, 81))}
    if engine == "flite":
        female = voice == "slt"
        mean = rng.uniform(150, 230) if female else rng.uniform(85, 150)
        return {
            "duration_stretch": round(float(rng.uniform(0.8, 1.3)), 3),
            "f0_mean_hz": round(float(mean), 1),
        }
    if engine == "festival":
        if voice.endswith("_hts"):
            return {
                "rate": round(float(rng.uniform(0.8, 1.25)), 3),
                "halftones": round(float(rng.uniform(-3.0, 3.0)), 2),
            }
        return {
            "duration_stretch": round(float(rng.uniform(0.8, 1.3)), 3),
            "f0_mean_hz": round(float(rng.uniform(85, 160)), 1),
        }
    if engine == "piper":
        return {
            "length_scale": round(float(rng.uniform(0.8, 1.3)), 3),
            "noise_scale": round(float(rng.uniform(0.4, 0.9)), 3),
        }
    raise TtsError(f"unknown TTS engine {engine!r}")


def _clean_text(text: str) -> str:
    # The texts are words and punctuation; drop characters that engines or Scheme would interpret.
    return re.sub(r"[\"\\`$<>{}\[\]]", " ", text).strip()


def _espeak(job: TtsJob) -> None:
    p = job.params
    cmd = [
        "espeak-ng",
        "-v",
        job.voice,
        "-s",
        str(p.get("speed_wpm", 160)),
        "-p",
        str(p.get("pitch", 50)),
        "-w",
        job.out_path,
        "--",
        _clean_text(job.text),
    ]
    _run(cmd, f"espeak-ng voice {job.voice}")


def _flite(job: TtsJob) -> None:
    p = job.params
    cmd = ["flite", "-voice", job.voice, "--setf", f"duration_stretch={p.get('duration_stretch', 1.0)}"]
    if "f0_mean_hz" in p:
        cmd += ["--setf", f"int_f0_target_mean={p['f0_mean_hz']}"]
    cmd += ["-t", _clean_text(job.text), "-o", job.out_path]
    _run(cmd, f"flite voice {job.voice}")


def _festival_commands(job: TtsJob) -> str:
    p = job.params
    lines = [f"(voice_{job.voice})"]
    if job.voice.endswith("_hts"):
        lines.append("(Parameter.set 'Duration_Stretch 1.0)")
        lines.append(
            f"(set! hts_engine_params (append {job.voice}::hts_engine_params "
            f'(list (list "-r" {p.get("rate", 1.0)}) (list "-fm" {p.get("halftones", 0.0)}))))'
        )
    else:
        lines.append(f"(Parameter.set 'Duration_Stretch {p.get('duration_stretch', 1.0)})")
        if "f0_mean_hz" in p:
            lines.append(
                f"(set! int_lr_params (list (list 'target_f0_mean {p['f0_mean_hz']}) "
                "(list 'target_f0_std 18) "
                "(list 'model_f0_mean 170) (list 'model_f0_std 34)))"
            )
    lines.append(f'(utt.save.wave (SynthText "{_clean_text(job.text)}") "{job.out_path}" \'riff)')
    return "\n".join(lines)


def _festival_batch(jobs: list[TtsJob], workdir: Path) -> None:
    script = workdir / "batch.scm"
    script.write_text("\n".join(_festival_commands(job) for job in jobs) + "\n", encoding="utf-8")
    _run(["festival", "-b", str(script)], "festival batch")


def _piper(job: TtsJob) -> None:
    p = job.params
    cmd = [
        "piper",
        "--model",
        job.voice,
        "--output_file",
        job.out_path,
        "--length_scale",
        str(p.get("length_scale", 1.0)),
        "--noise_scale",
        str(p.get("noise_scale", 0.667)),
    ]
    _run(cmd, f"piper model {Path(job.voice).name}", stdin=_clean_text(job.text))


def synthesize_jobs(jobs: list[TtsJob], workdir: str | os.PathLike) -> list[str | None]:
    """Synthesize every job to its ``out_path``; returns per job ``None`` or an error message.

    A failing festival batch is retried one utterance at a time so one bad text loses one clip.
    """
    workdir = Path(workdir)
    errors: list[str | None] = [None] * len(jobs)
    festival = [i for i, job in enumerate(jobs) if job.engine == "festival"]
    if festival:
        try:
            _festival_batch([jobs[i] for i in festival], workdir)
        except TtsError:
            for i in festival:
                try:
                    _festival_batch([jobs[i]], workdir)
                except TtsError as err:
                    errors[i] = str(err)
    single = {"espeak": _espeak, "flite": _flite, "piper": _piper}
    for i, job in enumerate(jobs):
        if job.engine == "festival":
            if errors[i] is None and not Path(job.out_path).is_file():
                errors[i] = f"festival wrote no audio for {job.text!r}"
            continue
        if job.engine not in single:
            errors[i] = f"unknown TTS engine {job.engine!r}"
            continue
        try:
            single[job.engine](job)
        except TtsError as err:
            errors[i] = str(err)
    return errors
