"""``speechconv viz``: every view writes a real PNG; the numbers behind the views match the block math."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from speechconv.blocks.functional import ReceptiveField
from speechconv.errors import ConfigError
from speechconv.frontends import build_frontend
from speechconv.models import build_model
from speechconv.viz import (
    VizModel,
    as_map,
    collect_activations,
    first_layer_filters,
    gradient_support,
    layer_field,
    load_input,
    load_viz_model,
    maximize_activation,
    normalize_patches,
    plot_activations,
    plot_filters,
    plot_maximize,
    plot_receptive_field,
    plot_saliency,
    resolve_layer,
    saliency,
    tile,
)
from speechconv.viz.maximize import total_variation

SR, HOP, N_FFT, MELS = 8000, 80, 200, 8
FRONTEND = {"name": "logmel", "sample_rate": SR, "n_fft": N_FFT, "hop_length": HOP, "n_mels": MELS}
# kernel 3 (pad 2), then context [-2, 0, 2] = kernel 3 dilation 2 (pad 4) at stride 2, then a 1x1 output:
# field size 3 + (5 - 1) * 1 = 7, stride 2, offset -2 - 4 = -6, so output t sees frames [2t - 6, 2t].
TDNN = {"name": "tdnn", "in_features": MELS, "num_classes": 2, "contexts": [[-1, 0, 1], [-2, 0, 2]],
        "widths": [6, 5], "strides": [1, 2], "batch_norm": False}


def audio_viz(config: dict) -> VizModel:
    torch.manual_seed(0)
    model = build_model(config).eval()
    return VizModel(model, "audio", config["name"], build_frontend(dict(FRONTEND)), ["_silence_", "hello"], 1,
                    (MELS, 40))


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> str:
    """0.5 s chirp plus noise at 8 kHz."""
    path = tmp_path_factory.mktemp("audio") / "chirp.wav"
    t = np.arange(SR // 2) / SR
    rng = np.random.default_rng(0)
    wave = 0.4 * np.sin(2 * np.pi * (200 + 3000 * t) * t) + 0.01 * rng.standard_normal(t.size)
    sf.write(path, wave.astype(np.float32), SR)
    return str(path)


@pytest.fixture(scope="module")
def tdnn() -> VizModel:
    return audio_viz(TDNN)


@pytest.fixture(scope="module")
def dscnn() -> VizModel:
    return audio_viz({"name": "ds_cnn", "in_features": MELS, "num_classes": 2, "channels": 4, "blocks": 1,
                      "first_kernel": (3, 4), "first_stride": (1, 2)})


@pytest.fixture(scope="module")
def lenet() -> VizModel:
    torch.manual_seed(0)
    return VizModel(build_model("lenet5").eval(), "image", "lenet5", input_shape=(1, 32, 32))


def assert_png(path, min_bytes: int = 8000, min_variance: float = 1e-3) -> None:
    """A PNG that exists, is not tiny and is not one flat colour."""
    import matplotlib.image as mpimg

    assert path.is_file()
    assert path.stat().st_size > min_bytes
    pixels = mpimg.imread(str(path))[..., :3]
    assert pixels.var() > min_variance


# --- every view writes a PNG ------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["tdnn", "dscnn", "lenet"])
def test_every_view_writes_a_png(which, request, wav, tmp_path):
    viz = request.getfixturevalue(which)
    image = torch.rand(1, 1, 32, 32, generator=torch.Generator().manual_seed(0))
    x = load_input(viz, wav) if viz.task == "audio" else image
    views = {
        "filters": lambda out: plot_filters(viz, out),
        "receptive_field": lambda out: plot_receptive_field(viz, x, -1 if viz.task == "audio" else 1, None, out),
        "maximize": lambda out: plot_maximize(viz, 1, 0, None, None, out, steps=10),
        "activations": lambda out: plot_activations(viz, x, out),
        "saliency": lambda out: plot_saliency(viz, x, out),
    }
    for name, draw in views.items():
        out = tmp_path / which / f"{name}.png"  # the folder is created on the way
        draw(out)
        assert_png(out)


def test_cli_writes_pngs(wav, tmp_path):
    run = [sys.executable, "-m", "speechconv.cli.main", "viz"]
    out = tmp_path / "rf.png"
    done = subprocess.run(run + ["receptive-field", "--model", "tdnn", "--input", wav, "--layer", "1",
                                 "--frame", "20", "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    # Waibel TDNN: kernels 5 then 3 at dilation 2 -> field 5 + 4 = 9 frames ending at frame 20
    assert "output frame 20 sees input frames 12..20" in done.stdout
    assert_png(out)
    done = subprocess.run(run + ["saliency", "--model", "tdnn", "--input", str(tmp_path / "missing.wav"),
                                 "--out", str(tmp_path / "s.png")], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.startswith("speechconv: ") and "missing.wav" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


# --- receptive field ----------------------------------------------------------------------------------
def test_receptive_field_span_is_the_block_math(tdnn, wav):
    x = load_input(tdnn, wav)
    assert layer_field(tdnn.model, -1).time == ReceptiveField(size=7, stride=2, offset=-6)
    assert layer_field(tdnn.model, 0).time == ReceptiveField(size=3, stride=1, offset=-2)
    for t in (0, 2, 10):
        span = plot_receptive_field(tdnn, x, -1, t)
        assert span.frames == (2 * t - 6, 2 * t)
        assert span.visible_frames == (max(2 * t - 6, 0), 2 * t)
        start, end = span.seconds(HOP, N_FFT, SR)
        assert start == pytest.approx(max(2 * t - 6, 0) * HOP / SR)
        assert end == pytest.approx((2 * t * HOP + N_FFT) / SR)
    middle = plot_receptive_field(tdnn, x, -1)
    assert middle.t == tdnn.model.output_frames(x.shape[-1]) // 2
    with pytest.raises(ConfigError, match="outside layer"):
        plot_receptive_field(tdnn, x, -1, 10_000)


def test_analytic_field_equals_the_gradient_support(tdnn, dscnn):
    """Inside the input, the frames (and frequency rows) an output depends on are exactly the analytic span."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, MELS, 40, generator=g)
    for layer in (0, 1, 2):
        field = layer_field(tdnn.model, layer).time
        t = 8
        index = (0, 0, t)
        measured = gradient_support(tdnn.model, layer, x, index, channel_sum=True)
        assert measured[0] == field.span_of(t) and measured[1] == (0, MELS - 1)
    # 2-D model: layer 1 is the first conv (3 freq x 4 time, same freq padding, stride (1, 2))
    field = layer_field(dscnn.model, 1)
    assert field.rows == ReceptiveField(size=3, stride=1, offset=-1)
    assert field.time == ReceptiveField(size=4, stride=2, offset=-3)
    measured = gradient_support(dscnn.model, 1, x, (0, 0, 4, 6), channel_sum=True)
    assert measured == (field.time.span_of(6), field.rows.span_of(4))
    deeper = layer_field(dscnn.model, 2)  # + depthwise 3x3 and pointwise 1x1
    assert deeper.rows == ReceptiveField(size=5, stride=1, offset=-2)
    assert gradient_support(dscnn.model, 2, x, (0, 0, 4, 6), channel_sum=True) == (
        deeper.time.span_of(6), deeper.rows.span_of(4))
    assert layer_field(dscnn.model, -1).rows is None  # frequency pooled away


def test_layers_by_index_and_name(tdnn):
    assert resolve_layer(tdnn.model, -1)[:2] == (2, "body.2")
    assert resolve_layer(tdnn.model, "body.1")[0] == 1
    with pytest.raises(ConfigError, match="out of range"):
        resolve_layer(tdnn.model, 3)
    with pytest.raises(ConfigError, match="no layer named"):
        resolve_layer(tdnn.model, "body.9")


# --- activation maximisation --------------------------------------------------------------------------
def test_maximisation_increases_the_target_activation(tdnn, dscnn):
    for viz, layer, position in ((tdnn, 1, 5), (dscnn, 2, (3, 4))):
        x, history = maximize_activation(viz.model, layer, 1, position, (MELS, 24), steps=40, lr=0.1, seed=3)
        assert x.shape == (MELS, 24) and len(history) == 41
        assert history[-1] > history[0] + 0.2 and history[-1] == max(history)
        again, history_again = maximize_activation(viz.model, layer, 1, position, (MELS, 24), steps=40, lr=0.1,
                                                   seed=3)
        assert torch.equal(x, again) and history == history_again  # seeded
    assert not tdnn.model.training and all(p.grad is None for p in tdnn.model.parameters())


def test_maximised_input_lives_in_the_receptive_field(tdnn):
    """Outside the field only the regularisers act, so the input fades there and stays large inside."""
    result = plot_maximize(tdnn, 1, 0, 10, (MELS, 30), steps=80, lr=0.1, l2=1e-2, tv=0.0)
    first, last = result.analytic.frames
    assert (first, last) == layer_field(tdnn.model, 1).time.span_of(10) == (14, 20)
    assert result.measured[0] == (first, last)
    energy = result.input.pow(2).mean(0)
    inside = energy[first: last + 1].mean()
    outside = torch.cat([energy[:first], energy[last + 1:]]).max()
    assert inside > 20 * outside


def test_total_variation_formula():
    x = torch.tensor([[0.0, 1.0, 3.0], [2.0, 2.0, 2.0]])
    # along time: 1 + 4 + 0 + 0; along rows: 4 + 1 + 1
    assert float(total_variation(x)) == 11.0


def test_bad_maximisation_requests(tdnn):
    with pytest.raises(ConfigError, match="channel 99 out of range"):
        maximize_activation(tdnn.model, 1, 99, None, (MELS, 20), steps=1)
    with pytest.raises(ConfigError, match="position"):
        maximize_activation(tdnn.model, 1, 0, (1, 2), (MELS, 20), steps=1)


# --- saliency ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("which", ["tdnn", "dscnn"])
def test_saliency_is_zero_outside_the_receptive_field(which, request, wav):
    viz = request.getfixturevalue(which)
    x = load_input(viz, wav)
    field = layer_field(viz.model, -1).time
    n = viz.model.output_frames(x.shape[-1])
    for frame in (n // 3, n - 1):
        result = saliency(viz.model, x, 1, frame)
        first, last = field.span_of(frame)
        columns = result.gradient.abs().sum(0)
        outside = torch.cat([columns[: max(first, 0)], columns[last + 1:]])
        assert torch.all(outside == 0)  # causal: nothing after the frame, nothing before its field
        assert columns[max(first, 0): last + 1].sum() > 0
    best = saliency(viz.model, x, 1)
    assert best.frame == int(best.scores.argmax()) and best.score == pytest.approx(float(best.scores.max()))


def test_saliency_is_the_derivative_of_the_score(tdnn, wav):
    """Compare with central finite differences, in double precision."""
    model = build_model(TDNN).double().eval()
    model.load_state_dict(tdnn.model.state_dict())
    x = load_input(tdnn, wav).double()
    result = saliency(model, x, 1, 7)
    for f, k in ((0, 14), (3, 12), (7, 9)):
        eps = 1e-6
        plus, minus = x.clone(), x.clone()
        plus[0, f, k] += eps
        minus[0, f, k] -= eps
        numeric = (model(plus)[0, 1, 7] - model(minus)[0, 1, 7]) / (2 * eps)
        assert float(result.gradient[f, k]) == pytest.approx(float(numeric.detach()), rel=1e-5, abs=1e-9)
    with pytest.raises(ConfigError, match="class index 5"):
        saliency(model, x, 5)


# --- filters and feature maps -------------------------------------------------------------------------------
def test_first_layer_filters_are_the_weights(tdnn, dscnn, lenet):
    filters = first_layer_filters(tdnn)
    weight = tdnn.model.body[0].conv.weight.detach().double().numpy()  # (out, mel, time)
    np.testing.assert_array_equal(filters.patches, weight)
    assert filters.row_label == "frequency bin"
    np.testing.assert_array_equal(first_layer_filters(dscnn).patches,
                                  dscnn.model.body[1].conv.weight.detach().double().numpy()[:, 0])
    assert first_layer_filters(lenet, max_filters=4).patches.shape == (4, 5, 5)
    dilated = audio_viz({**TDNN, "contexts": [[-2, 0, 2], [0]], "widths": [3, 2], "strides": [1, 1]})
    patches = first_layer_filters(dilated).patches  # taps 2 apart: blank column between them
    assert patches.shape == (3, MELS, 5)
    assert np.isnan(patches[:, :, 1::2]).all() and not np.isnan(patches[:, :, ::2]).any()


def test_per_filter_normalisation_and_tiling():
    rng = np.random.default_rng(0)
    patches = rng.standard_normal((5, 3, 2)) * np.array([1, 10, 100, 0.1, 5])[:, None, None]
    normed = normalize_patches(patches, rgb=False)
    np.testing.assert_allclose(np.abs(normed).max(axis=(1, 2)), 1.0)
    np.testing.assert_allclose(normed * np.abs(patches).max(axis=(1, 2))[:, None, None], patches)
    rgb = normalize_patches(rng.standard_normal((2, 3, 3, 3)), rgb=True)
    assert rgb.min(axis=(1, 2, 3)).tolist() == [0, 0] and rgb.max(axis=(1, 2, 3)).tolist() == [1, 1]
    grid = tile(normed, columns=2, gap=1)
    assert grid.shape == (3 * 3 + 2, 2 * 2 + 1)
    np.testing.assert_array_equal(grid[4:7, 3:5], normed[3])  # row 1, column 1
    assert np.isnan(grid[3]).all() and np.isnan(grid[8:, 3:]).all()  # gap row, empty slot


def test_activation_maps_follow_the_units(dscnn, wav):
    x = load_input(dscnn, wav)
    outputs = collect_activations(dscnn.model, x)
    assert [name for name, _ in outputs] == [f"body.{i}" for i in range(len(outputs))]
    torch.testing.assert_close(outputs[-1][1], dscnn.model(x))
    channels, rows, frames = outputs[1][1].shape[1:]
    image = as_map(outputs[1][1][0])
    assert image.shape == (channels * rows, frames)
    np.testing.assert_array_equal(image[rows: 2 * rows], outputs[1][1][0, 1].double().numpy())  # channel-major


# --- model loading ------------------------------------------------------------------------------------
def test_model_loading(tmp_path, tdnn):
    viz = load_viz_model("tdnn")
    assert viz.task == "audio" and viz.sample_rate == 16000 and viz.frontend.n_features == 40
    assert viz.model.in_features == 40 and not viz.model.training
    assert load_viz_model("lenet5").task == "image"
    with pytest.raises(ConfigError, match="no_such_model"):
        load_viz_model("no_such_model")
    # a Lightning-style checkpoint of the audio training module
    state = {f"spotter.model.{k}": v for k, v in tdnn.model.state_dict().items()}
    state.update({f"spotter.frontend.{k}": v for k, v in tdnn.frontend.state_dict().items()})
    config = {k: v for k, v in TDNN.items() if k not in ("in_features", "num_classes")}
    hparams = {"frontend": FRONTEND, "model": config, "labels": ["_silence_", "hello"]}
    path = tmp_path / "last.ckpt"
    torch.save({"state_dict": state, "hyper_parameters": hparams}, path)
    loaded = load_viz_model(str(path))
    assert loaded.keyword_index == 1 and loaded.hop_length == HOP
    for a, b in zip(loaded.model.parameters(), tdnn.model.parameters()):
        assert torch.equal(a, b)
    (tmp_path / "junk.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="junk.ckpt: cannot read checkpoint"):
        load_viz_model(str(tmp_path / "junk.ckpt"))


def test_pretrained_directory(tmp_path, tdnn):
    from speechconv.pretrained import save_pretrained
    from speechconv.streaming.engine import KeywordSpotter

    spotter = KeywordSpotter(tdnn.frontend, tdnn.model, ["_silence_", "hello"])
    save_pretrained(spotter, tmp_path / "tiny")
    loaded = load_viz_model(str(tmp_path / "tiny"))
    assert loaded.task == "audio" and loaded.labels == ["_silence_", "hello"] and loaded.keyword_index == 1
    assert loaded.sample_rate == SR and loaded.input_shape == (MELS, 100)
    for a, b in zip(loaded.model.parameters(), tdnn.model.parameters()):
        assert torch.equal(a, b)
