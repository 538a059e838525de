"""Speaker transformation with Praat: the converted clip has the asked-for pitch; targets follow references."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("parselmouth")

from speechconv.audio import load_audio, save_audio  # noqa: E402
from speechconv.data.manifest import ManifestEntry, read_manifest, write_manifest  # noqa: E402
from speechconv.data.voice_convert import (  # noqa: E402
    VoiceStats,
    convert_corpus,
    convert_voice,
    f0_stats,
    sample_target,
)

SR = 16000


def vowel(f0: float, seconds: float = 0.8, sample_rate: int = SR) -> np.ndarray:
    """A glottal-pulse train at ``f0`` through two formant resonators: a crude voiced vowel."""
    from scipy.signal import lfilter

    n = int(seconds * sample_rate)
    pulses = np.zeros(n)
    pulses[:: int(sample_rate / f0)] = 1.0
    out = pulses
    for formant, bandwidth in ((700.0, 90.0), (1200.0, 110.0)):
        r = np.exp(-np.pi * bandwidth / sample_rate)
        theta = 2 * np.pi * formant / sample_rate
        out = lfilter([1.0], [1.0, -2 * r * np.cos(theta), r * r], out)
    return (0.3 * out / np.max(np.abs(out))).astype(np.float32)


def test_f0_stats_of_a_known_pitch():
    stats = f0_stats(vowel(120.0), SR)
    assert stats.median_hz == pytest.approx(120.0, rel=0.03)
    assert stats.range_semitones < 1.0
    assert f0_stats(np.zeros(SR, dtype=np.float32), SR) is None


@pytest.mark.parametrize("target", [90.0, 210.0])
def test_convert_voice_reaches_the_target_pitch_and_keeps_the_length(target):
    audio = vowel(130.0)
    out = convert_voice(audio, SR, pitch_median_hz=target, formant_ratio=1.1)
    assert len(out) == len(audio)
    assert f0_stats(out, SR).median_hz == pytest.approx(target, rel=0.05)


def test_sample_target_follows_a_reference_voice():
    refs = [VoiceStats(100.0, 6.0), VoiceStats(220.0, 8.0)]
    source = VoiceStats(110.0, 4.0)
    rng = np.random.default_rng(0)
    draws = [sample_target(rng, refs, source) for _ in range(200)]
    medians = np.array([d["pitch_median_hz"] for d in draws])
    # within one semitone of one of the references
    near = np.minimum(abs(12 * np.log2(medians / 100.0)), abs(12 * np.log2(medians / 220.0)))
    assert near.max() <= 1.0 + 1e-6
    assert (medians > 160).mean() == pytest.approx(0.5, abs=0.12)
    formants = np.array([d["formant_ratio"] for d in draws])
    high = medians > 160
    assert formants[high].mean() > 1.1 > formants[~high].mean()  # higher voices get shorter vocal tracts
    assert sample_target(np.random.default_rng(1), refs, source) == sample_target(np.random.default_rng(1), refs,
                                                                                    source)


def test_sample_target_keeps_the_pitch_range_factor_where_praat_does_not_hang():
    from speechconv.data.voice_convert import MAX_RANGE_FACTOR

    # a flat synthetic voice (1 semitone) aimed at a lively speaker would ask for a factor of 12
    draws = [sample_target(np.random.default_rng(i), [VoiceStats(180.0, 12.0)], VoiceStats(140.0, 1.0))
             for i in range(20)]
    assert max(d["pitch_range_factor"] for d in draws) == MAX_RANGE_FACTOR == 2.0


def test_convert_corpus_writes_a_manifest(tmp_path):
    entries = []
    for i, f0 in enumerate((110.0, 140.0)):
        path = tmp_path / "in" / f"{i}.wav"
        path.parent.mkdir(parents=True, exist_ok=True)
        save_audio(path, vowel(f0), SR)
        entries.append(ManifestEntry(path=str(path), label="keyword", text="ah", engine="espeak", voice="en+m1",
                                     speaker="espeak:m1", split="train"))
    silent = tmp_path / "in" / "silent.wav"
    save_audio(silent, np.zeros(SR, dtype=np.float32), SR)
    entries.append(ManifestEntry(path=str(silent), label="negative"))
    write_manifest(tmp_path / "in" / "manifest.jsonl", entries)
    out = convert_corpus(tmp_path / "in" / "manifest.jsonl", tmp_path / "out", [VoiceStats(230.0, 5.0)],
                         seed=3, workers=1, progress=False)
    assert len(out) == 2  # the silent clip cannot be converted and is left out
    written = read_manifest(tmp_path / "out" / "manifest.jsonl")
    assert [e.engine for e in written] == ["espeak+praat"] * 2 and written[0].speaker == "espeak:m1"
    converted = load_audio(written[0].path, SR)[0].numpy()
    assert f0_stats(converted, SR).median_hz == pytest.approx(written[0].params["pitch_median_hz"], rel=0.05)
