"""Hard-negative mining: peaks picked greedily and apart, clips cut where the detector fired."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from speechconv.audio import load_audio, save_audio
from speechconv.training.mining import mine_hard_negatives, score_peaks


def test_score_peaks_are_the_highest_and_apart():
    times = np.arange(100) * 0.1
    scores = np.zeros(100)
    scores[[10, 11, 12, 50, 80]] = [0.5, 0.9, 0.6, 0.7, 0.1]
    assert score_peaks(times, scores, min_score=0.2, refractory_s=1.0) == [11, 50]
    assert score_peaks(times, scores, min_score=0.2, refractory_s=0.05) == [10, 11, 12, 50]
    assert score_peaks(times, scores, min_score=0.95, refractory_s=1.0) == []


class FakeSpotter:
    """Stands in for a spotter: the stream scorer is replaced below by one bump at a known time per file."""

    sample_rate = 16000


def test_mined_clips_end_after_the_peak_best_first(tmp_path, monkeypatch):
    files = []
    for i, peak in enumerate((1.0, 2.5)):
        path = tmp_path / f"long{i}.wav"
        audio = np.zeros(4 * 16000, dtype=np.float32)
        audio[int(peak * 16000) - 100:int(peak * 16000)] = 0.5  # a click just before the peak time
        save_audio(path, audio, 16000)
        files.append(path)
    curves = {str(files[0]): 0.6, str(files[1]): 0.9}

    def fake_score_stream(spotter, path, cache=None):
        times = np.arange(1, 400) * 0.01
        scores = np.zeros_like(times)
        peak = 1.0 if path == files[0] else 2.5
        scores[np.argmin(abs(times - peak))] = curves[str(path)]
        return times, scores

    monkeypatch.setattr("speechconv.evaluation.streams.score_stream", fake_score_stream)
    entries = mine_hard_negatives(FakeSpotter(), files, tmp_path / "mined", top=5, window_s=1.0, after_s=0.2)
    assert [e.params["score"] for e in entries] == [0.9, 0.6]  # best first
    assert [e.params["time"] for e in entries] == pytest.approx([2.5, 1.0])
    for entry in entries:
        clip = load_audio(entry.path, 16000)[0]
        assert len(clip) == 16000 and entry.label == "negative"
        # the click sits 0.2 s (+100 samples) before the clip's end
        loud = torch.nonzero(clip.abs() > 0.1).flatten()
        assert abs((len(clip) - int(loud[-1])) / 16000 - 0.2) < 0.01
    assert len(mine_hard_negatives(FakeSpotter(), files, tmp_path / "m2", top=1)) == 1
