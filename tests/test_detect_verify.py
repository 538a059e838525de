"""``speechconv detect --verify``: the model's scores fused with pocketsphinx's keyphrase hits
(speechconv.detect.runner.detect_verified), against the library's formula and the plain path.

Needs pocketsphinx (the dev extra installs it) and espeak-ng; never reads the shared data folder."""

from __future__ import annotations

import io
import json
import shutil
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch
from conftest import random_spotter

pytest.importorskip("pocketsphinx")

from speechconv.audio import load_audio_array  # noqa: E402
from speechconv.cli.main import main  # noqa: E402
from speechconv.detect import fusion  # noqa: E402
from speechconv.detect.keyphrase import KeyphraseSearch  # noqa: E402
from speechconv.detect.runner import Verify, as_model, detect_file, make_detector  # noqa: E402
from speechconv.pretrained import load_pretrained, save_pretrained  # noqa: E402

SR = 16000


def say(text: str) -> np.ndarray:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng not installed")
    wav = subprocess.run(["espeak-ng", "-v", "en-us", "--stdout", text], capture_output=True, check=True).stdout
    audio, rate = sf.read(io.BytesIO(wav), dtype="float32")
    from speechconv.audio.io import resample_all

    return resample_all(audio, rate, SR) if rate != SR else audio


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A random-weight 'computer' model (threshold at the median score) and a sentence with the word."""
    root = tmp_path_factory.mktemp("verify")
    spotter = random_spotter("computer")
    rng = np.random.default_rng(0)
    audio = np.concatenate([np.zeros(SR // 2, np.float32), say("the weather is nice today, computer, turn on the "
                                                                  "lights please"), np.zeros(SR // 2, np.float32)])
    audio = (audio + rng.normal(0, 0.003, len(audio))).astype(np.float32)
    sf.write(root / "sentence.wav", audio, SR, subtype="PCM_16")
    with torch.no_grad():
        scores = spotter(torch.from_numpy(audio)[None])[0, 1].numpy()
    spotter.detector["threshold"] = round(float(np.median(scores)), 4)
    save_pretrained(spotter, root / "model")
    return root, load_pretrained(str(root / "model"))


def test_verified_events_are_the_detector_on_the_fused_scores(setup):
    root, model = setup
    path = str(root / "sentence.wav")
    # gate 0: the search runs on all the audio, as one span (the file is shorter than a span)
    result = detect_file(model, path, verify=Verify("computer", 0.1, gate=0.0), keep_curve=True)
    assert result.ok, result.error
    # the same by hand: raw scores, pocketsphinx hits on the same samples, fusion, the detector
    audio, _ = load_audio_array(path, SR)
    detector = make_detector(as_model(model))
    stream = as_model(model).open_stream()
    parts = [stream.feed(audio), stream.finish()]
    times = np.concatenate([p[0] for p in parts])
    scores = np.concatenate([p[1] for p in parts]).astype(np.float64)
    hits = KeyphraseSearch("computer").search(audio)
    assert len(hits.times) > 0
    fused = fusion.fuse(scores, fusion.keyphrase_evidence(times, hits.starts, hits.times, hits.scores), 0.1)
    expected = detector.detect(times, fused)
    assert [(e.peak, round(e.score, 6)) for e in result.events] == [(e.peak, round(e.score, 6)) for e in expected]
    np.testing.assert_allclose(result.curve.scores, detector.smooth(fused))
    # far from every hit the evidence is the floor, which lowers the score
    evidence = fusion.keyphrase_evidence(times, hits.starts, hits.times, hits.scores)
    far = evidence == fusion.DEFAULT_FLOOR
    assert far.any() and np.all(fused[far] < scores[far])


def test_weight_zero_gives_the_plain_detections(setup):
    root, model = setup
    plain = detect_file(model, str(root / "sentence.wav"))
    verified = detect_file(model, str(root / "sentence.wav"), verify=Verify("computer", 0.0))
    assert plain.events
    assert [e.peak for e in verified.events] == [e.peak for e in plain.events]
    np.testing.assert_allclose([e.score for e in verified.events], [e.score for e in plain.events], atol=1e-6)


def test_cli_verify_matches_the_library_and_refuses_unknown_words(setup, capsys, monkeypatch):
    root, model = setup
    monkeypatch.chdir(root)
    path = str(root / "sentence.wav")
    assert main(["detect", path, "--model", str(root / "model"), "--verify", "--format", "jsonl", "-q"]) == 0
    record = json.loads(capsys.readouterr().out)
    expected = detect_file(model, path, verify=Verify("computer")).events  # the model's keyword, default weight
    assert [e["peak"] for e in record["events"]] == [round(e.peak, 3) for e in expected]

    out = root / "out.csv"
    assert main(["detect", path, "--model", str(root / "model"), "--verify", "--keyphrase", "hey zorblax",
                 "--output", str(out)]) != 0
    captured = capsys.readouterr()
    assert captured.out == "" and not out.exists()
    assert "zorblax" in captured.err and len(captured.err.strip().splitlines()) == 1

    assert main(["detect", path, "--model", str(root / "model"), "--verify-weight", "0.1"]) != 0
    assert "--verify-weight needs --verify" in capsys.readouterr().err


def test_listening_with_verify_gives_the_events_of_a_file(setup):
    """Live blocks of 0.1 s through listen_stream with a GatedVerifier: the events detect --verify finds."""
    from speechconv.cli.listen import listen_stream
    from speechconv.detect.verify import GatedVerifier

    root, model = setup
    path = str(root / "sentence.wav")
    gate = float(np.quantile(_raw_scores(model, path), 0.7))  # a gate most frames stay below
    verify = Verify("computer", gate=gate)
    curve = detect_file(model, path, verify=verify, keep_curve=True).curve
    threshold = {"threshold": 0.9 * float(curve.scores.max())}
    offline = detect_file(model, path, threshold, verify=verify).events
    audio, _ = load_audio_array(path, SR)
    verifier = GatedVerifier(KeyphraseSearch("computer"), SR, gate=gate)
    live = []
    listen_stream(model, [audio[i : i + SR // 10] for i in range(0, len(audio), SR // 10)],
                  make_detector(as_model(model), threshold), live.append, verifier)
    assert offline and [(e.peak, round(e.score, 6)) for e in live] == [(e.peak, round(e.score, 6)) for e in offline]
    assert verifier.spans >= 1 and verifier.searched_seconds > 0


def _raw_scores(model, path):
    audio, _ = load_audio_array(path, SR)
    stream = as_model(model).open_stream()
    return np.concatenate([stream.feed(audio)[1], stream.finish()[1]])


def test_listen_command_with_verify(setup, monkeypatch, capsys):
    """``speechconv listen --verify`` on a fake microphone prints what ``detect --verify`` finds in the file."""
    from speechconv.cli import listen as listen_cli

    root, model = setup
    path = str(root / "sentence.wav")
    audio, _ = load_audio_array(path, SR)
    monkeypatch.setattr(listen_cli, "open_input", lambda rate, block, device: [
        audio[i : i + int(rate * block)] for i in range(0, len(audio), int(rate * block))])
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    verify = Verify("computer", gate=0.2)
    threshold = round(0.9 * float(detect_file(model, path, verify=verify, keep_curve=True).curve.scores.max()), 4)
    args = ["--model", str(root / "model"), "--verify", "--verify-gate", "0.2"]
    assert main(["listen", *args, "--threshold", str(threshold)]) == 0
    out = capsys.readouterr()
    expected = detect_file(model, path, {"threshold": threshold}, verify=verify).events
    assert expected and out.out.splitlines() == [listen_cli.format_live(e, "computer") for e in expected]
    assert "verified by pocketsphinx (gate 0.2)" in out.err

    assert main(["listen", "--model", str(root / "model"), "--verify-gate", "0.2"]) != 0
    assert "--verify-gate needs --verify" in capsys.readouterr().err
    assert main(["listen", *args[:3], "--keyphrase", "hey zorblax"]) != 0
    assert "zorblax" in capsys.readouterr().err
