"""speechconv.detect.fusion: keyphrase evidence per frame and log-odds fusion."""

import numpy as np
import pytest

from speechconv.detect import fusion
from speechconv.errors import ConfigError


def test_evidence_is_the_best_hit_whose_window_holds_the_frame():
    times = np.round(np.arange(0.0, 3.0, 0.1), 10)
    # hit A 0.5-0.8 s scoring 10, hit B 0.9-1.0 s scoring 20: windows [0.4, 1.3] and [0.8, 1.5]
    evidence = fusion.keyphrase_evidence(times, [0.5, 0.9], [0.8, 1.0], [10.0, 20.0], before=0.1, after=0.5,
                                         floor=-50.0)
    expected = np.full(len(times), -50.0)
    expected[(times >= 0.4 - 1e-9) & (times <= 1.3 + 1e-9)] = 10.0
    expected[(times >= 0.8 - 1e-9) & (times <= 1.5 + 1e-9)] = 20.0
    np.testing.assert_array_equal(evidence, expected)


def test_evidence_never_falls_below_the_floor_and_is_floor_without_hits():
    times = np.arange(0.0, 1.0, 0.01)
    np.testing.assert_array_equal(fusion.keyphrase_evidence(times, [], [], [], floor=-7.0), np.full(100, -7.0))
    low = fusion.keyphrase_evidence(times, [0.2], [0.4], [-300.0], floor=-80.0)
    assert low.min() == -80.0


def test_fuse_adds_weighted_evidence_in_log_odds():
    p = np.array([0.1, 0.5, 0.9, 0.999])
    evidence = np.array([-20.0, 0.0, 10.0, 40.0])
    fused = fusion.fuse(p, evidence, weight=0.05)
    logit = np.log(p / (1 - p)) + 0.05 * evidence
    np.testing.assert_allclose(fused, 1 / (1 + np.exp(-logit)), rtol=1e-12)
    np.testing.assert_allclose(fusion.fuse(p, evidence, weight=0.0), p, rtol=1e-9)


def test_fuse_keeps_ranks_at_the_top_and_stays_finite():
    p = np.array([0.0, 1.0 - 1e-7, 1.0, 1.0])
    fused = fusion.fuse(p, np.array([-80.0, 60.0, 50.0, 60.0]), weight=0.1)
    assert np.all(np.isfinite(fused)) and np.all((fused > 0) & (fused < 1))
    assert fused[2] < fused[3]  # saturated posteriors still ordered by the evidence
    assert fused.dtype == np.float64


@pytest.mark.parametrize("bad", [
    dict(starts=[0.5], ends=[0.4], scores=[1.0]),
    dict(starts=[0.5, 0.6], ends=[0.7], scores=[1.0]),
])
def test_evidence_rejects_inconsistent_hits(bad):
    with pytest.raises(ConfigError):
        fusion.keyphrase_evidence(np.arange(0, 1, 0.1), **bad)


def test_fuse_rejects_mismatched_shapes_and_negative_weights():
    with pytest.raises(ConfigError):
        fusion.fuse(np.zeros(3), np.zeros(4))
    with pytest.raises(ConfigError):
        fusion.fuse(np.zeros(3), np.zeros(3), weight=-0.1)
