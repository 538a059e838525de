"""Speaker transformation of synthetic speech toward real voices (Praat's "Change gender").

TTS engines speak with a few pitch contours and vocal tracts. Re-synthesising each clip with the pitch
median, pitch range and formant scaling of a *real* speaker spreads synthetic corpora over the voices
people have. The real statistics are measured from recordings (:func:`voice_stats`); each converted
clip draws one real speaker's statistics (with jitter) as its target (:func:`sample_target`).

Praat (through ``praat-parselmouth``, GPL-3.0, ``pip install "speechconv[voices]"``) does the
PSOLA re-synthesis with formant scaling: Boersma & Weenink, Praat; the "Change gender" command.
"""

from __future__ import annotations

import os
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from speechconv.errors import SpeechconvError

PITCH_FLOOR_HZ, PITCH_CEILING_HZ = 60.0, 500.0
FORMANT_EXPONENT = 0.2  # formant ratio = (pitch ratio) ** 0.2: 1.7x pitch (male -> female) gives 1.11
FORMANT_RANGE = (0.85, 1.25)
MAX_RANGE_FACTOR = 2.0  # Praat's "Change gender" hangs on some clips with a pitch range factor of 2.5


class VoiceConvertError(SpeechconvError):
    """Praat is missing or a clip could not be converted."""


def _parselmouth():
    try:
        import parselmouth
    except ImportError:
        raise VoiceConvertError('voice conversion needs praat-parselmouth: pip install "speechconv[voices]"') from None
    return parselmouth


@dataclass(frozen=True)
class VoiceStats:
    """Pitch of one speaker or clip: median F0 (Hz) and the 5-95% range (semitones)."""

    median_hz: float
    range_semitones: float


def f0_stats(audio: np.ndarray, sample_rate: int) -> VoiceStats | None:
    """Median and 5-95% range of the voiced F0 of ``audio`` (None when under 0.1 s is voiced)."""
    parselmouth = _parselmouth()
    sound = parselmouth.Sound(np.asarray(audio, dtype=np.float64), float(sample_rate))
    f0 = sound.to_pitch(pitch_floor=PITCH_FLOOR_HZ, pitch_ceiling=PITCH_CEILING_HZ).selected_array["frequency"]
    f0 = f0[f0 > 0]
    if len(f0) < 10:  # 10 ms frames
        return None
    lo, median, hi = np.percentile(f0, [5, 50, 95])
    return VoiceStats(float(median), float(12 * np.log2(hi / lo)))


def voice_stats(groups: dict[str, list[str | os.PathLike]], sample_rate: int = 16000,
                max_seconds: float = 60.0) -> dict[str, VoiceStats]:
    """Pitch statistics per speaker over (up to ``max_seconds`` of) their recordings."""
    from speechconv.audio import load_audio

    out = {}
    for speaker, files in groups.items():
        parts, total = [], 0
        for path in files:
            audio = load_audio(path, sample_rate)[0].numpy()
            parts.append(audio)
            total += len(audio)
            if total >= max_seconds * sample_rate:
                break
        stats = f0_stats(np.concatenate(parts), sample_rate) if parts else None
        if stats is not None:
            out[speaker] = stats
    if not out:
        raise VoiceConvertError("no voiced speech in the reference recordings")
    return out


def sample_target(rng: np.random.Generator, references: list[VoiceStats], source: VoiceStats) -> dict:
    """Parameters of one conversion: a random real speaker's pitch with +-1 semitone of jitter, and the
    formant ratio that goes with the pitch change (clipped to :data:`FORMANT_RANGE`, +-4% jitter)."""
    target = references[int(rng.integers(len(references)))]
    median = target.median_hz * 2 ** (rng.uniform(-1, 1) / 12)
    range_factor = float(np.clip(target.range_semitones / max(source.range_semitones, 1.0), 0.5, MAX_RANGE_FACTOR))
    formant = (median / source.median_hz) ** FORMANT_EXPONENT * rng.uniform(0.96, 1.04)
    return {"pitch_median_hz": round(float(median), 1), "pitch_range_factor": round(range_factor, 3),
            "formant_ratio": round(float(np.clip(formant, *FORMANT_RANGE)), 4)}


def convert_voice(audio: np.ndarray, sample_rate: int, pitch_median_hz: float, pitch_range_factor: float = 1.0,
                  formant_ratio: float = 1.0, duration_factor: float = 1.0) -> np.ndarray:
    """Praat "Change gender": new pitch median and range, formants scaled by ``formant_ratio``."""
    parselmouth = _parselmouth()
    from parselmouth.praat import call

    sound = parselmouth.Sound(np.asarray(audio, dtype=np.float64), float(sample_rate))
    try:
        out = call(sound, "Change gender", PITCH_FLOOR_HZ, PITCH_CEILING_HZ, float(formant_ratio),
                   float(pitch_median_hz), float(pitch_range_factor), float(duration_factor))
    except parselmouth.PraatError as err:
        raise VoiceConvertError(f"Praat could not convert the clip: {str(err).splitlines()[0]}") from None
    return out.values[0].astype(np.float32)


def _convert_chunk(jobs: list[tuple[int, str, str]], references: list[VoiceStats], seed: int,
                   sample_rate: int) -> list[tuple[int, dict | str]]:
    from speechconv.audio import AudioError, load_audio, save_audio

    results: list[tuple[int, dict | str]] = []
    for index, src, dst in jobs:
        try:
            audio = load_audio(src, sample_rate)[0].numpy()
            source = f0_stats(audio, sample_rate)
            if source is None:
                results.append((index, f"{src}: too little voiced speech to convert"))
                continue
            params = sample_target(np.random.default_rng([seed, index]), references, source)
            converted = convert_voice(audio, sample_rate, **params)
            peak = float(np.max(np.abs(converted))) or 1.0
            converted *= min(1.0, float(np.max(np.abs(audio))) / peak)  # keep the source's level
            Path(dst).parent.mkdir(parents=True, exist_ok=True)
            save_audio(dst, converted, sample_rate)
            results.append((index, params))
        except (AudioError, VoiceConvertError) as err:
            results.append((index, str(err)))
    return results


def convert_corpus(manifest: str | os.PathLike, out_dir: str | os.PathLike, references: list[VoiceStats],
                   seed: int = 0, workers: int = 1, sample_rate: int = 16000, progress: bool = True) -> list:
    """Convert every clip of ``manifest`` toward a random reference voice; write ``out_dir/manifest.jsonl``.

    Entries keep their label and text; ``engine`` becomes ``<engine>+praat`` and ``params`` holds the
    conversion. Clips that cannot be converted are reported on stderr and left out.
    """
    from speechconv.data.manifest import ManifestEntry, read_manifest, write_manifest

    entries = read_manifest(manifest)
    out_dir = Path(out_dir).resolve()
    jobs = [(i, e.path, str(out_dir / "clips" / e.label / f"{i:06d}.wav")) for i, e in enumerate(entries)]
    chunks = [jobs[i:i + 32] for i in range(0, len(jobs), 32)]
    results: dict[int, dict | str] = {}
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(jobs), unit="clip", desc="convert", file=sys.stderr)
    try:
        with ProcessPoolExecutor(max_workers=max(1, workers)) as pool:
            futures = [pool.submit(_convert_chunk, chunk, references, seed, sample_rate) for chunk in chunks]
            for chunk, future in zip(chunks, futures):
                results.update(dict(future.result()))
                if bar is not None:
                    bar.update(len(chunk))
    finally:
        if bar is not None:
            bar.close()
    converted = []
    for i, entry in enumerate(entries):
        result = results.get(i)
        if isinstance(result, dict):
            converted.append(ManifestEntry(path=jobs[i][2], label=entry.label, text=entry.text,
                                           engine=f"{entry.engine}+praat", voice=entry.voice, params=result,
                                           duration=entry.duration, speaker=entry.speaker, split=entry.split))
    failures = [r for r in results.values() if isinstance(r, str)]
    if failures:
        print(f"speechconv: {len(failures)} clips not converted (first: {failures[0]})", file=sys.stderr)
    if not converted:
        raise VoiceConvertError(f"{manifest}: no clip could be converted")
    write_manifest(out_dir / "manifest.jsonl", converted)
    return converted
