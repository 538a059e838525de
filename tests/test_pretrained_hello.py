"""The bundled "hello" models and their example recording.

* ``speechconv detect`` without ``--model`` (the bundled default, ``hello``: a keyword head on Whisper's
  encoder) finds every "hello" of the bundled example within 0.5 s of its ground-truth span and reports
  nothing else (``listen``'s live pieces: at least 3 of the 4 at its live threshold, all 4 at 0.9); so does
  ``hello_small`` (TC-ResNet8; how closely ``start`` and ``end`` bracket each word is tested in
  ``test_word_bracket.py``);
* each model file is at most 1 MB, weights are safetensors (no pickle), configs build the models, and the
  example is 16 kHz mono PCM_16.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
import soundfile as sf
import torch
import yaml

from speechconv.cli.main import main
from speechconv.pretrained import CONFIG_FILE, WEIGHTS_FILE, bundled_path, load_pretrained

MODEL_DIR = bundled_path("hello")
SMALL_DIR = bundled_path("hello_small")
EXAMPLES = MODEL_DIR.parent / "examples"
EXAMPLE_WAV, EXAMPLE_CSV = EXAMPLES / "hello_example.wav", EXAMPLES / "hello_example.csv"
TOLERANCE_S = 0.5

pytestmark = pytest.mark.skipif(not (MODEL_DIR / CONFIG_FILE).is_file(), reason="bundled hello model missing")


def ground_truth(label: str = "hello") -> list[tuple[float, float]]:
    with open(EXAMPLE_CSV, newline="") as handle:
        return [(float(r["start"]), float(r["end"])) for r in csv.DictReader(handle) if r["label"] == label]


def detect_csv(capsys, *args: str) -> list[dict]:
    code = main(["detect", *args])
    out = capsys.readouterr().out
    assert code == 0
    return list(csv.DictReader(io.StringIO(out)))


def check_every_hello_and_nothing_else(events: list[tuple[float, float, float]]) -> None:
    truth = ground_truth()
    assert 3 <= len(truth) <= 5
    assert len(events) == len(truth), f"detections {events} vs ground truth {truth}"
    for (true_start, true_end), (start, end, peak) in zip(truth, sorted(events)):
        # the detection's peak lies within 0.5 s of the spoken phrase
        assert true_start - TOLERANCE_S <= peak <= true_end + TOLERANCE_S, (truth, events)
        # start..end brackets the spoken word, before the detection time (tests/test_word_bracket.py)
        assert true_start - TOLERANCE_S <= start <= end <= true_end + TOLERANCE_S, (truth, events)


@pytest.mark.parametrize("model", [[], ["--model", "hello_small"]], ids=["default", "hello_small"])
def test_detect_finds_every_hello_and_nothing_else(capsys, model):
    rows = detect_csv(capsys, str(EXAMPLE_WAV), *model)
    check_every_hello_and_nothing_else([(float(r["start"]), float(r["end"]), float(r["peak"])) for r in rows])


def test_live_pieces_find_hellos_and_nothing_else():
    """``listen`` encodes short pieces (3 s before, 0.5 s after each second) instead of 30 s windows, with the
    model's own live threshold, chosen for <= 0.5 FA/h on real speech: there it finds 72% of the held-out
    synthetic hellos against 88% in files (recipes/hello), so the example's four are not all above it; a
    lower --threshold finds them all, and nothing else."""
    from speechconv.detect.runner import detect_file
    from speechconv.runtime import load_model

    model = load_model("hello", live=True, threads=2)
    assert model.mode == "live" and model.detector["threshold"] > load_model("hello", threads=1).detector["threshold"]
    truth = ground_truth()
    found = detect_file(model, str(EXAMPLE_WAV)).events
    assert len(found) >= 3 and all(any(a - TOLERANCE_S <= e.peak <= b + TOLERANCE_S for a, b in truth) for e in found)
    lowered = detect_file(model, str(EXAMPLE_WAV), {"threshold": 0.9}).events
    check_every_hello_and_nothing_else([(e.start, e.end, e.peak) for e in lowered])


def test_detect_is_chunk_size_independent(capsys):
    whole = detect_csv(capsys, str(EXAMPLE_WAV), "--chunk-seconds", "30")
    pieces = detect_csv(capsys, str(EXAMPLE_WAV), "--chunk-seconds", "0.37")
    assert whole == pieces


def test_default_bundle_is_a_whisper_head_loaded_without_pickle():
    from safetensors.torch import load_file

    from speechconv.export.whisper_head import load_whisper_head
    from speechconv.runtime import load_model

    files = {p.name: p.stat().st_size for p in MODEL_DIR.iterdir() if p.is_file()}
    assert {CONFIG_FILE, WEIGHTS_FILE, "README.md", "model.onnx"} <= set(files)
    assert files[WEIGHTS_FILE] <= 1_000_000 and files["model.onnx"] <= 1_000_000
    state = load_file(str(MODEL_DIR / WEIGHTS_FILE))
    head = load_whisper_head(MODEL_DIR)
    assert set(head.state_dict()) == set(state)
    config = yaml.safe_load((MODEL_DIR / CONFIG_FILE).read_text())
    assert config["frontend"]["name"] == "whisper" and config["keyword"] == "hello"
    assert {"threshold", "smoothing_frames", "merge_seconds", "refractory_seconds"} <= set(config["detector"])
    model = load_model("hello", threads=1)
    assert model.engine == "whisper" and model.detector == config["detector"]
    # the ONNX head is the PyTorch head
    frames = torch.randn(300, head.dim)
    onnx_scores = model.session.run(None, {"frames": frames[None].numpy()})[0][0]
    torch.testing.assert_close(torch.from_numpy(onnx_scores), head.score_frames(frames), atol=1e-5, rtol=1e-5)


def test_small_bundle_is_small_and_loads_without_pickle():
    files = [p for p in SMALL_DIR.iterdir() if p.is_file()]
    assert {CONFIG_FILE, WEIGHTS_FILE, "README.md", "model.onnx"} <= {p.name for p in files}
    # each model file within 1 MB (the weights, and the exported step for the onnxruntime engine);
    # config and card are text
    sizes = {p.name: p.stat().st_size for p in files}
    assert sizes[WEIGHTS_FILE] <= 1_000_000 and sizes["model.onnx"] <= 1_000_000
    assert sizes[CONFIG_FILE] + sizes["README.md"] <= 50_000
    # safetensors is a JSON header plus raw tensors: it cannot execute code on load
    from safetensors.torch import load_file

    state = load_file(str(SMALL_DIR / WEIGHTS_FILE))
    assert all(isinstance(v, torch.Tensor) for v in state.values())
    spotter = load_pretrained("hello_small", fold_bn=False)  # the layers as trained, as saved
    assert set(spotter.state_dict()) == set(state)
    for name, tensor in spotter.state_dict().items():
        assert torch.equal(tensor, state[name])
    # inference loading folds batch norms into the convolutions: same outputs
    wave = torch.randn(1, 16000) * 0.1
    with torch.inference_mode():
        torch.testing.assert_close(load_pretrained("hello_small")(wave), spotter(wave), atol=1e-4, rtol=1e-4)
    config = yaml.safe_load((SMALL_DIR / CONFIG_FILE).read_text())
    assert config["keyword"] == "hello" and config["labels"] == spotter.labels
    assert {"threshold", "smoothing_frames", "merge_seconds", "refractory_seconds", "keyword_seconds",
            "peak_delay_seconds"} <= set(config["detector"])


def test_small_model_is_fast_and_small():
    spotter = load_pretrained("hello_small")
    frame_rate = spotter.sample_rate / spotter.frontend.hop_length
    assert spotter.model.macs_per_second(frame_rate) <= 3_000_000
    assert spotter.model.num_parameters() <= 150_000


def test_example_recording_format():
    info = sf.info(str(EXAMPLE_WAV))
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
    assert 15.0 <= info.duration <= 25.0
    assert EXAMPLE_WAV.stat().st_size < 1_000_000
    spans = ground_truth() + ground_truth("speech")
    assert all(0 <= s < e <= info.duration for s, e in spans)


@pytest.mark.parametrize("folder", [MODEL_DIR, SMALL_DIR], ids=["hello", "hello_small"])
def test_model_card_states_data_and_limits(folder):
    card = (folder / "README.md").read_text()
    for needed in ("CC BY 4.0", "Apache", "synthetic", "false-reject", "per hour", "no real recordings of"):
        assert needed.lower() in card.lower(), needed
    assert Path(EXAMPLE_CSV).is_file()


def test_saved_model_round_trips_and_inference_folds_a_copy(tmp_path):
    """load_pretrained gives the layers its config describes (batch norms kept), so saving what it loaded
    gives a model that loads again, with the same weights; the inference engine folds a copy."""
    from speechconv.pretrained import save_pretrained
    from speechconv.runtime.torch_engine import TorchModel

    spotter = load_pretrained("hello_small")
    batch_norms = [m for m in spotter.modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert batch_norms
    again = load_pretrained(save_pretrained(spotter, tmp_path / "copy"))
    assert again.config == spotter.config
    for name, tensor in spotter.state_dict().items():
        assert torch.equal(tensor, again.state_dict()[name])
    engine = TorchModel(again)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in engine.spotter.modules())
    assert sum(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in again.modules()) == len(batch_norms)
    wave = torch.randn(16000) * 0.1
    with torch.no_grad():
        assert torch.allclose(engine.spotter(wave[None]), again(wave[None]), atol=1e-5)


def test_listen_command_runs_the_default_model_on_live_pieces(monkeypatch, capsys):
    """``speechconv listen`` (a fake microphone giving the example in 0.1 s blocks) uses the live pieces and
    the model's live threshold; with --threshold 0.9 it reports the example's four hellos as they come."""
    from speechconv.cli import listen as listen_cli
    from speechconv.pretrained import read_yaml

    wave, _ = sf.read(str(EXAMPLE_WAV), dtype="float32")

    def fake_input(sample_rate, block_seconds, device):
        size = int(sample_rate * block_seconds)
        return [wave[i:i + size] for i in range(0, len(wave), size)]

    monkeypatch.setattr(listen_cli, "open_input", fake_input)
    live_threshold = read_yaml(MODEL_DIR / CONFIG_FILE)["live_detector"]["threshold"]
    assert main(["listen"]) == 0
    assert f"listening for 'hello' (threshold {live_threshold:g})" in capsys.readouterr().err
    assert main(["listen", "--threshold", "0.9"]) == 0
    out = capsys.readouterr()
    assert len(out.out.splitlines()) == len(ground_truth()), out.out
