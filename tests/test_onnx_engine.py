"""The onnxruntime engine agrees with the PyTorch engine: the same frames and times and scores within 1e-4
for every registered audio model, every front-end and any chunking; the same events and output through
`speechconv detect`; the bundled model's shipped model.onnx is current and small; detect, listen and
info run with PyTorch hidden."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from speechconv.detect import detect_file
from speechconv.models import list_models
from speechconv.runtime import load_model
from speechconv.runtime.onnx_engine import OnnxModel
from speechconv.runtime.torch_engine import TorchModel
from speechconv.training import AudioClassifier

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "speechconv" / "pretrained" / "examples" / "hello_example.wav"
BUNDLED = ROOT / "speechconv" / "pretrained" / "hello_small"
SR = 16000
TOL = 1e-4
AUDIO_MODELS = [entry.name for entry in list_models() if entry.task == "audio"]
HIDDEN = ("torch", "torchaudio", "torchvision", "lightning", "pytorch_lightning")

pytestmark = pytest.mark.usefixtures("one_thread")


def burst_wave(seconds: float, seed: int = 0) -> np.ndarray:
    """Noise with chirps (so the scores move) from the very first sample on."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    chirps = 0.4 * np.sin(2 * np.pi * (300 + 900 * (t % 1.0)) * t) * ((t % 1.0) < 0.35)
    return (0.01 * rng.standard_normal(len(t)) + chirps).astype(np.float32)


def exported(name: str, frontend: str, folder: Path) -> tuple[TorchModel, OnnxModel]:
    from speechconv.export import export_spotter

    torch.manual_seed(0)
    module = AudioClassifier(frontend={"name": frontend, "n_mels": 40}, model={"name": name},
                             labels=["_unknown_", "hello"], loss="max_pool")
    for m in module.modules():  # non-trivial batch-norm statistics
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
    spotter = module.spotter.eval()
    export_spotter(spotter, folder / "model.onnx", "onnx")
    return TorchModel(spotter), OnnxModel(folder / "model.onnx", threads=1)


def stream_curve(model, wave: np.ndarray, sizes: list[int]) -> tuple[np.ndarray, np.ndarray]:
    stream, start, parts = model.open_stream(), 0, []
    while start < len(wave):
        size = sizes[len(parts) % len(sizes)]
        parts.append(stream.feed(wave[start:start + size]))
        start += size
    parts.append(stream.finish())
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


CHUNKINGS = {"whole": [10**9], "777": [777], "mixed": [1, 5000, 160, 31999, 3]}


@pytest.mark.parametrize("name, frontend", [(n, "logmel") for n in AUDIO_MODELS]
                         + [("tc_resnet", "pcen"), ("tdnn", "mfcc"), ("ds_cnn", "pcen")])
def test_engines_agree_for_every_audio_model_and_chunking(name, frontend, tmp_path):
    torch_model, onnx_model = exported(name, frontend, tmp_path)
    if not torch_model.spotter.streamable:
        pytest.skip(f"{name} cannot stream")
    wave = burst_wave(3.3)
    reference_times, reference = stream_curve(torch_model, wave, [len(wave)])
    assert len(reference) == torch_model.spotter.output_frames(len(wave)) > 10
    for chunking, sizes in CHUNKINGS.items():
        times, scores = stream_curve(onnx_model, wave, sizes)
        np.testing.assert_array_equal(times, reference_times, err_msg=chunking)
        assert np.abs(scores - reference).max() <= TOL, chunking
    assert onnx_model.keyword == torch_model.keyword == "hello"
    assert onnx_model.output_period == torch_model.output_period


def test_fixed_chunk_files_give_the_same_frames(tmp_path):
    """A step exported with a fixed chunk (``dynamic=False``, or by older versions) is fed whole chunks, and
    the end of the stream is padded to a whole chunk: the same frames as the PyTorch engine."""
    from speechconv.export.onnx import export_onnx

    torch_model, _ = exported("tdnn", "logmel", tmp_path)
    chunk = torch_model.spotter.samples_per_output * 3
    export_onnx(torch_model.spotter, tmp_path / "fixed.onnx", chunk, dynamic=False)
    onnx_model = OnnxModel(tmp_path / "fixed.onnx", threads=1)
    wave = burst_wave(3.3)
    reference_times, reference = stream_curve(torch_model, wave, [len(wave)])
    stream = onnx_model.open_stream()
    parts = [stream.feed(wave[i:i + 777]) for i in range(0, len(wave), 777)] + [stream.finish()]
    np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), reference_times)
    assert np.abs(np.concatenate([p[1] for p in parts]) - reference).max() <= TOL


def test_pcen_over_a_long_call_is_exact(tmp_path):
    """PCEN's recursion runs as a log-depth scan in the graph: exact over a whole 10 s call too."""
    torch_model, onnx_model = exported("tdnn", "pcen", tmp_path)
    wave = burst_wave(25.0, seed=2)
    _, reference = stream_curve(torch_model, wave, [len(wave)])
    _, scores = stream_curve(onnx_model, wave, [len(wave)])
    assert np.abs(scores - reference).max() <= TOL


def test_bundled_model_ships_a_current_small_onnx_step():
    onnx_file = BUNDLED / "model.onnx"
    assert onnx_file.stat().st_size <= 1_000_000
    results = {engine: detect_file(load_model("hello_small", engine), str(EXAMPLE), keep_curve=True)
               for engine in ("torch", "onnx")}
    torch_result, onnx_result = results["torch"], results["onnx"]
    np.testing.assert_array_equal(onnx_result.curve.times, torch_result.curve.times)
    assert np.abs(onnx_result.curve.scores - torch_result.curve.scores).max() <= TOL
    assert [(e.start, e.end, e.peak) for e in onnx_result.events] == \
        [(e.start, e.end, e.peak) for e in torch_result.events]
    assert len(onnx_result.events) == 4
    for ours, theirs in zip(onnx_result.events, torch_result.events):
        assert ours.score == pytest.approx(theirs.score, abs=TOL)


def run_cli(*args: str, hide_torch: bool = False, cwd=None) -> subprocess.CompletedProcess:
    prelude = f"import sys\nfor name in {HIDDEN!r}:\n    sys.modules[name] = None\n" if hide_torch else "import sys\n"
    code = prelude + "from speechconv.cli.main import main\nsys.exit(main(sys.argv[1:]))\n"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


def test_detect_prints_the_same_csv_on_both_engines_and_without_torch(tmp_path):
    wav = tmp_path / "example.wav"
    wav.write_bytes(EXAMPLE.read_bytes())
    small = ("--model", "hello_small")
    outputs = {
        "torch": run_cli("detect", *small, "--engine", "torch", "--quiet", "example.wav", cwd=tmp_path),
        "onnx": run_cli("detect", *small, "--engine", "onnx", "--quiet", "example.wav", cwd=tmp_path),
        "no torch": run_cli("detect", *small, "--quiet", "example.wav", hide_torch=True, cwd=tmp_path),
    }
    for name, proc in outputs.items():
        assert proc.returncode == 0, (name, proc.stderr)
        assert proc.stderr == "", name
    assert outputs["onnx"].stdout == outputs["torch"].stdout == outputs["no torch"].stdout
    assert outputs["torch"].stdout.count("\n") == 5  # header + the 4 hellos
    # the default model (a whisper head: CTranslate2 and onnxruntime) needs no torch either
    jsonl = run_cli("detect", "--format", "jsonl", "--quiet", "example.wav", "missing.wav", hide_torch=True,
                    cwd=tmp_path)
    assert jsonl.returncode == 1 and jsonl.stderr.startswith("speechconv: missing.wav")
    assert jsonl.stdout.count('"peak"') == 4 and '"error"' in jsonl.stdout


def test_evaluate_gives_the_same_table_on_both_engines_and_without_torch(tmp_path):
    for name in ("example.wav", "example.csv"):
        source = EXAMPLE if name.endswith(".wav") else EXAMPLE.with_suffix(".csv")
        (tmp_path / name).write_bytes(source.read_bytes())
    args = ("evaluate", "example.wav", "--model", "hello_small", "--smoothing", "1,2")
    outputs = {
        "torch": run_cli(*args, "--engine", "torch", cwd=tmp_path),
        "onnx": run_cli(*args, "--engine", "onnx", cwd=tmp_path),
        "no torch": run_cli(*args, "--json", "out.json", hide_torch=True, cwd=tmp_path),
    }
    for name, proc in outputs.items():
        assert proc.returncode == 0, (name, proc.stderr)
    assert outputs["onnx"].stdout == outputs["torch"].stdout == outputs["no torch"].stdout
    assert "| model's operating point | 0.00% | 4/4 |" in outputs["torch"].stdout
    assert (tmp_path / "out.json").is_file()
    plotted = run_cli(*args, "--det", "det.png", hide_torch=True, cwd=tmp_path)
    assert plotted.returncode == 0 and (tmp_path / "det.png").stat().st_size > 0, plotted.stderr


def test_engine_choice_errors_are_one_line(tmp_path):
    proc = run_cli("detect", "--engine", "torch", "--model", "hello_small", str(EXAMPLE), hide_torch=True)
    assert proc.returncode == 1
    assert proc.stderr == ('speechconv: --engine torch needs PyTorch; pip install "speechconv[train]", '
                           "or use --engine onnx\n")
    (tmp_path / "config.yaml").write_text((BUNDLED / "config.yaml").read_text())
    proc = run_cli("detect", "--engine", "onnx", "--model", str(tmp_path), str(EXAMPLE))
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1
    assert proc.stderr.startswith(f"speechconv: {tmp_path}: no model.onnx for the onnxruntime engine")


def test_listen_runs_on_the_onnx_engine():
    import soundfile as sf

    from speechconv.cli.listen import listen_stream
    from speechconv.detect import make_detector

    wave, _ = sf.read(EXAMPLE, dtype="float32")
    blocks = [wave[i:i + 1600] for i in range(0, len(wave), 1600)]  # 0.1 s blocks, as the microphone gives
    found = {}
    for engine in ("torch", "onnx"):
        model = load_model("hello_small", engine, threads=1)
        events = []
        listen_stream(model, blocks, make_detector(model), events.append)
        found[engine] = [round(e.peak, 3) for e in events]
    assert found["onnx"] == found["torch"] and len(found["onnx"]) == 4
