"""Waveform and spectrogram augmentation: checked against formulas and reference measurements."""

import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF

from speechconv.data.augment import (
    AUGMENTATIONS,
    AddNoise,
    FormantShift,
    Gain,
    PitchShift,
    Reverb,
    SpeedPerturb,
    TelephoneBand,
    TempoPerturb,
    TimeShift,
    build_augment,
    build_feature_augment,
    butterworth_qs,
    make_generator,
    mix_at_snr,
    signal_power,
)
from speechconv.data.rir import measure_rt60, schroeder_decay_db, synthetic_rir
from speechconv.data.specaugment import VTLP, SpecAugment, vtlp_source_positions, vtlp_warp
from speechconv.errors import ConfigError

SR = 16000


@pytest.fixture(autouse=True, scope="module")
def single_thread():
    """Augmentation runs in DataLoader workers with one intra-op thread; test it the same way
    (also avoids OpenMP spin contention on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def sine(freq: float, seconds: float = 1.0, sr: int = SR, amp: float = 0.5) -> torch.Tensor:
    t = torch.arange(int(seconds * sr), dtype=torch.float64) / sr
    return (amp * torch.sin(2 * math.pi * freq * t)).float()


def peak_hz(wave: torch.Tensor, sr: int = SR) -> float:
    """Frequency of the largest FFT bin, refined by parabolic interpolation on the log magnitude."""
    spec = torch.fft.rfft(wave.double() * torch.hann_window(len(wave), dtype=torch.float64)).abs().log()
    i = int(spec.argmax())
    d = 0.5 * (spec[i - 1] - spec[i + 1]) / (spec[i - 1] - 2 * spec[i] + spec[i + 1])
    return (i + float(d)) * sr / len(wave)


def snr_db(signal: torch.Tensor, mixed: torch.Tensor) -> float:
    residual = (mixed - signal).double()
    return 10 * math.log10(signal.double().pow(2).mean() / residual.pow(2).mean())


def band_power(wave: torch.Tensor, lo: float, hi: float, sr: int = SR) -> float:
    """Mean power spectral density in [lo, hi) Hz (Welch average of Hann-windowed frames)."""
    spec = (
        torch.stft(
            wave.double(), 1024, 256, window=torch.hann_window(1024, dtype=torch.float64), return_complex=True
        )
        .abs()
        .pow(2)
        .mean(-1)
    )
    freqs = torch.arange(spec.shape[0]) * sr / 1024
    return float(spec[(freqs >= lo) & (freqs < hi)].mean())


# ---------------------------------------------------------------- noise / SNR


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 20.0])
def test_mix_at_snr_hits_requested_snr(snr):
    g = torch.Generator().manual_seed(1)
    signal = sine(300) + 0.1 * torch.randn(SR, generator=g)
    noise = torch.randn(SR, generator=g) * 3.0
    mixed = mix_at_snr(signal, noise, snr)
    assert abs(snr_db(signal, mixed) - snr) < 0.5
    # the residual is the noise, only scaled
    residual = mixed - signal
    assert torch.allclose(residual / residual.norm(), noise / noise.norm(), atol=1e-5)


@pytest.mark.parametrize("snr", [-5.0, 0.0, 10.0, 20.0])
def test_add_noise_from_file_resampled_and_looped(tmp_path, snr):
    # 0.3 s of noise at 8 kHz: AddNoise must resample it to 16 kHz and loop it to cover 1 s.
    rng = np.random.default_rng(0)
    noise_dir = tmp_path / "noise"
    noise_dir.mkdir()
    sf.write(noise_dir / "n.wav", rng.standard_normal(2400).astype(np.float32) * 0.1, 8000)
    op = build_augment([{"name": "noise", "noise_dir": str(noise_dir), "snr_db": [snr, snr], "p": 1.0}]).ops[
        0
    ]
    signal = sine(440)
    mixed = op(signal, torch.Generator().manual_seed(3))
    assert mixed.shape == signal.shape
    assert abs(snr_db(signal, mixed) - snr) < 0.5
    residual = mixed - signal
    # resampled to 16 kHz: the 8 kHz noise has no energy above 4 kHz
    assert band_power(residual, 4500, 8000) < 1e-3 * band_power(residual, 500, 3500)


def test_add_noise_crops_long_files_at_random_offsets(tmp_path):
    rng = np.random.default_rng(0)
    data = (0.2 * rng.standard_normal(SR * 3)).clip(-0.99, 0.99).astype(np.float32)
    sf.write(tmp_path / "long.flac", data, SR)
    op = AddNoise(noise=[tmp_path / "long.flac"], snr_db=0.0)
    a = op.segment(0, 0.0, 1000)
    b = op.segment(0, 0.5, 1000)
    assert torch.allclose(a, torch.from_numpy(data[:1000]), atol=1e-4)  # flac is 16-bit
    start = int(0.5 * (len(data) - (1000 + 32)))
    assert torch.allclose(b, torch.from_numpy(data[start : start + 1000]), atol=1e-4)


def test_add_noise_active_power_ignores_silence():
    signal = torch.cat([torch.zeros(SR), sine(500)])  # half silence
    noise = torch.randn(4 * SR, generator=torch.Generator().manual_seed(0))
    op = AddNoise(noise=noise, snr_db=10.0, power="active")
    mixed = op(signal, torch.Generator().manual_seed(0))
    residual = (mixed - signal).double()
    active = 10 * math.log10(sine(500).double().pow(2).mean() / residual.pow(2).mean())
    assert abs(active - 10.0) < 0.5
    assert signal_power(signal, "active", SR) == pytest.approx(
        float(sine(500).double().pow(2).mean()), rel=1e-3
    )


def test_add_noise_errors_name_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="missing.wav"):
        AddNoise(noise=[tmp_path / "missing.wav"])
    with pytest.raises(ConfigError, match="no audio files"):
        AddNoise(noise_dir=tmp_path)
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    with pytest.raises(Exception, match="bad.wav"):
        AddNoise(noise=[bad])


# ---------------------------------------------------------------- determinism and config


FULL_CHAIN = [
    {"name": "noise", "snr_db": [0, 20]},
    {"name": "speed", "factors": [0.9, 1.1]},
    {"name": "pitch", "semitones": [-2, 2]},
    {"name": "formant", "ratio": [0.9, 1.1]},
    {"name": "gain", "db": [-6, 6]},
    {"name": "reverb", "rt60": [0.2, 0.5]},
    {"name": "telephone", "p": 0.5},
    {"name": "shift", "max_shift_s": 0.1, "mode": "roll"},
]


def test_chain_is_deterministic_per_seed():
    noise = torch.randn(SR, generator=torch.Generator().manual_seed(9))
    config = [dict(c, noise=[noise]) if c["name"] == "noise" else c for c in FULL_CHAIN]
    chain = build_augment(config, sample_rate=SR)
    assert [type(op) for op in chain.ops] == [AUGMENTATIONS[c["name"]] for c in FULL_CHAIN]
    wave = sine(440, 0.5)
    a = chain(wave, make_generator(7, 0, 3))
    b = chain(wave, make_generator(7, 0, 3))
    c = chain(wave, make_generator(7, 0, 4))
    d = chain(wave, make_generator(7, 1, 3))
    assert torch.equal(a, b)
    assert a.shape != c.shape or not torch.allclose(a, c)
    assert a.shape != d.shape or not torch.allclose(a, d)


def test_make_generator_mixes_all_three_inputs():
    draws = {
        key: float(torch.rand((), generator=make_generator(*key)))
        for key in [(0, 0, 0), (0, 0, 1), (0, 1, 0), (1, 0, 0)]
    }
    assert len(set(draws.values())) == 4
    assert float(torch.rand((), generator=make_generator(0, 0, 1))) == draws[(0, 0, 1)]


def test_probability_zero_and_one():
    wave = sine(440, 0.2)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(Gain(db=(6, 6), p=0.0)(wave, g), wave)
    assert torch.allclose(Gain(db=(6, 6), p=1.0)(wave, g), wave * 10 ** (6 / 20))
    hits = sum(not torch.equal(Gain(db=(6, 6), p=0.3)(wave, g), wave) for _ in range(2000))
    assert abs(hits / 2000 - 0.3) < 0.04


def test_build_augment_rejects_bad_config():
    with pytest.raises(ConfigError, match="unknown augmentation 'echo'"):
        build_augment([{"name": "echo"}])
    with pytest.raises(ConfigError, match="snr"):
        build_augment([{"name": "gain", "snr": 3}])
    with pytest.raises(ConfigError, match="p must be"):
        build_augment({"name": "gain", "p": 2})
    assert len(build_augment({"ops": [{"name": "gain"}, {"name": "shift"}]})) == 2
    assert len(build_augment(None)) == 0
    feats = build_feature_augment([{"name": "vtlp"}, {"name": "specaugment", "time_masks": 1}])
    assert isinstance(feats.ops[0], VTLP) and isinstance(feats.ops[1], SpecAugment)


# ---------------------------------------------------------------- speed, pitch, formants, gain, shift


@pytest.mark.parametrize("factor", [0.9, 1.1, 1.25])
def test_speed_perturb_scales_length_and_frequency(factor):
    wave = sine(440)
    out = SpeedPerturb().apply(wave, factor=factor)
    assert abs(out.shape[-1] - len(wave) / factor) <= 1
    assert peak_hz(out) == pytest.approx(440 * factor, rel=0.005)


def test_speed_perturb_discrete_choices():
    op = SpeedPerturb(factors=(0.9, 1.0, 1.1), discrete=True)
    g = torch.Generator().manual_seed(0)
    seen = {op.sample_params(g, torch.zeros(SR))["factor"] for _ in range(100)}
    assert seen == {0.9, 1.0, 1.1}


@pytest.mark.parametrize("semitones", [-3.0, 2.0, 5.0])
def test_pitch_shift_keeps_length_and_moves_peak(semitones):
    wave = sine(440)
    out = PitchShift(sample_rate=SR).apply(wave, semitones=semitones)
    assert out.shape == wave.shape
    assert peak_hz(out) == pytest.approx(440 * 2 ** (semitones / 12), rel=0.01)


@pytest.mark.parametrize("rate", [0.7, 1.25])
def test_tempo_scales_the_duration_and_keeps_the_pitch(rate):
    wave = sine(440, seconds=0.5)
    out = TempoPerturb(sample_rate=SR).apply(wave, rate=rate)
    assert out.shape[-1] == round(len(wave) / rate)
    assert peak_hz(out) == pytest.approx(440, rel=0.01)  # speed perturbation would give 440 * rate
    assert torch.isfinite(out).all()
    assert TempoPerturb().apply(torch.zeros(2, 100), rate=0.5).shape == (2, 200)  # shorter than the FFT


def _resonant_pulse_train(f0: float = 125.0, formant: float = 1000.0, bandwidth: float = 200.0):
    source = torch.zeros(SR)
    source[:: int(SR / f0)] = 1.0
    r = math.exp(-math.pi * bandwidth / SR)
    theta = 2 * math.pi * formant / SR
    a = torch.tensor([1.0, -2 * r * math.cos(theta), r * r])
    out = AF.lfilter(source, a, torch.tensor([1.0, 0.0, 0.0]), clamp=False)
    return 0.5 * out / out.abs().max()


def _formant_and_harmonic_share(wave: torch.Tensor, f0: float = 125.0):
    """(peak of the harmonic amplitudes, refined; share of energy on the harmonic bins +-1)."""
    spec = torch.fft.rfft(wave.double() * torch.hann_window(len(wave), dtype=torch.float64)).abs()
    k = torch.arange(1, 40)
    amps = spec[(k * f0).long()].log()
    i = int(amps.argmax())
    d = 0.5 * (amps[i - 1] - amps[i + 1]) / (amps[i - 1] - 2 * amps[i] + amps[i + 1])
    bins = (torch.arange(1, 64) * f0).long()
    on = sum(spec[bins + o].pow(2).sum() for o in (-1, 0, 1))
    return (i + 1 + float(d)) * f0, float(on / spec.pow(2).sum())


@pytest.mark.parametrize("ratio", [0.85, 1.2])
def test_formant_shift_moves_envelope_keeps_harmonics(ratio):
    wave = _resonant_pulse_train()
    base_formant, _ = _formant_and_harmonic_share(wave)
    out = FormantShift(sample_rate=SR).apply(wave, ratio=ratio)
    formant, harmonic_share = _formant_and_harmonic_share(out)
    assert out.shape == wave.shape
    assert formant / base_formant == pytest.approx(ratio, rel=0.04)
    assert harmonic_share > 0.97  # pitch (harmonic positions at k * 125 Hz) unchanged
    assert out.pow(2).mean().sqrt() == pytest.approx(float(wave.pow(2).mean().sqrt()), rel=1e-4)


@pytest.mark.parametrize("db", [-12.0, 3.5])
def test_gain_changes_rms_by_db(db):
    wave = sine(440)
    out = Gain().apply(wave, db=db)
    assert 20 * math.log10(out.pow(2).mean().sqrt() / wave.pow(2).mean().sqrt()) == pytest.approx(
        db, abs=1e-4
    )


def test_time_shift_zero_fill_and_roll():
    wave = torch.arange(1, 11, dtype=torch.float32)
    zero = TimeShift(mode="zero")
    assert torch.equal(zero.apply(wave, shift=3), torch.tensor([0, 0, 0, 1, 2, 3, 4, 5, 6, 7.0]))
    assert torch.equal(zero.apply(wave, shift=-2), torch.tensor([3, 4, 5, 6, 7, 8, 9, 10, 0, 0.0]))
    assert torch.equal(TimeShift(mode="roll").apply(wave, shift=-4), torch.roll(wave, -4))
    g = torch.Generator().manual_seed(0)
    shifts = [TimeShift(max_shift_s=0.01).sample_params(g, torch.zeros(SR))["shift"] for _ in range(500)]
    assert min(shifts) == -160 and max(shifts) == 160


# ---------------------------------------------------------------- telephone band


def test_butterworth_q_values():
    assert butterworth_qs(2) == pytest.approx([1 / math.sqrt(2)])
    assert sorted(butterworth_qs(4)) == pytest.approx([0.5412, 1.3066], abs=1e-4)


def test_telephone_band_limits_spectrum():
    op = TelephoneBand(sample_rate=SR, mu_law=False)
    noise = 0.1 * torch.randn(2 * SR, generator=torch.Generator().manual_seed(0))
    out = op.apply(noise)
    assert out.shape == noise.shape
    passband = band_power(out, 500, 3000)
    assert band_power(noise, 500, 3000) == pytest.approx(passband, rel=0.15)
    assert 10 * math.log10(passband / band_power(out, 4000, 8000)) > 30
    assert 10 * math.log10(passband / band_power(out, 20, 150)) > 30
    # a 6 kHz tone must not alias into the band
    tone = sine(6000)
    assert 10 * math.log10(tone.pow(2).mean() / op.apply(tone)[2000:-2000].pow(2).mean()) > 30
    # below the band: 4th-order Butterworth high-pass, |H|^2 = 1 / (1 + (300 / f)^8)
    for freq in (100, 200):
        tone = sine(freq)
        drop = 10 * math.log10(tone.pow(2).mean() / op.apply(tone)[2000:-2000].pow(2).mean())
        assert drop == pytest.approx(10 * math.log10(1 + (300 / freq) ** 8), abs=1.0)
    tone = sine(1000)
    assert abs(10 * math.log10(op.apply(tone)[2000:-2000].pow(2).mean() / tone.pow(2).mean())) < 0.5


def test_telephone_mu_law_round_trip_is_close():
    tone = sine(1000)
    clean = TelephoneBand(mu_law=False).apply(tone)
    coded = TelephoneBand(mu_law=True).apply(tone)
    # 8-bit mu-law: roughly 35-40 dB SNR on a full-scale tone
    assert snr_db(clean, coded) > 30


# ---------------------------------------------------------------- reverberation


@pytest.mark.parametrize("rt60", [0.3, 0.6, 1.0])
def test_synthetic_rir_rt60_and_drr(rt60):
    rir = synthetic_rir(SR, rt60, drr_db=3.0, generator=torch.Generator().manual_seed(2))
    assert measure_rt60(rir, SR, decay_db=20) == pytest.approx(rt60, rel=0.2)
    assert measure_rt60(rir, SR, decay_db=30) == pytest.approx(rt60, rel=0.2)
    energy = rir.double().pow(2)
    assert rir[0] == 1.0
    assert 10 * math.log10(energy[0] / energy[1:].sum()) == pytest.approx(3.0, abs=1e-3)


def test_measure_rt60_on_exact_exponential():
    # Schroeder curve of exp(-a t) is exactly linear in dB: the fit must recover the decay exactly.
    t = torch.arange(SR, dtype=torch.float64) / SR
    rir = torch.exp(-3 * math.log(10) * t / 0.5)
    assert measure_rt60(rir, SR, decay_db=30) == pytest.approx(0.5, rel=0.01)
    edc = schroeder_decay_db(rir)
    assert edc[0] == 0.0 and bool((edc[1:] <= edc[:-1]).all())


def test_reverb_is_convolution_cropped_and_level_matched():
    wave = sine(440, 0.25) * torch.hann_window(4000)
    op = Reverb(rt60=0.3, drr_db=6.0, sample_rate=SR)
    params = op.sample_params(torch.Generator().manual_seed(0), wave)
    out = op.apply(wave, **params)
    reference = np.convolve(wave.numpy(), params["rir"].numpy())[: len(wave)]
    reference *= np.sqrt(np.mean(wave.numpy() ** 2) / np.mean(reference**2))
    assert out.shape == wave.shape
    assert np.allclose(out.numpy(), reference, atol=1e-5)


# ---------------------------------------------------------------- VTLP and SpecAugment


def test_vtlp_identity_and_peak_motion():
    spec = torch.rand(2, 80, 50)
    assert torch.allclose(vtlp_warp(spec, 1.0), spec, atol=1e-6)
    peaked = torch.zeros(80, 10)
    peaked[20] = 1.0
    for alpha, expected in [(1.1, 22), (0.9, 18), (1.25, 25)]:
        assert int(vtlp_warp(peaked, alpha).sum(-1).argmax()) == expected


def test_vtlp_positions_invert_the_published_forward_warp():
    n, boundary = 64, 0.8
    top = n - 1.0
    for alpha in (0.85, 1.15):
        f_hi = boundary * top
        knee = f_hi * min(alpha, 1) / alpha

        def forward(f, alpha=alpha, f_hi=f_hi, knee=knee):
            if f <= knee:
                return alpha * f
            return top - (top - f_hi * min(alpha, 1)) / (top - knee) * (top - f)

        src = vtlp_source_positions(n, alpha, boundary)
        assert all(abs(forward(float(s)) - g) < 1e-9 for g, s in enumerate(src))
        assert src[0] == 0 and src[-1] == top and bool((src[1:] > src[:-1]).all())


def test_vtlp_op_draws_alpha_per_item():
    op = VTLP(alpha=(0.8, 1.2))
    spec = torch.zeros(4, 40, 5)
    spec[:, 10] = 1.0
    out = op(spec, torch.Generator().manual_seed(0))
    assert out.shape == spec.shape
    assert len({int(item.sum(-1).argmax()) for item in out}) > 1


def test_specaugment_masks_exact_count_and_width():
    spec = torch.rand(40, 100) + 1.0
    out = SpecAugment(freq_masks=0, time_masks=1, time_width=(7, 7))(spec, torch.Generator().manual_seed(0))
    assert int((out == 0).all(0).sum()) == 7
    out = SpecAugment(freq_masks=1, freq_width=(5, 5), time_masks=0)(spec, torch.Generator().manual_seed(0))
    assert int((out == 0).all(1).sum()) == 5
    assert int((out == 0).sum()) == 5 * 100


def test_specaugment_matches_its_params_and_is_seeded():
    op = SpecAugment(freq_masks=2, freq_width=8, time_masks=3, time_width=(2, 10), mask_value="mean")
    spec = torch.rand(3, 40, 100) + 1.0
    out = op(spec, torch.Generator().manual_seed(5))
    assert torch.equal(out, op(spec, torch.Generator().manual_seed(5)))
    g = torch.Generator().manual_seed(5)
    for item, got in zip(spec, out):
        torch.rand((), generator=g)  # the p coin
        params = op.sample_params(g, 40, 100)
        assert len(params["freq"]) == 2 and len(params["time"]) == 3
        assert all(0 <= w <= 8 for _, w in params["freq"]) and all(2 <= w <= 10 for _, w in params["time"])
        mask = torch.zeros(40, 100, dtype=torch.bool)
        for s, w in params["freq"]:
            mask[s : s + w] = True
        for s, w in params["time"]:
            mask[:, s : s + w] = True
        assert torch.allclose(got[mask], item.mean().expand(int(mask.sum())))
        assert torch.equal(got[~mask], item[~mask])


def test_specaugment_adaptive_time_cap():
    op = SpecAugment(freq_masks=0, time_masks=1, time_width=50, max_time_ratio=0.1)
    g = torch.Generator().manual_seed(0)
    assert max(op.sample_params(g, 10, 100)["time"][0][1] for _ in range(200)) == 10
