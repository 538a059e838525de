"""The whisper engine (speechconv.runtime.whisper_engine): a saved whisper-head model directory, streamed in
chunks of any size, gives the scores of the offline path (stream_frames or live_frames, then the PyTorch
head over all frames), frame for frame and time for time; the head streams exactly; loading errors are one
line. A stand-in encoder keeps these fast; the bundled model with the real encoder is in
test_pretrained_hello.py."""

import math

import numpy as np
import pytest
import torch

from speechconv.errors import ConfigError
from speechconv.export.whisper_head import load_whisper_head, save_whisper_model
from speechconv.frontends import whisper
from speechconv.models.whisper_head import WhisperKeywordHead
from speechconv.runtime.whisper_engine import HeadScorer, WhisperModel, is_whisper_model


class StandInEncoder:
    """Frame j of a window: the mean and mean square of its 20 ms of audio and its position in the window, so
    frames depend on where a window starts, as the real encoder's do."""

    dim = 3

    def encode(self, windows):
        windows = np.asarray(windows, dtype=np.float32)
        assert windows.shape[1] == whisper.WINDOW_SAMPLES
        return self._frames(windows.reshape(len(windows), -1, whisper.FRAME_SAMPLES))

    def encode_short(self, audio):
        audio = np.asarray(audio, dtype=np.float32)
        assert len(audio) % whisper.FRAME_SAMPLES == 0
        return self._frames(audio.reshape(1, -1, whisper.FRAME_SAMPLES))[0]

    @staticmethod
    def _frames(pieces):
        position = np.broadcast_to(np.arange(pieces.shape[1], dtype=np.float32) / 100, pieces.shape[:2])
        return np.stack([pieces.mean(-1) * 10, (pieces**2).mean(-1) * 10, position], axis=-1)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    head = WhisperKeywordHead(dim=3, width=8, kernel=9).eval()
    folder = tmp_path_factory.mktemp("whisper_model")
    save_whisper_model(head, folder, "hello", {"threshold": 0.5, "smoothing_frames": 1}, "# test head\n")
    return folder, head


def offline(head, encoder, audio, mode):
    if mode == "window":
        _, frames = whisper.stream_frames(encoder, audio)
    else:
        _, frames = whisper.live_frames(encoder, audio, 3.0, 0.5, 1.0)
    return head.score_frames(torch.from_numpy(frames)).numpy()


def streamed(model, audio, chunk_sizes):
    stream = model.open_stream()
    times, scores, start = [], [], 0
    for size in chunk_sizes:
        t, s = stream.feed(audio[start:start + size])
        times.append(t)
        scores.append(s)
        start += size
    assert start >= len(audio)
    t, s = stream.finish()
    return np.concatenate(times + [t]), np.concatenate(scores + [s])


@pytest.mark.parametrize("mode", ["window", "live"])
@pytest.mark.parametrize("seconds", [0.7, 30.0, 61.37])
def test_streamed_equals_offline(model_dir, mode, seconds):
    folder, head = model_dir
    encoder = StandInEncoder()
    audio = (0.3 * np.random.default_rng(int(seconds * 100)).standard_normal(int(seconds * 16000))).astype(np.float32)
    model = WhisperModel(folder, mode=mode, encoder=encoder)
    rng = np.random.default_rng(1)
    sizes = list(rng.integers(1, 40000, size=len(audio) // 10000 + 5))
    times, scores = streamed(model, audio, sizes)
    expected = offline(head, encoder, audio, mode)
    total = math.ceil(len(audio) / whisper.FRAME_SAMPLES)
    assert len(scores) == len(expected) == total
    np.testing.assert_allclose(times, (np.arange(total) + 0.5) * 0.02, atol=1e-9)
    np.testing.assert_allclose(scores, expected, atol=2e-6)
    # one chunk of everything gives the same
    np.testing.assert_allclose(streamed(model, audio, [len(audio)])[1], expected, atol=2e-6)


def test_scores_come_no_later_than_the_mode_needs(model_dir):
    """live: a frame is scored once 0.5 s of audio after its hop and the head's 4 frames are in; window: once
    the window that holds it in its middle is complete."""
    folder, _ = model_dir
    audio = np.zeros(16000 * 40, dtype=np.float32)
    live = WhisperModel(folder, mode="live", encoder=StandInEncoder()).open_stream()
    times, _ = live.feed(audio[: int(16000 * 2.5)])  # hop [0, 1 s) needs audio to 1.5 s; [1, 2 s) to 2.5 s
    assert len(times) == 100 - 4
    window = WhisperModel(folder, mode="window", encoder=StandInEncoder()).open_stream()
    assert len(window.feed(audio[: 16000 * 30])[0]) == 0  # the first window could still be the last
    assert len(window.feed(audio[16000 * 30: 16000 * 31])[0]) == 1450 - 4


def test_head_scorer_pieces_equal_one_pass(model_dir):
    folder, head = model_dir
    model = WhisperModel(folder, encoder=StandInEncoder())
    frames = np.random.default_rng(3).standard_normal((523, 3)).astype(np.float32)
    scorer = HeadScorer(model.session, 4)
    parts, start = [], 0
    for size in [1, 2, 3, 100, 0, 7, 300, 110]:
        parts.append(scorer.push(frames[start:start + size]))
        start += size
    parts.append(scorer.finish())
    np.testing.assert_allclose(np.concatenate(parts), head.score_frames(torch.from_numpy(frames)).numpy(), atol=2e-6)


def test_saved_directory(model_dir):
    folder, head = model_dir
    assert is_whisper_model(folder)
    model = WhisperModel(folder, encoder=StandInEncoder())
    assert (model.keyword, model.labels, model.keyword_index) == ("hello", ["negative", "hello"], 1)
    assert model.output_period == 0.02 and model.sample_rate == 16000 and model.detector["threshold"] == 0.5
    reloaded = load_whisper_head(folder)
    for key, value in head.state_dict().items():
        torch.testing.assert_close(reloaded.state_dict()[key], value)


def test_loading_errors_are_one_line(model_dir, tmp_path):
    from speechconv.pretrained import load_pretrained

    folder, _ = model_dir
    with pytest.raises(ConfigError, match="Whisper's encoder, not a KeywordSpotter") as info:
        load_pretrained(folder)
    assert "\n" not in str(info.value)
    (tmp_path / "config.yaml").write_text("frontend: {name: whisper}\nmodel: {name: tdnn}\nlabels: [a, b]\n"
                                          "keyword: b\n")
    with pytest.raises(ConfigError, match="needs model 'whisper_head'"):
        WhisperModel(tmp_path, encoder=StandInEncoder())
    with pytest.raises(ConfigError, match="mode must be one of"):
        WhisperModel(folder, mode="fast", encoder=StandInEncoder())


def test_plot_features_are_whisper_log_mels(model_dir):
    folder, _ = model_dir
    stream = WhisperModel(folder, encoder=StandInEncoder()).open_stream()
    audio = np.random.default_rng(4).standard_normal(16000).astype(np.float32)
    whole = stream.plot_features(audio)
    assert whole.shape == (80, (16000 - 400) // 160 + 1) and stream.feature_rate == 100
    pieces = WhisperModel(folder, encoder=StandInEncoder()).open_stream()
    parts = np.concatenate([pieces.plot_features(audio[:5000]), pieces.plot_features(audio[5000:])], axis=-1)
    np.testing.assert_allclose(parts, whole, atol=1e-5)
