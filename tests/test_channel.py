"""Channel augmentation: EQ gains against the filter formulas, band limits, codec round trips, clipping."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from speechconv.data.augment import build_augment
from speechconv.data.channel import (
    BandLimit,
    Clipping,
    Codec,
    MicResponse,
    available_codecs,
    codec_round_trip,
    peaking_coefficients,
    shelf_coefficients,
)

SR = 16000


def tone(freq: float, seconds: float = 1.0, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * SR), dtype=torch.float64) / SR
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def gain_db(out: torch.Tensor, ref: torch.Tensor) -> float:
    skip = SR // 4  # past the filter's transient
    return 20 * math.log10(float(out[skip:].pow(2).mean().sqrt() / ref[skip:].pow(2).mean().sqrt()))


def response_db(b, a, freq: float) -> float:
    z = np.exp(-1j * 2 * np.pi * freq / SR)
    return 20 * np.log10(abs(np.polyval(b[::-1], z) / np.polyval(a[::-1], z)))


@pytest.mark.parametrize("freq, gain, q", [(1000.0, 9.0, 1.0), (300.0, -12.0, 2.0), (4000.0, 6.0, 0.7)])
def test_peaking_gain_at_centre_and_far_away(freq, gain, q):
    b, a = peaking_coefficients(SR, freq, gain, q)
    assert response_db(b, a, freq) == pytest.approx(gain, abs=1e-6)
    op = MicResponse(sample_rate=SR)
    x = tone(freq)
    assert gain_db(op.apply(x, peaks=[(freq, gain, q)]), x) == pytest.approx(gain, abs=0.2)
    far = tone(freq * 6 if freq < 1000 else freq / 8)
    assert abs(gain_db(op.apply(far, peaks=[(freq, gain, q)]), far)) < 1.5


@pytest.mark.parametrize("kind, at, away", [("low", 50.0, 6000.0), ("high", 7500.0, 100.0)])
def test_shelves(kind, at, away):
    b, a = shelf_coefficients(SR, 200.0 if kind == "low" else 4000.0, -8.0, kind)
    assert response_db(b, a, at) == pytest.approx(-8.0, abs=1.0)
    assert abs(response_db(b, a, away)) < 0.5


def test_mic_response_is_seeded_and_keeps_shape():
    op = MicResponse(p=1.0)
    x = torch.randn(2, SR) * 0.1
    y1 = op(x, torch.Generator().manual_seed(3))
    y2 = op(x, torch.Generator().manual_seed(3))
    assert y1.shape == x.shape and torch.equal(y1, y2) and not torch.allclose(y1, x)


def test_bandlimit_passes_the_band_and_cuts_outside():
    op = BandLimit()
    x_mid, x_low, x_high = tone(1000.0), tone(40.0), tone(7000.0)
    assert abs(gain_db(op.apply(x_mid, low=300.0, high=3400.0), x_mid)) < 0.5
    assert gain_db(op.apply(x_low, low=300.0, high=3400.0), x_low) < -30
    assert gain_db(op.apply(x_high, low=300.0, high=3400.0), x_high) < -20


@pytest.mark.parametrize("codec", available_codecs())
def test_codec_round_trip_keeps_length_alignment_and_the_speech_band(codec):
    rng = np.random.default_rng(0)
    # a band-limited signal (300-3000 Hz) that every codec should carry
    t = np.arange(SR) / SR
    x = sum(0.1 * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f in (400, 700, 1100, 1900, 2600))
    x = x.astype(np.float32)
    y = codec_round_trip(x, SR, codec, quality=0.5)
    assert y.shape == x.shape and y.dtype == np.float32
    middle = slice(SR // 4, 3 * SR // 4)
    snr = 10 * np.log10(np.sum(x[middle] ** 2) / np.sum((x[middle] - y[middle]) ** 2))
    assert snr > (3.0 if codec in ("gsm", "g721", "opus") else 8.0), snr
    assert not np.allclose(x, y)


def test_codec_op_and_config():
    ops = build_augment([{"name": "codec", "codecs": ["mulaw"]}, {"name": "mic"}, {"name": "bandlimit"},
                         {"name": "clip"}])
    assert [type(op) for op in ops.ops] == [Codec, MicResponse, BandLimit, Clipping]
    x = tone(500.0)
    y = ops(x, torch.Generator().manual_seed(0))
    assert y.shape == x.shape and torch.isfinite(y).all()
    with pytest.raises(Exception, match="unknown codec"):
        Codec(codecs=["amr"])


def test_clipping_flattens_peaks_and_keeps_level():
    x = tone(200.0, amp=0.4)
    y = Clipping().apply(x, overdrive_db=12.0)
    # the peak is raised 12 dB over full scale, clipped at 1 and scaled back: it ends 12 dB under the old peak
    assert float(y.abs().max()) == pytest.approx(0.4 * 10 ** (-12 / 20), rel=1e-4)
    flat = (y.abs() > 0.999 * float(y.abs().max())).float().mean()
    assert flat > 0.5  # a sine overdriven by 12 dB is clipped for most of its period
    assert torch.allclose(Clipping().apply(x, overdrive_db=0.0), x, atol=1e-6)


def test_codec_round_trip_at_the_range_ends():
    """Every codec takes the highest compression level (MP3 fails near 1.0 without the clamp, which once
    stopped a training run) and empty input."""
    from speechconv.data.channel import available_codecs, codec_round_trip

    x = (np.random.default_rng(0).standard_normal(4000) * 0.1).astype(np.float32)
    for codec in available_codecs():
        for quality in (0.0, 0.99999996, 1.0):
            assert codec_round_trip(x, 16000, codec, quality).shape == x.shape
        assert codec_round_trip(np.zeros(0, np.float32), 16000, codec).shape == (0,)
