"""Front-ends: framing, streaming == offline, librosa parity, PCEN formula, normalization, registry."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import torch
import torchaudio
from hypothesis import given, settings
from hypothesis import strategies as st

from speechconv.errors import ConfigError
from speechconv.frontends import (
    FRONTENDS,
    MFCC,
    PCEN,
    LogMel,
    build_frontend,
    num_frames,
    steady_tail_length,
)
from speechconv.frontends.pcen import pcen_compress, pcen_smooth

SR = 16000
STREAM_TOL = 1e-5


def make_signal(seconds: float, seed: int = 0, sample_rate: int = SR) -> torch.Tensor:
    """Noise + chirp-like tones + a silent stretch + a quiet stretch, shape (2, T) float32."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sample_rate)
    t = np.arange(n) / sample_rate
    sweep = 0.3 * np.sin(2 * np.pi * (300 + 2000 * t / max(seconds, 1e-9)) * t)
    tones = sweep + 0.1 * np.sin(2 * np.pi * 3100 * t)
    wave = np.stack([tones + 0.05 * rng.standard_normal(n), 0.2 * rng.standard_normal(n)])
    wave[:, n // 4 : n // 4 + 2000] = 0.0  # digital silence hits the log floors
    wave[:, n // 2 : n // 2 + 3000] *= 1e-4  # very quiet stretch
    return torch.from_numpy(wave.astype(np.float32))


def stream(frontend, wave: torch.Tensor, sizes) -> tuple[torch.Tensor, list[dict]]:
    """Feed ``wave`` in chunks of ``sizes`` (cycled) and concatenate the returned frames."""
    cache, outputs, caches, pos, i = None, [], [], 0, 0
    with torch.no_grad():
        while pos < wave.shape[-1]:
            size = sizes[i % len(sizes)]
            frames, cache = frontend.stream(wave[..., pos : pos + size], cache)
            assert frames.shape[:2] == (wave.shape[0] if wave.ndim == 2 else 1, frontend.n_features)
            outputs.append(frames)
            caches.append(cache)
            pos, i = pos + size, i + 1
    return torch.cat(outputs, dim=-1), caches


def random_chunk_sizes(rng: np.random.Generator, total: int, hop: int) -> list[int]:
    """1-sample chunks, sub-hop chunks, frame-sized chunks and multi-second chunks, shuffled."""
    sizes = [1] * 30 + list(rng.integers(2, hop, size=15)) + list(rng.integers(hop, 3 * hop, size=10))
    sizes += [int(2.5 * SR), int(1.3 * SR)]
    rng.shuffle(sizes)
    sizes = [int(s) for s in sizes]
    remaining = total - sum(sizes)
    while remaining > 0:
        size = int(min(remaining, rng.integers(1, 5000)))
        sizes.append(size)
        remaining -= size
    return sizes


# ---------------------------------------------------------------------------------------------- framing
@pytest.mark.parametrize("name", sorted(FRONTENDS))
def test_num_frames_matches_output_sizes(name):
    frontend = build_frontend({"name": name})
    for length in [0, 1, 159, 399, 400, 401, 559, 560, 561, 16000, 16001]:
        expected = 0 if length < 400 else (length - 400) // 160 + 1
        assert num_frames(length, 400, 160) == expected
        assert frontend.num_frames(length) == expected
        out = frontend(torch.zeros(length) + 0.01)
        assert out.shape == (1, frontend.n_features, expected)
        assert out.dtype == torch.float32


def test_frames_are_causal_and_uncentered():
    """Frame k depends only on samples [k*hop, k*hop + n_fft)."""
    frontend = LogMel(n_fft=400, hop_length=160)
    wave = make_signal(0.5)[0]
    base = frontend(wave)
    changed = wave.clone()
    changed[160 * 3 + 400 :] += 0.5  # after frame 3 ends
    out = frontend(changed)
    torch.testing.assert_close(out[..., :4], base[..., :4], rtol=0, atol=0)
    assert not torch.equal(out[..., 4], base[..., 4])
    # and frame 0 is the spectrum of exactly the first n_fft samples
    torch.testing.assert_close(frontend(wave[:400]), base[..., :1], rtol=0, atol=0)


def test_common_attributes():
    frontend = MFCC(sample_rate=8000, n_fft=256, win_length=200, hop_length=80, n_mels=32, n_mfcc=20)
    framing = (frontend.sample_rate, frontend.n_fft, frontend.win_length, frontend.hop_length)
    assert framing == (8000, 256, 200, 80)
    assert frontend.n_features == 20 and frontend.frame_rate == 100.0
    assert LogMel().win_length == 400 and LogMel().n_features == 40 and PCEN(n_mels=24).n_features == 24


# ---------------------------------------------------------------------------------------------- streaming
STREAM_CASES = [(name, window) for name in sorted(FRONTENDS) for window in ("hann", "hamming")]


@pytest.mark.parametrize(("name", "window"), STREAM_CASES)
def test_streaming_equals_offline_random_chunks(name, window):
    wave = make_signal(5.0, seed=1)
    frontend = build_frontend({"name": name, "window": window, "win_length": 320})
    rng = np.random.default_rng(STREAM_CASES.index((name, window)))
    sizes = random_chunk_sizes(rng, wave.shape[-1], frontend.hop_length)
    with torch.no_grad():
        offline = frontend(wave)
    streamed, _ = stream(frontend, wave, sizes)
    assert streamed.shape == offline.shape
    assert (streamed - offline).abs().max().item() <= STREAM_TOL


@settings(max_examples=12, deadline=None)
@given(
    sizes=st.lists(st.integers(min_value=1, max_value=4000), min_size=1, max_size=12),
    name=st.sampled_from(sorted(FRONTENDS)),
)
def test_streaming_equals_offline_hypothesis(sizes, name):
    wave = make_signal(0.6, seed=2)
    frontend = build_frontend({"name": name, "n_fft": 512, "win_length": 400, "hop_length": 128})
    with torch.no_grad():
        offline = frontend(wave)
    # the drawn sizes once, then the rest of the signal in one chunk
    streamed, _ = stream(frontend, wave, [*sizes, wave.shape[-1]])
    assert streamed.shape == offline.shape
    assert (streamed - offline).abs().max().item() <= STREAM_TOL


def test_streaming_with_global_normalization_and_single_waveform():
    wave = make_signal(1.0, seed=3)[0]
    frontend = PCEN(normalization="global")
    frontend.fit_global_stats_from_waves([make_signal(0.7, seed=4)])
    with torch.no_grad():
        offline = frontend(wave)
    streamed, _ = stream(frontend, wave, [700, 1, 33, 4000])
    assert streamed.shape == offline.shape == (1, 40, frontend.num_frames(wave.numel()))
    assert (streamed - offline).abs().max().item() <= STREAM_TOL


@pytest.mark.parametrize("name", sorted(FRONTENDS))
@pytest.mark.parametrize("hops_per_chunk", [1, 2, 3, 10])
def test_streaming_cache_shapes_constant_for_hop_multiples(name, hops_per_chunk):
    frontend = build_frontend({"name": name})
    chunk = hops_per_chunk * frontend.hop_length
    wave = make_signal(0.5, seed=5)
    _, caches = stream(frontend, wave[:, : (wave.shape[-1] // chunk) * chunk], [chunk])
    first = (frontend.n_fft - 1) // chunk  # the first step that completes a frame
    if chunk >= frontend.n_fft:
        assert first == 0
    shapes = [{key: tuple(value.shape) for key, value in c.items()} for c in caches[first:]]
    assert all(s == shapes[0] for s in shapes)
    assert shapes[0]["samples"] == (2, steady_tail_length(400, 160)) == (2, 320)
    if name == "pcen":
        assert shapes[0]["pcen_smoother"] == (2, 40)


def test_streaming_does_not_modify_input_cache_and_checks_batch():
    frontend = PCEN()
    wave = make_signal(0.2)
    _, cache = frontend.stream(wave[:, :1000])
    snapshot = {key: value.clone() for key, value in cache.items()}
    frontend.stream(wave[:, 1000:2000], cache)
    assert cache.keys() == snapshot.keys()
    assert all(torch.equal(cache[key], snapshot[key]) for key in cache)
    with pytest.raises(ValueError, match="batch"):
        frontend.stream(wave[0, 1000:2000], cache)


def test_streaming_rejects_utterance_normalization():
    frontend = LogMel(normalization="utterance")
    with pytest.raises(ConfigError, match="utterance"):
        frontend.stream(torch.zeros(1600))


# ------------------------------------------------------------------------------------ librosa parity
PARITY_CASES = [
    {"window": "hann"},
    {"window": "hamming", "win_length": 320, "fmin": 60.0, "fmax": 7000.0},
    {"window": "hann", "n_fft": 512, "win_length": 400, "hop_length": 128, "n_mels": 64, "fmin": 0.0},
]


def librosa_mel(wave: np.ndarray, options: dict) -> np.ndarray:
    n_fft = options.get("n_fft", 400)
    return librosa.feature.melspectrogram(
        y=wave.astype(np.float64),
        sr=SR,
        n_fft=n_fft,
        hop_length=options.get("hop_length", 160),
        win_length=options.get("win_length", n_fft),
        window=options["window"],
        center=False,
        power=2.0,
        n_mels=options.get("n_mels", 40),
        fmin=options.get("fmin", 20.0),
        fmax=options.get("fmax", SR / 2),
        htk=False,
        norm="slaney",
    )


def relative_error(ours: np.ndarray, reference: np.ndarray) -> float:
    return float(np.abs(ours - reference).max() / np.abs(reference).max())


@pytest.mark.parametrize("options", PARITY_CASES)
def test_mel_power_matches_librosa(options):
    wave = make_signal(1.0, seed=6)
    frontend = LogMel(**options)
    ours = frontend.mel_power(wave).double().numpy()
    reference = librosa_mel(wave.numpy(), options)
    assert ours.shape == reference.shape
    assert relative_error(ours, reference) < 1e-3
    loud = reference > 1e-3 * reference.max()
    assert np.abs(ours[loud] / reference[loud] - 1).max() < 1e-3
    # LogMel is the floored natural log of that power
    log_reference = np.log(np.maximum(reference, frontend.log_floor))
    assert np.abs(frontend(wave).double().numpy() - log_reference).max() < 1e-3


def test_htk_or_unnormalized_mel_would_not_match_librosa():
    """The Slaney scale + Slaney norm choice is what makes the parity test pass."""
    wave = make_signal(0.5, seed=7)
    reference = librosa_mel(wave.numpy(), {"window": "hann"})
    spec = torchaudio.transforms.Spectrogram(n_fft=400, hop_length=160, center=False)(wave)
    for norm, scale in [(None, "htk"), ("slaney", "htk"), (None, "slaney")]:
        mel = torchaudio.transforms.MelScale(40, SR, 20.0, 8000.0, 201, norm=norm, mel_scale=scale)(spec)
        assert relative_error(mel.double().numpy(), reference) > 1e-2


@pytest.mark.parametrize("options", PARITY_CASES)
def test_mfcc_matches_librosa(options):
    wave = make_signal(1.0, seed=8)
    frontend = MFCC(n_mfcc=20, **options)
    ours = frontend(wave).double().numpy()
    db = librosa.power_to_db(librosa_mel(wave.numpy(), options), ref=1.0, amin=1e-10, top_db=None)
    reference = librosa.feature.mfcc(S=db, n_mfcc=20, dct_type=2, norm="ortho")
    assert ours.shape == reference.shape
    assert relative_error(ours, reference) < 1e-3
    assert np.linalg.norm(ours - reference) / np.linalg.norm(reference) < 1e-4


# ---------------------------------------------------------------------------------------------- PCEN
def numpy_pcen(energy, alpha, delta, r, s, eps):
    """Wang et al. 2017 PCEN with M[0] = E[0]; per-channel parameters, energy (C, T)."""
    smoothed = np.empty_like(energy)
    smoothed[:, 0] = energy[:, 0]
    for t in range(1, energy.shape[1]):
        smoothed[:, t] = (1 - s) * smoothed[:, t - 1] + s * energy[:, t]
    a, d, rr = alpha[:, None], delta[:, None], r[:, None]
    return (energy / (eps + smoothed) ** a + d) ** rr - d**rr


def set_pcen_parameters(frontend: PCEN, **values: np.ndarray) -> None:
    with torch.no_grad():
        for label, value in values.items():
            getattr(frontend, f"log_{label}").copy_(torch.log(torch.as_tensor(value, dtype=torch.float32)))


def test_pcen_matches_formula_by_hand():
    energy = np.array([[0.5, 2.0, 0.0, 8.0, 1.0], [1e-3, 1e-3, 3.0, 0.2, 0.2]])
    alpha, delta = np.array([0.98, 0.5]), np.array([2.0, 0.1])
    r, s = np.array([0.5, 0.25]), np.array([0.3, 0.8])
    frontend = PCEN(n_mels=2, fmin=0.0, eps=1e-6)
    set_pcen_parameters(frontend, alpha=alpha, delta=delta, r=r, s=s)
    mel = torch.tensor(energy[None], dtype=torch.float32)
    ours, state = frontend.features_from_mel(mel, {})
    expected = numpy_pcen(energy, alpha, delta, r, s, 1e-6)
    np.testing.assert_allclose(ours[0].detach().numpy(), expected, rtol=1e-5, atol=1e-6)
    # the carried smoother state is M[T-1]; first value by hand: M[0] = E[0]
    m_last = energy[:, 0]
    for t in range(1, 5):
        m_last = (1 - s) * m_last + s * energy[:, t]
    np.testing.assert_allclose(state["pcen_smoother"][0].detach().numpy(), m_last, rtol=1e-6)
    # hand value of channel 0, frame 0: (0.5 / (1e-6 + 0.5)**0.98 + 2)**0.5 - 2**0.5
    assert ours[0, 0, 0].item() == pytest.approx((0.5 / (1e-6 + 0.5) ** 0.98 + 2) ** 0.5 - 2**0.5, rel=1e-5)


def test_pcen_matches_librosa_pcen():
    wave = make_signal(1.0, seed=9)
    frontend = PCEN(alpha=0.9, delta=1.5, r=0.4, s=0.06, eps=1e-6)
    mel = frontend.mel_power(wave).double().numpy()
    # librosa's default smoother state assumes a unit input before frame 0; ours is M[0] = E[0]
    zi = (1 - 0.06) * mel[..., :1]
    reference = librosa.pcen(mel, b=0.06, gain=0.9, bias=1.5, power=0.4, eps=1e-6, max_size=1, axis=-1, zi=zi)
    ours = frontend(wave).detach().double().numpy()
    assert relative_error(ours, reference) < 1e-4


def test_pcen_parameters_are_trainable_with_correct_gradients():
    frontend = PCEN(n_mels=16)
    wave = make_signal(0.3, seed=10)
    frontend(wave).pow(2).mean().backward()
    for label in ("alpha", "delta", "r", "s"):
        grad = getattr(frontend, f"log_{label}").grad
        assert grad is not None and grad.shape == (16,)
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    frozen = PCEN(trainable=False)
    assert not any(p.requires_grad for p in frozen.parameters())

    # the recursion's gradients agree with finite differences
    energy = torch.rand(1, 3, 6, dtype=torch.float64) + 0.1
    params = [torch.rand(3, dtype=torch.float64, requires_grad=True) * 0.5 + 0.25 for _ in range(4)]
    params = [p.detach().requires_grad_() for p in params]

    def pcen(alpha, delta, r, s):
        return pcen_compress(energy, pcen_smooth(energy, s, None), alpha, delta, r, 1e-6)

    assert torch.autograd.gradcheck(pcen, params)


def test_pcen_parameters_stay_positive_and_s_is_clamped():
    frontend = PCEN(n_mels=4)
    with torch.no_grad():
        frontend.log_s.fill_(3.0)  # exp(3) > 1
        frontend.log_alpha.fill_(-50.0)
    assert torch.all(frontend.s == 1.0) and torch.all(frontend.alpha > 0)


# ---------------------------------------------------------------------------------------------- normalization
@pytest.mark.parametrize("name", sorted(FRONTENDS))
def test_utterance_normalization_gives_zero_mean_unit_std(name):
    frontend = build_frontend({"name": name, "normalization": "utterance"})
    wave = make_signal(1.0, seed=11)
    out = frontend(wave).detach().double()
    raw_var = frontend.raw_features(wave).detach().double().var(-1, unbiased=False)
    assert out.mean(-1).abs().max() < 1e-5
    # std is sqrt(var / (var + eps)): 1 up to the variance floor eps
    expected_std = torch.sqrt(raw_var / (raw_var + frontend.normalizer.eps))
    torch.testing.assert_close(out.std(-1, unbiased=False), expected_std, atol=1e-4, rtol=0)
    assert (out.std(-1, unbiased=False)[raw_var > 1e-2] - 1).abs().max() < 1e-3


def test_global_stats_fit_matches_numpy_and_round_trips():
    frontend = LogMel(normalization="global", n_mels=24)
    raws = [
        frontend.raw_features(make_signal(0.4, seed=12)),  # (B, F, T)
        frontend.raw_features(make_signal(0.9, seed=13)[0])[0],  # (F, T)
    ]
    frontend.fit_global_stats(raws)
    frames = np.concatenate([raws[0][0].numpy(), raws[0][1].numpy(), raws[1].numpy()], axis=1)
    frames = frames.astype(np.float64)
    np.testing.assert_allclose(frontend.normalizer.mean.numpy(), frames.mean(axis=1), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(frontend.normalizer.std.numpy(), frames.std(axis=1), rtol=1e-5)

    wave = make_signal(0.5, seed=14)
    mean, std = frontend.normalizer.mean[:, None], frontend.normalizer.std[:, None]
    torch.testing.assert_close(frontend(wave), (frontend.raw_features(wave) - mean) / std)
    # over the frames it was fitted on, the output has mean 0 / std 1 per channel
    batch_out = frontend(make_signal(0.4, seed=12)).transpose(0, 1).reshape(24, -1)
    single_out = frontend(make_signal(0.9, seed=13)[0])[0]
    normalized = torch.cat([batch_out, single_out], dim=1).double()
    assert normalized.mean(1).abs().max() < 1e-4
    assert (normalized.std(1, unbiased=False) - 1).abs().max() < 1e-4

    rebuilt = build_frontend(frontend.config)
    torch.testing.assert_close(rebuilt(wave), frontend(wave), rtol=0, atol=0)

    from_waves = LogMel(normalization="global", n_mels=24)
    from_waves.fit_global_stats_from_waves([make_signal(0.4, seed=12), make_signal(0.9, seed=13)[0]])
    torch.testing.assert_close(from_waves.normalizer.mean, frontend.normalizer.mean)


def test_global_stats_errors():
    with pytest.raises(ConfigError, match="global"):
        LogMel().fit_global_stats([torch.zeros(40, 5)])
    with pytest.raises(ConfigError, match="40 values"):
        LogMel(normalization="global", global_mean=[0.0] * 3, global_std=[1.0] * 3)
    with pytest.raises(ConfigError, match="positive"):
        LogMel(normalization="global", global_mean=[0.0] * 40, global_std=[0.0] * 40)
    with pytest.raises(ValueError, match="F=40"):
        LogMel(normalization="global").fit_global_stats([torch.zeros(13, 5)])
    with pytest.raises(ValueError, match="no frames"):
        LogMel(normalization="global").fit_global_stats([])


# ------------------------------------------------------------------------------------ registry, config, input
@pytest.mark.parametrize(
    "config",
    [
        {"name": "logmel", "n_mels": 32, "window": "hamming", "log_floor": 1e-5},
        {"name": "mfcc", "n_mfcc": 20, "fmax": 7600.0, "normalization": "utterance"},
        {"name": "pcen", "sample_rate": 8000, "n_fft": 256, "hop_length": 80, "s": 0.04, "trainable": False},
    ],
)
def test_config_round_trip(config):
    frontend = build_frontend(config)
    assert isinstance(frontend, FRONTENDS[config["name"]])
    rebuilt = build_frontend(frontend.config)
    assert rebuilt.config == frontend.config
    assert all(frontend.config[key] == value for key, value in config.items())
    wave = make_signal(0.3, seed=15, sample_rate=frontend.sample_rate)
    torch.testing.assert_close(rebuilt(wave), frontend(wave), rtol=0, atol=0)


def test_build_frontend_errors():
    with pytest.raises(ConfigError, match="unknown frontend 'stft'"):
        build_frontend({"name": "stft"})
    with pytest.raises(ConfigError, match="n_mfc"):
        build_frontend({"name": "logmel", "n_mfc": 3})
    with pytest.raises(ConfigError, match="window"):
        LogMel(window="blackman")
    with pytest.raises(ConfigError, match="hop_length"):
        LogMel(hop_length=500)
    with pytest.raises(ConfigError, match="fmax"):
        LogMel(fmax=9000.0)
    with pytest.raises(ConfigError, match="n_mfcc"):
        MFCC(n_mfcc=50)
    with pytest.raises(ConfigError, match="normalization"):
        LogMel(normalization="batch")


def test_input_shapes_and_dtypes():
    frontend = LogMel()
    wave = make_signal(0.2)
    assert frontend(wave[0]).shape == (1, 40, 18)
    torch.testing.assert_close(frontend(wave.double()), frontend(wave))
    with pytest.raises(ValueError, match="floating-point"):
        frontend(torch.zeros(1000, dtype=torch.int16))
    with pytest.raises(ValueError, match=r"\(T,\) or \(B, T\)"):
        frontend(torch.zeros(1, 1, 1000))


@pytest.mark.parametrize("name", ["logmel", "mfcc", "pcen"])
def test_fast_training_numerics_stay_within_float32_of_the_exact_ones(name):
    frontend = build_frontend({"name": name, "n_mels": 40})
    wave = torch.stack([make_signal(1.0, seed=21)[0], make_signal(1.0, seed=22)[0]])
    with torch.no_grad():
        exact = frontend(wave)
        with frontend.fast_numerics():
            assert not frontend.exact
            fast = frontend(wave)
    assert frontend.exact  # restored
    scale = exact.abs().amax()
    assert not torch.equal(fast, exact)  # a different summation ...
    torch.testing.assert_close(fast, exact, rtol=0, atol=2e-5 * float(scale))  # ... to float32 precision


def test_matmul_stft_gives_the_exact_features_to_float32_precision():
    frontend = build_frontend({"name": "logmel", "n_mels": 40})
    wave = make_signal(1.0, seed=23)
    exact_mel = frontend.mel_power(wave)
    exact_stream, _ = frontend.stream(wave)
    frontend.use_matmul_stft()
    mel = frontend.mel_power(wave)
    torch.testing.assert_close(mel, exact_mel, rtol=1e-4, atol=1e-6 * float(exact_mel.amax()))
    streamed, state = frontend.stream(wave)
    torch.testing.assert_close(streamed, exact_stream, rtol=0, atol=1e-3)
    assert state["samples"].shape[-1] == wave.shape[-1] - (frontend.num_frames(wave.shape[-1]) * frontend.hop_length)
