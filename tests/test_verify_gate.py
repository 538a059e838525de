"""Two-stage verification (speechconv.detect.verify.GatedVerifier): where the search runs, what it fuses,
and that the result does not depend on how the stream is cut. A stand-in search reports fixed hits, so
these need neither pocketsphinx nor audio."""

from __future__ import annotations

import numpy as np
import pytest

from speechconv.detect import fusion
from speechconv.detect.verify import GatedVerifier
from speechconv.errors import ConfigError

SR = 16000
PERIOD = 0.04


class StandInSearch:
    """Reports each hit that lies wholly inside the searched audio; logs what was searched (in seconds)."""

    def __init__(self, hits):
        self.hit_list = hits
        self.searched: list[tuple[float, float]] = []

    def open(self):
        return self

    def hits(self, first_sample, audio):
        a, b = first_sample / SR, (first_sample + len(audio)) / SR
        self.searched.append((a, b))
        return [h for h in self.hit_list if h[0] >= a and h[1] <= b]


def curve(seconds=120.0, peaks=(10.0, 10.5, 40.0, 80.0), low=0.02, seed=0):
    times = np.arange(1, int(round(seconds / PERIOD)) + 1) * PERIOD
    scores = np.random.default_rng(seed).uniform(0, low, len(times))
    for peak in peaks:
        i = int(round(peak / PERIOD))
        scores[i - 3 : i + 3] = 0.7
    return times, scores


HITS = [(9.3, 9.9, -20.0), (39.5, 40.0, 5.0), (60.0, 60.5, 10.0)]


def run(times, scores, chunk_seconds, hits=HITS, **options):
    """Feed the stream in chunks of ``chunk_seconds`` of audio, with the frames heard by each chunk's end."""
    search = StandInSearch(hits)
    verifier = GatedVerifier(search, SR, **options)
    audio = np.zeros(int(round(times[-1] * SR)), np.float32)
    step = int(round(chunk_seconds * SR))
    out, first = [], 0
    for start in range(0, len(audio), step):
        last = int(np.searchsorted(times, (start + step) / SR + 1e-9, side="right"))
        out.append(verifier.feed(audio[start : start + step], times[first:last], scores[first:last]))
        first = last
    out.append(verifier.finish(times[first:], scores[first:]))
    return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out]), search, verifier


def full_fusion(times, scores, hits=HITS, weight=fusion.DEFAULT_WEIGHT):
    starts, ends, values = (np.array([h[i] for h in hits]) for i in range(3))
    return fusion.fuse(scores, fusion.keyphrase_evidence(times, starts, ends, values), weight)


def test_searches_only_around_gate_crossings():
    times, scores = curve()
    out_t, fused, search, verifier = run(times, scores, 0.1)
    np.testing.assert_array_equal(out_t, times)
    # peaks at 10 and 10.5 s chain into one span (0.5 s apart, no more than the pad); each search runs from
    # the lead before the span (first crossing - pad) to the last crossing + pad
    first_cross = [times[int(round(p / PERIOD)) - 3] for p in (10.0, 40.0, 80.0)]
    last_cross = [times[int(round(p / PERIOD)) + 2] for p in (10.5, 40.0, 80.0)]
    assert verifier.spans == 3 == len(search.searched)
    for (a, b), c0, c1 in zip(search.searched, first_cross, last_cross):
        assert a == pytest.approx(c0 - verifier.pad - verifier.lead, abs=1 / SR)
        assert b == pytest.approx(c1 + verifier.pad, abs=1 / SR)
    assert verifier.searched_seconds == pytest.approx(sum(b - a for a, b in search.searched))
    assert verifier.searched_seconds < 0.15 * times[-1]


def test_fused_scores_equal_the_full_search_wherever_the_gate_let_it_matter():
    times, scores = curve()
    _, fused, _, verifier = run(times, scores, 0.1)
    full = full_fusion(times, scores)
    crossings = times[scores >= verifier.gate]
    in_span = np.abs(times[:, None] - crossings[None, :]).min(axis=1) <= verifier.pad
    np.testing.assert_allclose(fused[in_span], full[in_span], rtol=0, atol=0)
    # elsewhere the floor stands in for any hit's evidence (the hit at 60 s lies far from every crossing):
    # never higher, and far below any useful threshold
    assert np.all(fused[~in_span] <= full[~in_span]) and fused[~in_span].max() < 0.01
    assert full[~in_span].max() > 0.03


def test_the_cut_of_the_stream_does_not_change_the_result():
    times, scores = curve(seed=3)
    reference = run(times, scores, 0.1)
    for chunk in (0.013, 1.0, 7.3, 500.0):
        out_t, fused, search, _ = run(times, scores, chunk)
        np.testing.assert_array_equal(out_t, reference[0])
        np.testing.assert_array_equal(fused, reference[1])
        assert search.searched == reference[2].searched


def test_gate_zero_searches_everything_and_equals_the_full_search():
    times, scores = curve(seconds=100.0)
    hits = [(9.3, 9.9, -20.0), (29.5, 30.2, 3.0), (60.0, 60.5, 10.0)]
    _, fused, search, verifier = run(times, scores, 0.5, hits=hits, gate=0.0, max_span_seconds=30.0)
    assert verifier.spans == 4  # 30 s spans back to back
    covered = sorted(search.searched)
    assert covered[0][0] == 0.0 and covered[-1][1] == pytest.approx(times[-1])
    assert all(b >= a2 for (_, b), (a2, _) in zip(covered, covered[1:]))  # no gap between spans
    full = full_fusion(times, scores, hits)
    # the hit across the 30 s boundary is found by the next span's search (its lead), so the frames after
    # the boundary get its evidence; those before it were final when the first span closed
    before_cut = (times > 29.0) & (times <= 30.0)
    np.testing.assert_allclose(fused[~before_cut], full[~before_cut])
    assert np.all(fused[before_cut] <= full[before_cut])


def test_a_gate_that_never_opens_never_searches_and_keeps_memory_bounded():
    times, scores = curve(seconds=600.0, peaks=())
    search = StandInSearch(HITS)
    verifier = GatedVerifier(search, SR)
    step = SR
    emitted = 0
    for second in range(600):
        m = (times > second) & (times <= second + 1 + 1e-9)
        t, f = verifier.feed(np.zeros(step, np.float32), times[m], scores[m])
        emitted += len(t)
        assert len(verifier._audio) <= (verifier.lead + verifier.pad + 1.1) * SR  # a few seconds, not the stream
    t, f = verifier.finish()
    assert emitted + len(t) == len(times) and search.searched == []
    np.testing.assert_allclose(f, fusion.fuse(scores[-len(t):], np.full(len(t), fusion.DEFAULT_FLOOR)))


def test_frames_wait_for_their_span_and_no_longer():
    times, scores = curve(seconds=30.0, peaks=(10.0,))
    verifier = GatedVerifier(StandInSearch(HITS), SR)
    out_times = []
    for i, t in enumerate(times):
        got, _ = verifier.feed(np.zeros(int(round(PERIOD * SR)), np.float32), times[i : i + 1], scores[i : i + 1])
        if len(got):
            out_times.append((t, got[-1]))
    # outside a span a frame is final once a pad has passed; a span's frames when it closes (last crossing + pad)
    lags = np.array([now - last for now, last in out_times])
    assert lags.max() <= verifier.pad + PERIOD + 1e-9
    assert verifier.spans == 1


@pytest.mark.parametrize("options, message", [
    ({"gate": 1.5}, "gate"), ({"gate": -0.1}, "gate"), ({"weight": -1.0}, "weight"),
    ({"pad_seconds": float("nan")}, "pad"), ({"max_span_seconds": 0.0}, "max_span"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(ConfigError, match=message):
        GatedVerifier(StandInSearch([]), SR, **options)


def test_frames_out_of_order_are_refused():
    verifier = GatedVerifier(StandInSearch([]), SR)
    verifier.feed(np.zeros(SR, np.float32), [0.5, 1.0], [0.1, 0.1])
    with pytest.raises(ConfigError, match="decrease"):
        verifier.feed(np.zeros(SR, np.float32), [0.9], [0.1])


def test_close_spans_search_little_audio_twice():
    peaks = tuple(5.0 + 1.6 * k for k in range(30))  # crossings 1.6 s apart: separate spans 0.4 s apart
    times, scores = curve(seconds=90.0, peaks=peaks)
    _, _, search, verifier = run(times, scores, 0.1)
    assert verifier.spans == len(peaks)
    for (_, previous_end), (start, _) in zip(search.searched, search.searched[1:]):
        assert start >= previous_end - verifier.overlap - 1 / SR  # at most the overlap is heard again
    assert verifier.searched_seconds < (peaks[-1] - peaks[0] + 5.0) + verifier.overlap * len(peaks)


def test_verify_curve_fuses_a_cached_curve_with_the_search_of_its_file(tmp_path):
    import soundfile as sf

    from speechconv.detect.verify import verify_curve

    times, scores = curve(seconds=100.0)
    path = tmp_path / "stream.wav"
    sf.write(path, np.zeros(int(round(times[-1] * SR)), np.float32), SR, subtype="PCM_16")
    fused, verifier = verify_curve(path, times, scores, StandInSearch(HITS), block_seconds=7.0)
    _, expected, search, _ = run(times, scores, 100.0)
    np.testing.assert_array_equal(fused, expected)
    assert verifier.spans == len(search.searched) and verifier.searched_seconds > 0
