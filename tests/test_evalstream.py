"""Evaluation streams: clip placement matches the ground truth, per-clip SNR matches the request."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import soundfile as sf

from speechconv.data.evalstream import EvalStreamError, build_eval_stream, read_ground_truth
from speechconv.data.manifest import ManifestEntry

RATE = 16000


def _burst(path, seed, seconds, rate=RATE, amp=0.3):
    """Band-limited noise burst with a Hann envelope: its autocorrelation has one sharp peak."""
    n = int(seconds * rate)
    x = np.random.default_rng(seed).normal(size=n) * np.hanning(n)
    x = np.convolve(x, np.ones(3) / 3, mode="same")  # keep it below Nyquist of the 8 kHz clips
    sf.write(path, (amp * x / np.max(np.abs(x))).astype(np.float32), rate, subtype="FLOAT")
    return path


@pytest.fixture
def clips(tmp_path):
    keyword = [
        ManifestEntry(str(_burst(tmp_path / f"k{i}.wav", 10 + i, 0.4 + 0.1 * i)), "keyword") for i in range(3)
    ]
    other = [
        ManifestEntry(str(_burst(tmp_path / f"o{i}.wav", 20 + i, 0.3, rate=8000)), "negative")
        for i in range(2)
    ]
    noise = np.random.default_rng(0).normal(0, 0.1, size=3 * RATE).astype(np.float32)
    sf.write(tmp_path / "noise.wav", noise, RATE, subtype="FLOAT")
    return keyword, other, tmp_path / "noise.wav"


def _load_clip(entry):
    audio, rate = sf.read(entry.path, dtype="float32")
    if rate != RATE:
        import soxr

        audio = soxr.resample(audio, rate, RATE, quality="HQ")
    return audio


def test_ground_truth_times_and_snr(tmp_path, clips):
    keyword, other, noise = clips
    rows = build_eval_stream(
        keyword,
        other,
        [noise],
        tmp_path / "s.wav",
        tmp_path / "s.csv",
        gap_range=(0.5, 1.5),
        snr_db_range=(5, 15),
        seed=1,
    )
    stream, rate = sf.read(tmp_path / "s.wav", dtype="float64")
    info = sf.info(tmp_path / "s.wav")
    assert (rate, info.channels, info.subtype) == (RATE, 1, "PCM_16")
    assert len(rows) == 5 and sum(r["kind"] == "keyword" for r in rows) == 3
    saved = read_ground_truth(tmp_path / "s.csv")
    assert [(r["start"], r["end"], r["label"], r["source"]) for r in saved] == [
        (r["start"], r["end"], r["label"], r["source"]) for r in rows
    ]
    by_path = {e.path: e for e in keyword + other}
    for row in rows:
        clip = _load_clip(by_path[row["source"]])
        start = int(round(row["start"] * RATE))
        assert int(round(row["end"] * RATE)) - start == len(clip)
        # placement: the clip correlates best at the ground-truth start (search +-50 ms)
        lags = range(-800, 801)
        scores = [np.dot(stream[start + lag : start + lag + len(clip)], clip) for lag in lags]
        assert lags[int(np.argmax(scores))] == 0
        # SNR: what is left after removing the clip is the noise under it
        residual = stream[start : start + len(clip)] - clip
        achieved = 10 * np.log10(np.mean(clip**2) / np.mean(residual**2))
        assert abs(achieved - row["snr_db"]) < 0.1
        assert 5 <= row["snr_db"] <= 15
    gaps = [b["start"] - a["end"] for a, b in zip(rows, rows[1:])]
    assert all(0.5 - 1e-3 <= g <= 1.5 + 1e-3 for g in gaps)
    assert rows[0]["start"] >= 0.5 - 1e-3


def test_fixed_duration_reuses_clips_and_pads(tmp_path, clips):
    keyword, other, noise = clips
    rows = build_eval_stream(
        keyword,
        other,
        [noise],
        tmp_path / "s.wav",
        tmp_path / "s.csv",
        duration_s=20.0,
        gap_range=(0.2, 0.6),
        seed=2,
    )
    assert sf.info(tmp_path / "s.wav").frames == 20 * RATE
    assert len(rows) > len(keyword) + len(other)  # reshuffled rounds
    assert rows[-1]["end"] <= 20.0
    with open(tmp_path / "s.csv", newline="") as handle:
        assert next(csv.reader(handle)) == ["start", "end", "label", "kind", "source", "snr_db", "text", "speaker"]


def test_no_noise_gives_silent_gaps_and_is_deterministic(tmp_path, clips):
    keyword, other, _ = clips
    a = build_eval_stream(
        keyword, [], [], tmp_path / "a.wav", tmp_path / "a.csv", gap_range=(0.3, 0.3), seed=5
    )
    b = build_eval_stream(
        keyword, [], [], tmp_path / "b.wav", tmp_path / "b.csv", gap_range=(0.3, 0.3), seed=5
    )
    assert a == b and (tmp_path / "a.wav").read_bytes() == (tmp_path / "b.wav").read_bytes()
    stream, _ = sf.read(tmp_path / "a.wav")
    assert np.all(stream[: int(0.3 * RATE) - 1] == 0) and all(r["snr_db"] == float("inf") for r in a)
    assert [r["start"] for r in a] == pytest.approx(
        np.cumsum([0.3] + [0.3 + (r["end"] - r["start"]) for r in a[:-1]])
    )


def test_noise_with_a_digitally_silent_stretch(tmp_path, clips):
    """A clip over a silent stretch of the noise keeps the noise's level (no division by zero)."""
    keyword, _, _ = clips
    noise = np.zeros(20 * RATE, dtype=np.float32)  # a recording that is digitally silent but for its end
    noise[-RATE // 10:] = np.random.default_rng(1).normal(0, 0.1, size=RATE // 10)
    sf.write(tmp_path / "gappy.wav", noise, RATE, subtype="FLOAT")
    rows = build_eval_stream(keyword, [], [tmp_path / "gappy.wav"], tmp_path / "s.wav", tmp_path / "s.csv",
                             gap_range=(0.2, 0.2), seed=0)
    assert len(rows) == 3 and any(r["snr_db"] == float("inf") for r in rows)
    assert np.all(np.isfinite(sf.read(tmp_path / "s.wav")[0]))


def test_bad_inputs(tmp_path, clips):
    keyword, _, _ = clips
    with pytest.raises(EvalStreamError, match="no clips"):
        build_eval_stream([], [], [], tmp_path / "s.wav", tmp_path / "s.csv")
    with pytest.raises(EvalStreamError, match="missing.wav: noise file or folder not found"):
        build_eval_stream(keyword, [], [tmp_path / "missing.wav"], tmp_path / "s.wav", tmp_path / "s.csv")
    with pytest.raises(EvalStreamError, match="no clip fits"):
        build_eval_stream(keyword, [], [], tmp_path / "s.wav", tmp_path / "s.csv", duration_s=0.5)
