"""Wake-word benchmark anchors (recipes/wakeword_benchmark/anchors.py) on generated audio.

Skipped when pocketsphinx / openwakeword / espeak-ng are missing; never reads the shared data folder."""

import importlib.util
import io
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechconv.detect import keyphrase
from speechconv.errors import ConfigError

ANCHORS_PATH = Path(__file__).resolve().parents[1] / "recipes" / "wakeword_benchmark" / "anchors.py"
SR = 16000


def load_anchors():
    spec = importlib.util.spec_from_file_location("wakeword_benchmark_anchors", ANCHORS_PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


anchors = load_anchors()


def say(text: str) -> np.ndarray:
    """espeak-ng speech at 16 kHz, leading and trailing silence trimmed."""
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    soxr = pytest.importorskip("soxr")
    wav = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", text], capture_output=True, check=True).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    audio = soxr.resample(audio, rate, SR)
    loud = np.flatnonzero(np.abs(audio) > 0.02)
    return audio[loud[0] : loud[-1] + 1]


def write(path: Path, audio: np.ndarray, noise: float = 0.003) -> Path:
    rng = np.random.default_rng(0)
    sf.write(path, audio + rng.normal(0, noise, len(audio)).astype(np.float32), SR, subtype="PCM_16")
    return path


def pause(seconds: float) -> np.ndarray:
    return np.zeros(int(seconds * SR), np.float32)


@pytest.fixture(scope="module")
def sentence(tmp_path_factory):
    """'... today | computer | please ...' with the keyword's true start and end in seconds."""
    pytest.importorskip("pocketsphinx")
    before, word, after = say("the weather is nice today"), say("computer"), say("please turn on the lights")
    audio = np.concatenate([pause(1.0), before, pause(0.3), word, pause(0.3), after, pause(1.0)])
    start = (len(pause(1.0)) + len(before) + len(pause(0.3))) / SR
    path = write(tmp_path_factory.mktemp("anchors") / "sentence.wav", audio)
    return path, start, start + len(word) / SR


def test_pocketsphinx_finds_computer_where_it_is_said(sentence):
    path, start, end = sentence
    hits = anchors.pocketsphinx_detections(path, "computer")
    best = int(np.argmax(hits.scores))
    assert abs(hits.starts[best] - start) < 0.3
    assert abs(hits.times[best] - end) < 0.3
    assert np.all(np.diff(hits.times) > 0)


def test_one_pass_scores_reproduce_decodes_at_each_threshold(sentence, monkeypatch):
    path, _, _ = sentence
    hits = anchors.pocketsphinx_detections(path, "computer")
    thresholds = [1e-40, 10.0 ** np.floor(hits.scores.max()), 10.0 ** np.ceil(hits.scores.max()), 1e30]
    for threshold in thresholds:
        monkeypatch.setattr(keyphrase, "PERMISSIVE_KWS_THRESHOLD", threshold)
        strict = anchors.pocketsphinx_detections(path, "computer")
        np.testing.assert_array_equal(strict.times, keyphrase.hits_at(hits, [threshold])[threshold])


def test_search_in_memory_matches_the_file_and_does_not_depend_on_the_file_before(sentence):
    path, _, _ = sentence
    audio, _ = sf.read(path, dtype="int16")
    search = keyphrase.KeyphraseSearch("computer")
    from_file = search.search_wav(path)
    noise = np.random.default_rng(2).normal(0, 0.2, 10 * SR).astype(np.float32)
    search.search(noise)  # a loud file first must not shift the next file's running cepstral mean
    in_memory = search.search(audio)
    for a, b in zip(from_file, in_memory):
        np.testing.assert_array_equal(a, b)
    floats = search.search(audio.astype(np.float32) / 32767.0)  # float input is scaled to int16 the same way
    np.testing.assert_array_equal(floats.times, from_file.times)


def test_pocketsphinx_keyword_across_a_block_boundary_is_found_once(sentence):
    path, start, end = sentence
    whole = anchors.pocketsphinx_detections(path, "computer")
    boundary = (start + end) / 2  # the block ends in the middle of the word
    blocked = anchors.pocketsphinx_detections(path, "computer", block_seconds=boundary, context_seconds=2.0)
    near = np.abs(blocked.times - end) < 0.3
    assert near.sum() == 1
    assert blocked.scores[near][0] > whole.scores.max() - 10  # same hit, within 10 decades of threshold


def test_pocketsphinx_hears_nothing_in_silence_or_noise(tmp_path):
    pytest.importorskip("pocketsphinx")
    rng = np.random.default_rng(1)
    for name, audio in {"silence": pause(5.0), "noise": rng.normal(0, 0.1, 5 * SR).astype(np.float32)}.items():
        hits = anchors.pocketsphinx_detections(write(tmp_path / f"{name}.wav", audio), "computer")
        assert len(keyphrase.hits_at(hits, [1e-20])[1e-20]) == 0, name


def test_pocketsphinx_words_missing_from_the_dictionary(tmp_path):
    pytest.importorskip("pocketsphinx")
    path = write(tmp_path / "quiet.wav", pause(1.0))
    with pytest.raises(ConfigError, match="zorblax"):
        anchors.pocketsphinx_detections(path, "hey zorblax")
    hits = anchors.pocketsphinx_detections(path, "hey zorblax", pronunciations={"zorblax": "Z AO R B L AE K S"})
    assert hits.times.shape == hits.scores.shape == hits.starts.shape


def test_openwakeword_scores_every_80ms_frame_across_blocks(tmp_path):
    pytest.importorskip("openwakeword")
    audio = np.concatenate([pause(1.0), np.random.default_rng(2).normal(0, 0.05, SR).astype(np.float32)])
    path = write(tmp_path / "clip.wav", np.concatenate([audio, pause(0.05)]))  # ends in a partial frame
    times, scores = anchors.openwakeword_scores(path, "alexa_v0.1")
    frames = (len(audio) + int(0.05 * SR)) // 1280
    np.testing.assert_allclose(times, np.arange(1, frames + 1) * 0.08)
    assert scores.shape == times.shape and np.all((scores >= 0) & (scores <= 1))
    assert scores.max() < 0.1
    _, blocked = anchors.openwakeword_scores(path, "alexa_v0.1", block_seconds=0.5)
    np.testing.assert_allclose(blocked, scores, atol=1e-6)


def test_openwakeword_unknown_model(tmp_path):
    pytest.importorskip("openwakeword")
    with pytest.raises(ValueError, match="alexa_v0.1"):
        anchors.openwakeword_scores(write(tmp_path / "quiet.wav", pause(0.5)), "melspectrogram")


def test_cli_writes_npz(sentence, tmp_path):
    pytest.importorskip("openwakeword")
    path, _, _ = sentence
    anchors.main(["pocketsphinx", str(path), "--keyphrase", "computer", "--out", str(tmp_path / "ps.npz")])
    anchors.main(["openwakeword", str(path), "--out", str(tmp_path / "oww.npz")])
    with np.load(tmp_path / "ps.npz") as ps, np.load(tmp_path / "oww.npz") as oww:
        assert {"times", "scores", "starts", "audio_seconds", "run_seconds"} <= set(ps.files)
        assert len(ps["times"]) >= 1 and str(ps["setting"]) == "computer"
        assert len(oww["times"]) == int(sf.info(path).frames) // 1280
