"""Synthetic keyword corpora: positives (keyword alone and in carrier phrases) and negatives
(phonetic confusables, random words, everyday phrases) rendered with random offline TTS voices.

The corpus is planned up front: clip ``i`` draws its text, engine, voice and parameters from an RNG
seeded with ``(seed, i)``, so a seed fixes the plan regardless of worker count. Engines are drawn
uniformly unless weights are given (e.g. more clips from the few neural voices). Rendering runs in
worker processes in small chunks; each clip is resampled to the target rate, trimmed of
leading/trailing silence, set to a random level and written as mono PCM_16 WAV.
"""

from __future__ import annotations

import os
import sys
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from speechconv.audio.activity import active_span
from speechconv.audio.io import load_audio_array
from speechconv.audio.writer import save_audio
from speechconv.data.confusables import COMMON_PHRASES, confusable_words, load_word_list, near_miss_phrases
from speechconv.data.manifest import ManifestEntry, write_manifest
from speechconv.data.tts import (
    APT_PACKAGES,
    ENGINES,
    PIP_EXTRA,
    TtsJob,
    available_engines,
    list_voices,
    sample_params,
    synthesize_jobs,
)
from speechconv.errors import SpeechconvError

POSITIVE_LABEL = "keyword"
NEGATIVE_LABEL = "negative"
CARRIERS = (
    "{kw}",
    "{kw} there",
    "oh, {kw}",
    "{kw}, {kw}",
    "{kw} everyone",
    "well {kw}",
    "{kw} again",
    "{kw}, how are you",
    "and {kw}",
    "say {kw}",
    "{kw} my friend",
    "hey, {kw}",
    "{kw} world",
)
CONFUSABLE_LISTS = ("words", "near-miss")
NEGATIVE_CARRIERS = ("{w}", "{w}", "{w}", "{w} there", "oh, {w}", "well {w}", "{w} everyone")
SENTENCE_WORDS = (3, 8)  # words in one running-speech negative: about 1-3 s
_CHUNK = 16
_LEVEL_DBFS = (-20.0, -1.0)  # peak level range of the written clips


@dataclass(frozen=True)
class ClipPlan:
    """Everything needed to render clip ``index`` (fixed by the seed)."""

    index: int
    label: str
    text: str
    engine: str
    voice: str
    params: dict = field(default_factory=dict)


def trim_silence(
    audio: np.ndarray,
    sample_rate: int,
    threshold_db: float = -40.0,
    frame_s: float = 0.01,
    pad_s: float = 0.05,
) -> np.ndarray:
    """Cut leading/trailing frames quieter than ``threshold_db`` below the loudest one; keep ``pad_s``
    (:func:`speechconv.audio.activity.active_span`). Silence gives an empty array."""
    if len(audio) < max(1, int(round(frame_s * sample_rate))):
        return audio
    span = active_span(audio, sample_rate, threshold_db, frame_s)
    if span is None:
        return audio[:0]
    pad = int(round(pad_s * sample_rate))
    return audio[max(0, span[0] - pad):min(len(audio), span[1] + pad)]


def _keyword_free(text: str, keyword: str) -> bool:
    return keyword.lower() not in text.lower()


def read_sentences(path: str | os.PathLike) -> tuple[str, ...]:
    """Non-empty lines of a UTF-8 text file (one sentence or utterance per line)."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise SpeechconvError(f"{path}: cannot read sentences ({err.__class__.__name__}: {err})") from None
    sentences = tuple(" ".join(line.split()) for line in lines if line.split())
    if not sentences:
        raise SpeechconvError(f"{path}: no sentences (expected one per line)")
    return sentences


def sentence_window(sentences: tuple[str, ...], keyword: str, rng: np.random.Generator,
                    tries: int = 8) -> str | None:
    """A keyword-free run of :data:`SENTENCE_WORDS` consecutive words of a random sentence, or ``None``."""
    low, high = SENTENCE_WORDS
    for _ in range(tries):
        words = sentences[rng.integers(len(sentences))].split()
        length = min(len(words), int(rng.integers(low, high + 1)))
        first = int(rng.integers(len(words) - length + 1))
        text = " ".join(words[first:first + length]).lower()
        if _keyword_free(text, keyword):
            return text
    return None


def engine_probabilities(engines: list[str], weights: dict[str, float] | None) -> np.ndarray | None:
    """Per-engine draw probabilities from ``weights`` (engines without one weigh 1); ``None`` means uniform."""
    if not weights:
        return None
    unknown = sorted(set(weights) - set(ENGINES))
    if unknown:
        raise SpeechconvError(f"engine weight for unknown engine(s) {', '.join(unknown)}")
    values = np.array([float(weights.get(e, 1.0)) for e in engines])
    if not np.all(np.isfinite(values)) or np.any(values < 0) or values.sum() <= 0:
        raise SpeechconvError(f"engine weights must be >= 0 with a positive sum, got {weights}")
    return values / values.sum()


def plan_corpus(
    keyword: str,
    n_positive: int,
    n_negative: int,
    engines: list[str],
    seed: int = 0,
    confusables: list[str] | None = None,
    words: tuple[str, ...] | None = None,
    engine_weights: dict[str, float] | None = None,
    confusable_share: float = 0.5,
    sentences: tuple[str, ...] | None = None,
    sentence_share: float = 0.0,
) -> list[ClipPlan]:
    """Texts, voices and parameters of every clip; clip ``i`` depends only on ``(seed, i)`` and the inputs.

    ``engine_weights`` (engine -> relative weight, 1 when left out) replaces the uniform engine draw.
    A negative is running speech with probability ``sentence_share``: a window of
    :data:`SENTENCE_WORDS` consecutive words of one of ``sentences`` (:func:`sentence_window`).
    Otherwise it is a confusable (alone or in a carrier) with probability ``confusable_share``, else
    random words and everyday phrases, 3 : 2. With ``sentence_share`` 0 the plans are those of before.
    """
    if not 0.0 <= confusable_share <= 1.0:
        raise SpeechconvError(f"confusable share must be in [0, 1], got {confusable_share}")
    if not 0.0 <= sentence_share <= 1.0:
        raise SpeechconvError(f"sentence share must be in [0, 1], got {sentence_share}")
    sentences = tuple(s for s in (sentences or ()) if s.split())
    if sentence_share > 0 and not sentences:
        raise SpeechconvError("a sentence share needs sentences")
    random_words_below = confusable_share + 0.6 * (1.0 - confusable_share)
    voices = {engine: list_voices(engine) for engine in engines}
    probabilities = engine_probabilities(engines, engine_weights)
    if confusables is None and n_negative > 0:
        confusables = confusable_words(keyword) if available_engines().get("espeak") else []
    words = load_word_list() if words is None else words
    words = tuple(w for w in words if _keyword_free(w, keyword)) or ("okay",)
    phrases = tuple(p for p in COMMON_PHRASES if _keyword_free(p, keyword))
    plans = []
    for index in range(n_positive + n_negative):
        rng = np.random.default_rng([seed, index])
        if index < n_positive:
            label, text = POSITIVE_LABEL, CARRIERS[rng.integers(len(CARRIERS))].format(kw=keyword)
        else:
            label, kind = NEGATIVE_LABEL, rng.random()
            window = sentence_window(sentences, keyword, rng) if sentence_share > 0 else None
            if window is not None and rng.random() < sentence_share:  # running speech
                text = window
            elif kind < confusable_share and confusables:  # phonetic near-misses, alone or in a carrier
                word = confusables[rng.integers(len(confusables))]
                text = NEGATIVE_CARRIERS[rng.integers(len(NEGATIVE_CARRIERS))].format(w=word)
            elif kind < random_words_below:  # one to three random words
                text = " ".join(words[i] for i in rng.integers(len(words), size=int(rng.integers(1, 4))))
            else:
                text = phrases[rng.integers(len(phrases))]
        if probabilities is None:
            engine = engines[rng.integers(len(engines))]
        else:
            engine = engines[int(rng.choice(len(engines), p=probabilities))]
        voice = voices[engine][rng.integers(len(voices[engine]))]
        params = sample_params(engine, voice, rng)
        params["level_dbfs"] = round(float(rng.uniform(*_LEVEL_DBFS)), 2)
        plans.append(ClipPlan(index, label, text, engine, voice, params))
    return plans


def _clip_path(plan: ClipPlan) -> str:
    return f"clips/{plan.label}/{plan.index:06d}.wav"


def _finish_clip(raw_path: str, out_path: Path, plan: ClipPlan, sample_rate: int) -> float:
    """Resample, trim, set level and write ``out_path`` atomically; returns the duration in seconds."""
    audio = trim_silence(load_audio_array(raw_path, sample_rate)[0], sample_rate)
    peak = float(np.max(np.abs(audio))) if audio.size else 0.0
    if peak <= 0:
        raise SpeechconvError(f"{plan.engine}/{plan.voice} produced silence for {plan.text!r}")
    audio = audio * (10 ** (plan.params["level_dbfs"] / 20) / peak)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    save_audio(out_path, audio, sample_rate)  # 16-bit PCM, written atomically
    return len(audio) / sample_rate


def render_chunk(
    plans: list[ClipPlan], out_dir: str, sample_rate: int
) -> list[tuple[int, ManifestEntry | str]]:
    """Render ``plans`` into ``out_dir``; per clip a manifest entry or an error message."""
    results: list[tuple[int, ManifestEntry | str]] = []
    with tempfile.TemporaryDirectory(prefix="speechconv-tts-") as work:
        jobs = [
            TtsJob(p.text, p.engine, p.voice, p.params, os.path.join(work, f"{p.index}.wav")) for p in plans
        ]
        errors = synthesize_jobs(jobs, work)
        for plan, job, error in zip(plans, jobs, errors):
            if error is not None:
                results.append((plan.index, error))
                continue
            rel = _clip_path(plan)
            try:
                duration = _finish_clip(job.out_path, Path(out_dir) / rel, plan, sample_rate)
            except (SpeechconvError, RuntimeError, ValueError) as err:  # soundfile raises RuntimeError
                results.append((plan.index, str(err)))
                continue
            params = {k: v for k, v in plan.params.items()}
            results.append(
                (
                    plan.index,
                    ManifestEntry(
                        path=str(Path(out_dir) / rel),
                        label=plan.label,
                        text=plan.text,
                        engine=plan.engine,
                        voice=plan.voice,
                        params=params,
                        duration=round(duration, 4),
                    ),
                )
            )
    return results


def resolve_engines(engines: list[str] | None, log=None) -> list[str]:
    """Usable engines among ``engines`` (default: all); reports what was found and skipped."""
    found = available_engines()
    wanted = list(engines) if engines else list(ENGINES)
    unknown = [e for e in wanted if e not in ENGINES]
    if unknown:
        raise SpeechconvError(
            f"unknown TTS engine(s) {', '.join(unknown)} (choose from {', '.join(ENGINES)})"
        )
    usable = [e for e in wanted if found.get(e, False)]
    skipped = [e for e in wanted if not found.get(e, False)]
    if log is not None:
        note = f"; skipped (not installed or no voices): {', '.join(skipped)}" if skipped else ""
        log(f"TTS engines found: {', '.join(usable) or 'none'}{note}")
    if not usable:
        raise SpeechconvError(
            f"no usable TTS engine among {', '.join(wanted)}; "
            f"install them with: apt-get install {APT_PACKAGES} (neural voices: {PIP_EXTRA})"
        )
    return usable


def synthesize_corpus(
    keyword: str,
    out_dir: str | os.PathLike,
    n_positive: int,
    n_negative: int,
    engines: list[str] | None = None,
    seed: int = 0,
    workers: int = 1,
    sample_rate: int = 16000,
    progress: bool = True,
    engine_weights: dict[str, float] | None = None,
    confusables: str = "words",
    confusable_share: float = 0.5,
    sentences: tuple[str, ...] | None = None,
    sentence_share: float = 0.0,
) -> list[ManifestEntry]:
    """Render a keyword corpus into ``out_dir`` and write ``out_dir/manifest.jsonl``.

    ``engine_weights`` sets how often each engine is drawn (see :func:`plan_corpus`); weights of
    engines skipped as missing are ignored, unknown engine names are an error. ``confusables`` picks the
    near-miss list of the negatives: ``"words"`` (:func:`confusable_words`, 50 words of about the
    keyword's spelling) or ``"near-miss"`` (:func:`near_miss_phrases`, 400 words and two-word phrases,
    across word boundaries); ``confusable_share`` is the share of negatives drawn from it.
    ``sentences`` with ``sentence_share`` > 0 make that share of negatives running speech: windows of
    a few consecutive words of those sentences (e.g. transcripts of the speech the detector will hear).

    Returns the manifest entries in clip order. Clips an engine fails on are reported on stderr and
    left out; if every clip fails a :class:`SpeechconvError` is raised.
    """
    keyword = " ".join(keyword.split())
    if not keyword:
        raise SpeechconvError("keyword is empty")
    if n_positive < 0 or n_negative < 0 or n_positive + n_negative == 0:
        raise SpeechconvError("need a positive number of clips (--n / --negatives)")
    out_dir = Path(out_dir).resolve()  # absolute clip paths: the manifest stores them relative to itself
    out_dir.mkdir(parents=True, exist_ok=True)
    log = (lambda msg: print(msg, file=sys.stderr)) if progress else None
    usable = resolve_engines(engines, log)
    if confusables not in CONFUSABLE_LISTS:
        raise SpeechconvError(f"unknown confusable list {confusables!r} (choose from {', '.join(CONFUSABLE_LISTS)})")
    near_misses = None
    if confusables == "near-miss" and n_negative > 0 and available_engines().get("espeak"):
        near_misses = near_miss_phrases(keyword, k=400, per_word_limit=1)
    plans = plan_corpus(keyword, n_positive, n_negative, usable, seed, confusables=near_misses,
                        engine_weights=engine_weights, confusable_share=confusable_share,
                        sentences=sentences, sentence_share=sentence_share)
    chunks = [plans[i : i + _CHUNK] for i in range(0, len(plans), _CHUNK)]
    results: dict[int, ManifestEntry | str] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(plans), unit="clip", desc="synth", file=sys.stderr)
    try:
        if workers <= 1:
            for chunk in chunks:
                for index, result in render_chunk(chunk, str(out_dir), sample_rate):
                    results[index] = result
                if bar is not None:
                    bar.update(len(chunk))
        else:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                try:
                    futures = [pool.submit(render_chunk, chunk, str(out_dir), sample_rate) for chunk in chunks]
                    for chunk, future in zip(chunks, futures):
                        for index, result in future.result():
                            results[index] = result
                        if bar is not None:
                            bar.update(len(chunk))
                except BaseException:  # interrupted: drop the chunks not started instead of rendering them all
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
    finally:
        if bar is not None:
            bar.close()
    entries = [results[i] for i in sorted(results) if isinstance(results[i], ManifestEntry)]
    failures = [(i, results[i]) for i in sorted(results) if isinstance(results[i], str)]
    for index, message in failures[:10]:
        print(f"speechconv synth: clip {index} skipped: {message}", file=sys.stderr)
    if len(failures) > 10:
        print(f"speechconv synth: ... and {len(failures) - 10} more clips skipped", file=sys.stderr)
    if not entries:
        raise SpeechconvError(f"{out_dir}: every clip failed to synthesize (first error: {failures[0][1]})")
    write_manifest(out_dir / "manifest.jsonl", entries)
    return entries
