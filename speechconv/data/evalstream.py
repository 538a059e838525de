"""Long evaluation streams: keyword and other clips placed with random gaps over looping background
noise, written as one WAV plus a ground-truth CSV (start, end, label, source, ...).

Each clip gets its own SNR: the noise gain around the clip is set so that the clip's mean power
over the noise power in the same span equals the requested value. The noise gain changes only
inside gaps (with a short ramp), so the level under each clip is constant. The stream is written
clip by clip, so memory stays bounded for streams of hours.
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np
import soundfile as sf

from speechconv.data.manifest import ManifestEntry, atomic_write_text
from speechconv.errors import SpeechconvError

GROUND_TRUTH_FIELDS = ("start", "end", "label", "kind", "source", "snr_db", "text", "speaker")
_RAMP_S = 0.02


class EvalStreamError(SpeechconvError):
    """Bad inputs for an evaluation stream."""


def load_mono(path: str | os.PathLike, sample_rate: int) -> np.ndarray:
    """Read ``path`` as float32 mono at ``sample_rate`` (:func:`speechconv.audio.load_audio_array`)."""
    from speechconv.audio import AudioError, load_audio_array

    try:
        return load_audio_array(str(path), sample_rate)[0]
    except AudioError as err:
        raise EvalStreamError(str(err)) from None


def mean_power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x, dtype=np.float64))) if len(x) else 0.0


def snr_db(speech: np.ndarray, noise: np.ndarray) -> float:
    """``10 log10(P_speech / P_noise)`` with mean powers over the same span."""
    return 10.0 * np.log10(mean_power(speech) / mean_power(noise))


class NoiseLoop:
    """Background noise files concatenated (unit RMS each) and read cyclically by absolute position."""

    def __init__(self, paths: list[str | os.PathLike], sample_rate: int):
        parts = []
        for path in paths:
            audio = load_mono(path, sample_rate)
            power = mean_power(audio)
            if power <= 0:
                raise EvalStreamError(f"{path}: noise file is silent")
            parts.append((audio / np.sqrt(power)).astype(np.float32))
        self.audio = np.concatenate(parts) if parts else np.zeros(0, dtype=np.float32)

    def __bool__(self) -> bool:
        return len(self.audio) > 0

    def segment(self, start: int, length: int) -> np.ndarray:
        if not self or length <= 0:
            return np.zeros(max(0, length), dtype=np.float32)
        idx = (start + np.arange(length)) % len(self.audio)
        return self.audio[idx]


def _noise_files(paths: list[str | os.PathLike]) -> list[Path]:
    files: list[Path] = []
    for path in paths:
        path = Path(path)
        if path.is_dir():
            files.extend(sorted(p for p in path.rglob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg")))
        elif path.is_file():
            files.append(path)
        else:
            raise EvalStreamError(f"{path}: noise file or folder not found")
    return files


def _placements(keyword_entries, other_entries, duration_s, gap_range, rng):
    """Yield (entry, kind) in stream order: all clips once (shuffled) or cycling until the duration."""
    pool = [(e, "keyword") for e in keyword_entries] + [(e, "other") for e in other_entries]
    if duration_s is None:
        for i in rng.permutation(len(pool)):
            yield pool[i]
        return
    while True:
        for i in rng.permutation(len(pool)):
            yield pool[i]


def build_eval_stream(
    keyword_entries: list[ManifestEntry],
    other_entries: list[ManifestEntry],
    noise_paths: list[str | os.PathLike],
    out_wav: str | os.PathLike,
    out_csv: str | os.PathLike,
    duration_s: float | None = None,
    gap_range: tuple[float, float] = (1.0, 4.0),
    snr_db_range: tuple[float, float] = (5, 20),
    sample_rate: int = 16000,
    seed: int = 0,
) -> list[dict]:
    """Write the stream WAV (PCM_16) and its ground-truth CSV; return the ground-truth rows.

    Without ``duration_s`` every clip is used once in random order; with it, clips are reused in
    reshuffled rounds until the next one would not fit, and the stream is padded to exactly
    ``duration_s`` seconds. Gaps and SNRs are drawn uniformly from their ranges. Without noise
    files the background is silent and ``snr_db`` is ``inf``.
    """
    if not keyword_entries and not other_entries:
        raise EvalStreamError("no clips given for the evaluation stream")
    if not 0 <= gap_range[0] <= gap_range[1]:
        raise EvalStreamError(f"gap range must satisfy 0 <= min <= max, got {gap_range}")
    if snr_db_range[0] > snr_db_range[1]:
        raise EvalStreamError(f"SNR range must satisfy min <= max, got {snr_db_range}")
    if duration_s is not None and duration_s <= 0:
        raise EvalStreamError(f"duration must be positive, got {duration_s}")
    rng = np.random.default_rng(seed)
    noise = NoiseLoop(_noise_files(noise_paths), sample_rate)
    noise_offset = int(rng.integers(len(noise.audio))) if noise else 0
    total = None if duration_s is None else int(round(duration_s * sample_rate))
    ramp = max(1, int(_RAMP_S * sample_rate))
    out_wav, out_csv = Path(out_wav), Path(out_csv)
    out_wav.parent.mkdir(parents=True, exist_ok=True)
    tmp_wav = out_wav.with_name(f".{out_wav.name}.tmp.wav")
    rows: list[dict] = []
    position, gain = 0, 0.0  # samples written so far; noise gain at the end of the last block

    def noise_block(start: int, length: int, gain_from: float, gain_to: float) -> np.ndarray:
        seg = noise.segment(noise_offset + start, length)
        gains = np.full(length, gain_to, dtype=np.float32)
        n = min(ramp, length)
        gains[:n] = np.linspace(gain_from, gain_to, n, dtype=np.float32)
        return seg * gains

    try:
        with sf.SoundFile(
            str(tmp_wav), "w", samplerate=sample_rate, channels=1, subtype="PCM_16", format="WAV"
        ) as stream:
            for entry, kind in _placements(keyword_entries, other_entries, duration_s, gap_range, rng):
                gap = int(round(rng.uniform(*gap_range) * sample_rate))
                target_snr = float(rng.uniform(*snr_db_range))
                clip = load_mono(entry.path, sample_rate)
                if len(clip) == 0 or mean_power(clip) == 0:
                    raise EvalStreamError(f"{entry.path}: clip is empty or silent")
                if total is not None and position + gap + len(clip) > total:
                    break
                clip_start = position + gap
                under = noise.segment(noise_offset + clip_start, len(clip))
                under_power = mean_power(under) if noise else 0.0
                if under_power > 0:
                    new_gain = float(np.sqrt(mean_power(clip) / (under_power * 10 ** (target_snr / 10))))
                elif noise:  # a digitally silent stretch of the noise: keep its level, the SNR is unbounded
                    new_gain, target_snr = gain, float("inf")
                else:
                    new_gain, target_snr = 0.0, float("inf")
                block = noise_block(position, gap + len(clip), gain, new_gain)
                if gap < ramp:  # no room for a ramp inside the gap: keep the level under the clip exact
                    block[gap:] = under * new_gain
                block[gap:] += clip
                stream.write(np.clip(block, -1.0, 1.0))
                rows.append(
                    {
                        "start": round(clip_start / sample_rate, 6),
                        "end": round((clip_start + len(clip)) / sample_rate, 6),
                        "label": entry.label,
                        "kind": kind,
                        "source": entry.path,
                        "snr_db": round(target_snr, 3),
                        "text": entry.text,
                        "speaker": entry.speaker,
                    }
                )
                position, gain = clip_start + len(clip), new_gain
            tail = (total - position) if total is not None else int(round(gap_range[1] * sample_rate))
            while tail > 0:  # trailing noise, in blocks
                length = min(tail, 10 * sample_rate)
                stream.write(np.clip(noise_block(position, length, gain, gain), -1.0, 1.0))
                position, tail = position + length, tail - length
        os.replace(tmp_wav, out_wav)
    finally:
        if tmp_wav.exists():
            tmp_wav.unlink()
    if not rows:
        raise EvalStreamError(f"{out_wav}: no clip fits in {duration_s} s")
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=GROUND_TRUTH_FIELDS)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_csv, buffer.getvalue())
    return rows


def read_ground_truth(path: str | os.PathLike) -> list[dict]:
    """Rows of a ground-truth CSV with ``start``/``end`` (and ``snr_db`` where given) as floats."""
    path = Path(path)
    if not path.is_file():
        raise EvalStreamError(f"{path}: ground-truth CSV not found")
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    for number, row in enumerate(rows, start=2):
        try:
            for key in ("start", "end", "snr_db"):
                if key in row or key != "snr_db":
                    row[key] = float(row[key])
        except (KeyError, TypeError, ValueError):
            raise EvalStreamError(f"{path}: line {number}: '{key}' is missing or not a number") from None
    return rows
