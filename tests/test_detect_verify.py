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
    result = detect_file(model, path, verify=Verify("computer", 0.1), keep_curve=True)
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
    assert "need --verify" in capsys.readouterr().err
