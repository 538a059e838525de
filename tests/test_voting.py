"""Test-time voting: identical views equal one prediction, majority by hand, shifts shift, crops crop."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from speechconv.errors import ConfigError
from speechconv.evaluation import image_views, shift_wave, vote, vote_audio, vote_image
from speechconv.evaluation.voting import clip_probabilities
from speechconv.frontends import build_frontend
from speechconv.models import build_model
from speechconv.streaming import KeywordSpotter


def spotter() -> KeywordSpotter:
    torch.manual_seed(0)
    net = build_model({"name": "tdnn", "num_classes": 2})
    return KeywordSpotter(build_frontend({"name": "logmel", "n_mels": net.in_features}), net,
                          ["_unknown_", "hello"]).eval()


def test_identical_views_equal_single_prediction():
    model = spotter()
    wave = 0.1 * torch.randn(16000, generator=torch.Generator().manual_seed(1))
    single = clip_probabilities(model, wave[None])[0]
    for method in ("mean", "majority"):
        result = vote_audio(model, wave, shifts_s=(0.0, 0.0, 0.0), method=method)
        torch.testing.assert_close(result.probabilities, single)
        assert result.label == int(single.argmax())


def test_majority_by_hand():
    probabilities = torch.tensor([[0.6, 0.4, 0.0], [0.55, 0.45, 0.0], [0.0, 0.1, 0.9]])
    # mean: [0.383, 0.317, 0.3] -> class 0; majority: class 0 twice
    assert vote(probabilities, "majority").label == 0
    assert vote(probabilities, "majority").votes.tolist() == [2, 0, 1]
    # two views for class 2 with low confidence, one confident view for class 0
    probabilities = torch.tensor([[0.4, 0.0, 0.6], [0.45, 0.0, 0.55], [1.0, 0.0, 0.0]])
    assert vote(probabilities, "majority").label == 2
    assert vote(probabilities, "mean").label == 0
    # a tie (one vote each) goes to the higher mean probability
    tie = torch.tensor([[0.51, 0.49], [0.2, 0.8]])
    assert vote(tie, "majority").label == 1
    with pytest.raises(ConfigError):
        vote(tie, "median")


def test_shift_wave_delays_and_advances():
    wave = torch.arange(1.0, 7.0)
    assert shift_wave(wave, 2).tolist() == [0, 0, 1, 2, 3, 4]
    assert shift_wave(wave, -2).tolist() == [3, 4, 5, 6, 0, 0]
    assert shift_wave(wave, 0).tolist() == wave.tolist()
    assert shift_wave(wave, 9).tolist() == [0] * 6


class Recorder(nn.Module):
    """Logits favouring class 1 when the clip's energy sits late; records what it was given."""

    def __init__(self):
        super().__init__()
        self.seen = None

    def forward(self, waves):
        self.seen = waves.clone()
        centre = (waves.abs() * torch.arange(waves.shape[-1])).sum(-1) / waves.abs().sum(-1).clamp_min(1e-9)
        late = centre / waves.shape[-1] - 0.5
        return torch.stack([-late, late], dim=1) * 10


def test_vote_audio_feeds_shifted_copies():
    model = Recorder()
    wave = torch.zeros(1000)
    wave[500] = 1.0
    result = vote_audio(model, wave, shifts_s=(-0.01, 0.0, 0.02), sample_rate=10000)
    seen = model.seen
    assert seen.shape == (3, 1000)
    assert [int(row.argmax()) for row in seen] == [400, 500, 700]
    assert result.view_labels.tolist() == [0, 0, 1]  # early, centre (tie -> 0), late
    assert vote_audio(model, wave, shifts_s=(-0.01, 0.0, 0.02), method="majority", sample_rate=10000).label == 0


def test_image_views_and_vote():
    image = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(2, 4, 5)
    views = image_views(image, 3, "ten")
    assert views.shape == (10, 2, 3, 3)
    torch.testing.assert_close(views[0], image[:, :3, :3])
    torch.testing.assert_close(views[3], image[:, 1:, 2:])
    torch.testing.assert_close(views[4], image[:, 0:3, 1:4])
    torch.testing.assert_close(views[5:], views[:5].flip(-1))
    assert image_views(image, None, "center").shape == (1, 2, 4, 5)

    model = nn.Sequential(nn.Flatten(), nn.Linear(18, 3))
    torch.manual_seed(0)
    same = torch.ones(2, 3, 3)
    single = torch.softmax(model(same[None]), dim=1)[0]
    result = vote_image(model, same, crops="five")  # all five crops of a constant image are equal
    torch.testing.assert_close(result.probabilities, single)
    with pytest.raises(ValueError, match="does not fit"):
        image_views(image, 6)
