"""Detector: smoothing, threshold, merging, refractory period and the word bracket on hand-made score
curves; offline and incremental runs agree; output formats; pretrained directories and checkpoints
round-trip."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speechconv.detect import Detector, Event, bracket, detect_file, moving_average
from speechconv.detect.outputs import (
    atomic_output,
    format_audacity,
    format_csv,
    format_jsonl,
    per_input_paths,
)
from speechconv.errors import ConfigError
from speechconv.frontends import build_frontend
from speechconv.models import build_model
from speechconv.pretrained import build_spotter, load_pretrained, save_pretrained
from speechconv.streaming import KeywordSpotter

PERIOD = 0.01  # seconds per frame in the hand-made curves


def curve(*segments: tuple[int, float]) -> tuple[np.ndarray, np.ndarray]:
    """Concatenate (frames, value) segments into (times, scores) with 10 ms frames."""
    scores = np.concatenate([np.full(n, v) for n, v in segments])
    return np.arange(len(scores)) * PERIOD, scores


def plain(threshold=0.5, **kw) -> Detector:
    options = {"merge_seconds": 0.0, "refractory_seconds": 0.0, **kw}
    return Detector(threshold, PERIOD, **options)


def test_moving_average_is_causal_mean_over_available_frames():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    np.testing.assert_allclose(moving_average(np.zeros(0), x, 3), [1.0, 1.5, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(moving_average(np.array([1.0, 2.0]), x[2:], 3), [2.0, 3.0, 4.0])
    np.testing.assert_array_equal(moving_average(np.zeros(0), x, 1), x)


def test_one_bump_gives_one_event_with_its_peak():
    times, scores = curve((10, 0.1), (3, 0.6), (1, 0.9), (2, 0.7), (10, 0.2))
    [event] = plain(keyword_seconds=0.05, peak_delay_seconds=0.02).detect(times, scores)
    # the run above threshold is 0.10-0.15; start/end bracket the word before the peak
    assert event == pytest.approx(Event(start=0.06, end=0.11, peak=0.13, score=0.9))
    [default] = plain().detect(times, scores)  # no calibration: 0.6 s word, peak 0.05 s after it, clipped at 0
    assert default == pytest.approx(Event(start=0.0, end=0.08, peak=0.13, score=0.9))


def test_threshold_is_inclusive_and_flat_curve_gives_nothing():
    times, scores = curve((5, 0.2), (2, 0.5), (5, 0.2))
    assert len(plain(0.5).detect(times, scores)) == 1
    assert plain(0.51).detect(times, scores) == []


def test_smoothing_suppresses_a_one_frame_spike_but_keeps_a_plateau():
    times, scores = curve((20, 0.0), (1, 1.0), (20, 0.0), (10, 1.0), (20, 0.0))
    assert len(plain(0.5).detect(times, scores)) == 2
    smoothed = plain(0.5, smoothing_frames=5).detect(times, scores)  # spike -> 0.2, plateau reaches 1.0
    assert len(smoothed) == 1
    assert smoothed[0].peak == pytest.approx(0.41 + 0.04)  # 5th plateau frame: the first with mean 1
    assert smoothed[0].score == pytest.approx(1.0)
    in_seconds = Detector(0.5, PERIOD, smoothing_seconds=0.05, merge_seconds=0, refractory_seconds=0)
    assert in_seconds.window == 5 and in_seconds.detect(times, scores) == smoothed


def test_runs_closer_than_the_merge_window_merge_keeping_the_highest_peak():
    times, scores = curve((5, 0.0), (3, 0.7), (4, 0.1), (2, 0.95), (30, 0.0), (2, 0.8), (5, 0.0))
    # gap between run ends: second run starts 0.05 s after the first ends; third 0.31 s later
    merged = plain(merge_seconds=0.06).detect(times, scores)
    assert [(e.peak, e.score) for e in merged] == [pytest.approx((0.12, 0.95)), pytest.approx((0.44, 0.8))]
    assert len(plain(merge_seconds=0.05).detect(times, scores)) == 3  # gap not below the window


def test_refractory_period_drops_events_that_start_too_soon_after_one_ends():
    times, scores = curve((5, 0.0), (3, 0.9), (20, 0.0), (3, 0.8), (60, 0.0), (3, 0.7), (5, 0.0))
    # ends at 0.07; second starts 0.28 (0.21 after); third starts 0.91 (0.84 after the first's end)
    kept = plain(refractory_seconds=0.5).detect(times, scores)
    assert [e.score for e in kept] == [0.9, 0.7]  # the dropped one does not extend the period
    assert len(plain(refractory_seconds=0.2).detect(times, scores)) == 3


def test_incremental_processing_releases_events_once_final():
    times, scores = curve((5, 0.0), (3, 0.9), (40, 0.0))
    detector = Detector(0.5, PERIOD, merge_seconds=0.1, refractory_seconds=0.0)
    assert detector.process(times[:10], scores[:10]) == []  # could still merge
    released = detector.process(times[10:20], scores[10:20])  # last time 0.19 >= end 0.07 + 0.1
    assert len(released) == 1 and detector.flush() == []


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(0, 1), min_size=0, max_size=120),
    cuts=st.lists(st.integers(0, 120), max_size=6),
    window=st.integers(1, 6),
    merge=st.sampled_from([0.0, 0.03, 0.1]),
    refractory=st.sampled_from([0.0, 0.05, 0.3]),
)
def test_incremental_equals_offline_for_any_split(values, cuts, window, merge, refractory):
    scores = np.array(values, dtype=np.float64)
    times = np.arange(len(scores)) * PERIOD
    options = dict(threshold=0.6, frame_period=PERIOD, smoothing_frames=window, merge_seconds=merge,
                   refractory_seconds=refractory)
    offline = Detector(**options).detect(times, scores)
    detector = Detector(**options)
    events = []
    bounds = [0, *sorted(c for c in cuts if c <= len(scores)), len(scores)]
    for a, b in zip(bounds, bounds[1:]):
        events += detector.process(times[a:b], scores[a:b])
    events += detector.flush()
    assert events == offline
    for event in offline:
        assert event.score >= 0.6 and 0.0 <= event.start <= event.end <= event.peak
        assert (event.start, event.end) == bracket(event.peak)


def test_detector_config_validation_and_overrides():
    with pytest.raises(ConfigError, match="threshold"):
        Detector(1.5)
    with pytest.raises(ConfigError, match="not both"):
        Detector(0.5, PERIOD, smoothing_frames=3, smoothing_seconds=0.1)
    with pytest.raises(ConfigError, match="unknown detector option"):
        Detector.from_config({"treshold": 0.3})
    detector = Detector.from_config({"threshold": 0.3, "smoothing_seconds": 0.03}, PERIOD, threshold=0.7)
    assert detector.threshold == 0.7 and detector.window == 3
    assert Detector.from_config({"threshold": 0.3}, PERIOD, threshold=None).threshold == 0.3
    calibrated = Detector.from_config({"keyword_seconds": 0.44, "peak_delay_seconds": 0.013}, PERIOD)
    assert (calibrated.keyword_seconds, calibrated.peak_delay_seconds) == (0.44, 0.013)
    assert calibrated.config["keyword_seconds"] == 0.44 and calibrated.config["peak_delay_seconds"] == 0.013
    for bad in ({"keyword_seconds": -0.1}, {"peak_delay_seconds": float("nan")}, {"keyword_seconds": "0.5"}):
        with pytest.raises(ConfigError, match="must be >= 0 seconds"):
            Detector.from_config(bad, PERIOD)


def test_output_formats():
    events = [Event(1.23456, 1.5, 1.4, 0.912345)]
    assert format_csv("a b,c.wav", events) == '"a b,c.wav",1.235,1.500,1.400,0.9123\n'
    assert json.loads(format_jsonl("x.wav", events)) == {
        "file": "x.wav", "events": [{"start": 1.235, "end": 1.5, "peak": 1.4, "score": 0.9123}]}
    # one record per file: also without detections, and with the reason for a file that failed
    assert format_jsonl("quiet.wav", []) == '{"file": "quiet.wav", "events": []}\n'
    assert json.loads(format_jsonl("bad.wav", [], "bad.wav: not an audio file")) == {
        "file": "bad.wav", "events": [], "error": "not an audio file"}
    assert json.loads(format_jsonl("cut.wav", events, "cut.wav: truncated at 2.000 s: x"))["events"][0]["peak"] == 1.4
    assert format_audacity(events, "hello") == "1.235\t1.500\thello 0.9123\n"
    assert per_input_paths("out.txt", ["a/x.wav"]) == ["out.txt"]
    assert per_input_paths("out.txt", ["a/x.wav", "b/x.flac", "-"]) == ["out_x.txt", "out_x_2.txt", "out_stdin.txt"]


def test_atomic_output_leaves_old_file_on_failure(tmp_path):
    target = tmp_path / "out.csv"
    target.write_text("old\n")
    with pytest.raises(RuntimeError):
        with atomic_output(str(target)) as f:
            f.write("partial")
            raise RuntimeError("boom")
    assert target.read_text() == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]
    with atomic_output(str(target)) as f:
        f.write("new\n")
    assert target.read_text() == "new\n"


# --- pretrained format ---------------------------------------------------------------------------
def small_spotter(seed: int = 0) -> KeywordSpotter:
    torch.manual_seed(seed)
    frontend = build_frontend({"name": "pcen", "n_mels": 40})
    model = build_model({"name": "tdnn", "num_classes": 3})
    for p in frontend.parameters():  # move the trainable PCEN parameters off their init
        p.data.add_(0.01 * torch.randn_like(p))
    return KeywordSpotter(frontend, model, ["_silence_", "_unknown_", "hello"], {"threshold": 0.6})


def test_save_and_load_pretrained_round_trip(tmp_path):
    spotter = small_spotter().eval()
    save_pretrained(spotter, tmp_path / "m", "# card\n")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["README.md", "config.yaml", "model.safetensors"]
    loaded = load_pretrained(str(tmp_path / "m"), fold_bn=False)
    assert loaded.config == spotter.config and loaded.keyword == "hello" and not loaded.training
    wave = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        assert torch.equal(loaded(wave), spotter(wave))
        # the inference load folds batch norm: the same numbers up to rounding
        folded = load_pretrained(str(tmp_path / "m"))
        assert (folded(wave) - spotter(wave)).abs().max() < 1e-5
    assert (tmp_path / "m" / "README.md").read_text() == "# card\n"


def test_load_lightning_checkpoint(tmp_path):
    spotter = small_spotter(1).eval()
    checkpoint = {
        "state_dict": {f"spotter.{k}": v for k, v in spotter.state_dict().items()},
        "hyper_parameters": {**{k: spotter.config[k] for k in ("frontend", "model", "labels", "detector")},
                             "lr": 1e-3},
    }
    torch.save(checkpoint, tmp_path / "last.ckpt")
    loaded = load_pretrained(str(tmp_path / "last.ckpt"), fold_bn=False)
    wave = torch.randn(1, 8000) * 0.1
    with torch.no_grad():
        assert torch.equal(loaded(wave), spotter(wave))
    assert loaded.detector == {"threshold": 0.6}


def test_pretrained_errors_name_the_path(tmp_path):
    with pytest.raises(ConfigError, match="no such model"):
        load_pretrained(str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="no bundled model of that name"):
        load_pretrained("no_such_bundled_model")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="config.yaml is missing"):
        load_pretrained(str(tmp_path / "empty"))
    save_pretrained(small_spotter(), tmp_path / "m")
    (tmp_path / "m" / "config.yaml").write_text("frontend: {name: logmel}\nlabels: [a, b]\n")
    with pytest.raises(ConfigError, match=r"config.yaml.*missing key.*model"):
        load_pretrained(str(tmp_path / "m"))
    (tmp_path / "m" / "config.yaml").write_text(
        "frontend: {name: logmel}\nmodel: {name: tdnn, num_classes: 2}\nlabels: [_unknown_, hello]\n")
    with pytest.raises(ConfigError, match="weights do not match"):
        load_pretrained(str(tmp_path / "m"))
    (tmp_path / "x.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(ConfigError, match="x.ckpt: cannot read checkpoint"):
        load_pretrained(str(tmp_path / "x.ckpt"))
    with pytest.raises(ConfigError, match="unknown model"):
        build_spotter({"frontend": {"name": "logmel"}, "model": {"name": "nope"}, "labels": ["a"]})


def test_detect_file_matches_offline_posteriors_and_reports_bad_files(tmp_path):
    from speechconv.audio import save_audio

    spotter = small_spotter().eval()
    wave = torch.randn(40000) * 0.1
    save_audio(str(tmp_path / "a.wav"), wave, 16000, subtype="FLOAT")
    with torch.no_grad():
        scores = spotter(wave[None])[0, spotter.keyword_index].numpy()
    threshold = float(np.median(scores))
    expected = Detector(threshold, spotter.output_period).detect(
        spotter.output_times(0, len(scores)), scores)
    result = detect_file(spotter, str(tmp_path / "a.wav"), {"threshold": threshold}, chunk_seconds=0.37)
    assert result.ok and result.duration == pytest.approx(40000 / 16000)
    assert len(result.events) == len(expected) >= 1
    for got, want in zip(result.events, expected):
        assert (got.start, got.end, got.peak) == (want.start, want.end, want.peak)
        assert got.score == pytest.approx(want.score, abs=1e-5)
    bad = detect_file(spotter, str(tmp_path / "nope.wav"))
    assert not bad.ok and bad.error == f"{tmp_path / 'nope.wav'}: no such file"
