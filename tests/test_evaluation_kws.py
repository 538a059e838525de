"""Keyword-spotting evaluation: matching windows, false-alarm counting, operating points, the CLI."""

from __future__ import annotations

import csv
import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speechconv.detect.detector import Event
from speechconv.evaluation import kws
from speechconv.evaluation.kws import KeywordSpan, StreamScores
from speechconv.evaluation.streams import EvaluationError, load_stream, read_detections, read_keyword_spans

PERIOD = 0.01


def curve(duration: float, bumps: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
    """Score curve at 100 frames/s: zero except a 0.1 s plateau of height h at each (time, h)."""
    times = np.arange(int(duration / PERIOD)) * PERIOD + PERIOD
    scores = np.zeros_like(times)
    for at, height in bumps:
        scores[(times >= at) & (times < at + 0.1)] = height
    return times, scores


def test_match_window_edges_are_inclusive():
    spans = [KeywordSpan(10.0, 11.0)]
    for peak, found in [(9.9, True), (9.89, False), (11.5, True), (11.51, False), (10.5, True)]:
        hits, fa = kws.match_events(np.array([peak]), spans, early_s=0.1, late_s=0.5)
        assert bool(hits[0]) is found and fa == (0 if found else 1), peak


def test_two_detections_in_one_window_find_once_and_are_not_false_alarms():
    spans = [KeywordSpan(1.0, 2.0), KeywordSpan(5.0, 6.0)]
    hits, fa = kws.match_events(np.array([1.2, 1.8, 3.5, 8.0]), spans)
    assert hits.tolist() == [True, False] and fa == 2


def test_no_keywords_every_detection_is_a_false_alarm():
    hits, fa = kws.match_events(np.array([1.0, 2.0]), [])
    assert hits.size == 0 and fa == 2


def synthetic_streams():
    # keyword stream: 4 keywords by 2 speakers; scores 0.9, 0.7, 0.4 (speaker a) and 0.95 (b); one bump of
    # 0.8 outside any keyword. Negative stream: 2 hours, bumps 0.6 and 0.85.
    spans = [KeywordSpan(10, 11, "a"), KeywordSpan(20, 21, "a"), KeywordSpan(30, 31, "a"), KeywordSpan(40, 41, "b")]
    t, s = curve(60, [(10.3, 0.9), (20.3, 0.7), (30.3, 0.4), (40.3, 0.95), (50.0, 0.8)])
    keyword_stream = StreamScores("kw", 60.0, spans, times=t, scores=s)
    t2, s2 = curve(7200, [(100.0, 0.6), (3000.0, 0.85)])
    negative_stream = StreamScores("neg", 7200.0, [], times=t2, scores=s2)
    return keyword_stream, negative_stream


@pytest.mark.parametrize("threshold, found, fa_neg, fa_kw", [
    (0.3, 4, 2, 1), (0.5, 3, 2, 1), (0.65, 3, 1, 1), (0.75, 2, 1, 1), (0.82, 2, 1, 0), (0.9, 2, 0, 0),
    (0.92, 1, 0, 0), (0.99, 0, 0, 0)])
def test_operating_point_counts_against_hand_counts(threshold, found, fa_neg, fa_kw):
    keyword_stream, negative_stream = synthetic_streams()
    p = kws.operating_point([keyword_stream], [negative_stream], 1, threshold)
    assert (p.found, p.keywords, p.false_alarms) == (found, 4, fa_neg)
    assert p.frr == pytest.approx(1 - found / 4)
    assert p.hours == pytest.approx(2.0) and p.fa_per_hour == pytest.approx(fa_neg / 2)
    # the keyword stream as its own false-alarm stream counts the bump outside the keywords
    own = kws.operating_point([keyword_stream], [keyword_stream], 1, threshold)
    assert own.false_alarms == fa_kw and own.fa_per_hour == pytest.approx(fa_kw / (60 / 3600))


def test_recall_by_group():
    keyword_stream, negative_stream = synthetic_streams()
    p = kws.operating_point([keyword_stream], [negative_stream], 1, 0.8)
    assert p.recall_by_group == {"a": [1, 3], "b": [1, 1]}
    table = kws.group_table(p)
    assert "| a | 1/3 | 33.3% |" in table and "| b | 1/1 | 100.0% |" in table


def test_smoothing_lowers_short_peaks():
    keyword_stream, negative_stream = synthetic_streams()
    # 10-frame plateaus survive a 5-frame mean at full height; nothing changes at these thresholds
    assert kws.operating_point([keyword_stream], [negative_stream], 5, 0.9).found == 2
    t, s = curve(60, [(10.3, 0.9)])
    s[(t >= 10.3) & (t < 10.32)] = 0.9  # a 2-frame spike: the mean over 5 frames is lower
    s[(t >= 10.32) & (t < 10.4)] = 0.0
    spike = StreamScores("spike", 60.0, [KeywordSpan(10, 11)], times=t, scores=s)
    assert kws.operating_point([spike], [spike], 1, 0.8).found == 1
    assert kws.operating_point([spike], [spike], 5, 0.8).found == 0


def test_choose_and_frr_at():
    keyword_stream, negative_stream = synthetic_streams()
    points = kws.sweep([keyword_stream], [negative_stream], smoothing=(1,), thresholds=np.array([0.3, 0.65, 0.9]))
    chosen = kws.choose(points, 0.5)  # 0.65: 3 found at 0.5 FA/h; 0.3: 1 FA/h
    assert chosen.threshold == 0.65 and chosen.found == 3
    assert kws.choose(points, 1.0).threshold == 0.3
    assert kws.frr_at(points, 0.0).threshold == 0.9
    assert kws.frr_at(points, -1.0) is None
    assert kws.choose(points, -1.0).threshold == 0.9  # nothing meets it: fewest false alarms
    # ties in FRR and FA go to the higher threshold
    tied = [kws.OperatingPoint(1, t, 0.5, 0.0, 1, 2, 0, 1.0) for t in (0.6, 0.7)]
    assert kws.choose(tied, 1.0).threshold == 0.7


def test_det_curve_is_the_lower_envelope():
    keyword_stream, negative_stream = synthetic_streams()
    points = kws.sweep([keyword_stream], [negative_stream], smoothing=(1, 3))
    fa, frr = kws.det_curve(points)
    assert np.all(np.diff(fa) > 0) and np.all(np.diff(frr) <= 0)
    for f, r in zip(fa, frr):
        assert r == min(p.frr for p in points if p.fa_per_hour <= f)


def test_ensemble_is_the_mean_curve():
    spans = [KeywordSpan(10, 11)]
    t, a = curve(30, [(10.3, 0.9), (20.0, 0.8)])  # detector A: the keyword and a false alarm at 20 s
    _, b = curve(30, [(10.3, 0.7), (25.0, 0.8)])  # detector B: the keyword and another false alarm
    first, second = (StreamScores("s", 30.0, spans, times=t, scores=x) for x in (a, b))
    both = kws.mean_curve([first, second])
    np.testing.assert_allclose(both.scores, (a + b) / 2)
    assert both.keywords == spans and both.duration_s == 30.0
    # each alone at 0.7 has one false alarm; their mean keeps the keyword (0.8) and halves the false alarms (0.4)
    for single in (first, second):
        assert kws.operating_point([single], [single], 1, 0.7).false_alarms == 1
    point = kws.operating_point([both], [both], 1, 0.7)
    assert point.found == 1 and point.false_alarms == 0
    with pytest.raises(ValueError, match="different frame times"):
        kws.mean_curve([first, StreamScores("s", 30.0, spans, times=t[:-1], scores=a[:-1])])


def test_given_events_are_filtered_by_threshold():
    stream = StreamScores("d", 3600.0, [KeywordSpan(1, 2, "x")],
                          events=[Event(1.0, 1.2, 1.1, 0.6), Event(9.0, 9.1, 9.05, 0.9)])
    p = kws.operating_point([stream], [stream], 1, 0.7)
    assert (p.found, p.false_alarms) == (0, 1)
    p = kws.operating_point([stream], [stream], 1, 0.5)
    assert (p.found, p.false_alarms) == (1, 1)


def write_truth(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=["start", "end", "label", "speaker"])
        writer.writeheader()
        writer.writerows(rows)


def test_read_spans_groups_and_errors(tmp_path):
    truth = tmp_path / "s.csv"
    write_truth(truth, [{"start": 1, "end": 2, "label": "hello", "speaker": "ann"},
                        {"start": 3, "end": 4, "label": "speech", "speaker": "bob"}])
    assert read_keyword_spans(truth, "hello") == [KeywordSpan(1.0, 2.0, "ann")]
    with pytest.raises(EvaluationError, match="not found"):
        read_keyword_spans(tmp_path / "missing.csv", "hello")
    bad = tmp_path / "bad.csv"
    bad.write_text("start,end,label\nx,2,hello\n")
    with pytest.raises(EvaluationError, match="bad.csv"):
        read_keyword_spans(bad, "hello")


def test_read_detections_csv_and_jsonl(tmp_path):
    (tmp_path / "d.csv").write_text("file,start,end,peak,score\na.wav,1.0,1.2,1.1,0.9\n")
    (tmp_path / "d.jsonl").write_text(json.dumps({"file": "a.wav", "start": 1.0, "end": 1.2, "peak": 1.1,
                                                  "score": 0.9}) + "\n")
    (tmp_path / "files.jsonl").write_text(
        json.dumps({"file": "a.wav", "events": [{"start": 1.0, "end": 1.2, "peak": 1.1, "score": 0.9}]}) + "\n"
        + json.dumps({"file": "quiet.wav", "events": []}) + "\n")
    for name in ("d.csv", "d.jsonl"):
        assert read_detections(tmp_path / name) == {"a.wav": [Event(1.0, 1.2, 1.1, 0.9)]}
    # detect's JSONL: one record per file; a file with no detection is known to be scanned
    assert read_detections(tmp_path / "files.jsonl") == {"a.wav": [Event(1.0, 1.2, 1.1, 0.9)], "quiet.wav": []}
    (tmp_path / "failed.jsonl").write_text(json.dumps({"file": "b.wav", "events": [], "error": "truncated"}) + "\n")
    with pytest.raises(EvaluationError, match="b.wav was not scanned"):
        read_detections(tmp_path / "failed.jsonl")
    (tmp_path / "x.csv").write_text("a,b\n1,2\n")
    with pytest.raises(EvaluationError, match="x.csv"):
        read_detections(tmp_path / "x.csv")


EXAMPLE = Path(__file__).resolve().parent.parent / "speechconv" / "pretrained" / "examples" / "hello_example.wav"


def run_cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "speechconv.cli.main", "evaluate", *args],
                          capture_output=True, text=True, timeout=300)


def test_cli_with_the_bundled_model_on_the_example(tmp_path):
    """The bundled model finds the example's 4 hellos (its test says so); evaluate must agree."""
    out_json, out_png = tmp_path / "r.json", tmp_path / "det.png"
    proc = run_cli(str(EXAMPLE), "--model", "hello", "--json", str(out_json), "--det", str(out_png),
                   "--cache", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(out_json.read_text())
    point = result["operating_point"]
    assert (point["found"], point["keywords"], point["false_alarms"]) == (4, 4, 0)
    assert "| model's operating point | 0.00% | 4/4 |" in proc.stdout
    assert out_png.stat().st_size > 10_000 and out_png.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "cache" / "hello_example.npz").is_file()
    assert "highest-scoring false alarms" in proc.stdout
    assert all(a["stream"] == "hello_example" and a["score"] >= 0.05 for a in result["top_false_alarms"])
    # the same numbers from the detections `speechconv detect` writes
    detections = tmp_path / "d.csv"
    detect = subprocess.run([sys.executable, "-m", "speechconv.cli.main", "detect", str(EXAMPLE),
                             "--output", str(detections)], capture_output=True, text=True, timeout=300)
    assert detect.returncode == 0, detect.stderr
    proc = run_cli(str(EXAMPLE), "--detections", str(detections), "--keyword", "hello", "--json", str(out_json))
    assert proc.returncode == 0, proc.stderr
    point = json.loads(out_json.read_text())["operating_point"]
    assert (point["found"], point["false_alarms"]) == (4, 0)


def test_cli_errors_are_one_line(tmp_path):
    proc = run_cli(str(EXAMPLE), "--detections", str(tmp_path / "none.csv"), "--keyword", "hello")
    assert proc.returncode == 1 and proc.stderr.strip().count("\n") == 0 and "none.csv" in proc.stderr
    proc = run_cli(str(EXAMPLE), "--detections", str(tmp_path / "none.csv"))
    assert proc.returncode == 1 and "--keyword" in proc.stderr
    wav = tmp_path / "lonely.wav"
    wav.write_bytes(EXAMPLE.read_bytes())
    proc = run_cli(str(wav), "--model", "hello")
    assert proc.returncode == 1 and "lonely.csv" in proc.stderr and proc.stderr.count("\n") == 1


def test_load_stream_keyword_free_needs_no_truth(tmp_path):
    wav = tmp_path / "neg.wav"
    wav.write_bytes(EXAMPLE.read_bytes())
    stream = load_stream(wav, "hello", events={}, keyword_free=True)
    assert stream.keywords == [] and stream.duration_s == pytest.approx(17.0, abs=5)


def test_top_false_alarms_ranks_and_names_what_was_said(tmp_path):
    keyword_stream, negative_stream = synthetic_streams()
    truth = tmp_path / "neg.csv"
    with open(truth, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["start", "end", "label", "speaker", "source", "text"])
        writer.writerow([2990.0, 3005.0, "0", "1737", "a.flac", "knit two together"])
    negative_stream.truth_csv = str(truth)
    alarms = kws.top_false_alarms([keyword_stream, negative_stream], n=10, floor=0.5)
    # bumps outside keywords: 0.85 (negatives, inside the labelled row), 0.8 (kw stream), 0.6 (negatives)
    assert [(a.stream, round(a.score, 2)) for a in alarms] == [("neg", 0.85), ("kw", 0.8), ("neg", 0.6)]
    assert alarms[0].truth["speaker"] == "1737" and alarms[0].truth["text"] == "knit two together"
    assert alarms[1].truth == {} and alarms[2].truth == {}  # no truth file / no row at that time
    assert [a.score for a in kws.top_false_alarms([keyword_stream, negative_stream], n=1, floor=0.5)] == \
        [alarms[0].score]
    table = kws.false_alarm_table(alarms)
    assert "| 0.8500 | neg | 3000.00 | 0 | 1737 | knit two together |" in table
    assert table.count("\n") == 2 + 3


def test_cli_verify_evaluates_the_fused_curves(tmp_path):
    """evaluate --verify: the model's curve fused with the gated search of the same audio, as detect --verify."""
    pytest.importorskip("pocketsphinx")
    from speechconv.detect.keyphrase import KeyphraseSearch
    from speechconv.detect.verify import verify_curve
    from speechconv.evaluation.streams import load_stream
    from speechconv.pretrained import load_pretrained

    out_json = tmp_path / "r.json"
    proc = run_cli(str(EXAMPLE), "--model", "hello_small", "--verify", "--verify-gate", "0.1", "--json", str(out_json),
                   "--cache", str(tmp_path / "cache"))
    assert proc.returncode == 0, proc.stderr
    assert "pocketsphinx searched" in proc.stderr and "(its threshold on the fused scores)" in proc.stdout
    result = json.loads(out_json.read_text())
    assert result["verify"] == {"keyphrase": "hello", "weight": 0.075, "gate": 0.1}
    spotter = load_pretrained("hello_small")
    stream = load_stream(EXAMPLE, "hello", spotter=spotter, cache_dir=tmp_path / "cache")
    fused, _ = verify_curve(EXAMPLE, stream.times, stream.scores, KeyphraseSearch("hello"), gate=0.1)
    detector, fused_stream = spotter.detector, dataclasses.replace(stream, scores=fused)
    options = {k: detector[k] for k in ("merge_seconds", "refractory_seconds")}
    point = kws.operating_point([fused_stream], [fused_stream], detector.get("smoothing_frames", 1),
                                detector["threshold"], options)
    assert result["operating_point"] == point.as_dict()

    proc = run_cli(str(EXAMPLE), "--detections", str(tmp_path / "d.csv"), "--keyword", "hello", "--verify")
    assert proc.returncode == 1 and "--verify needs --model" in proc.stderr
