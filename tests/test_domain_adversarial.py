"""Domain-adversarial training: domains from engines, the reversed gradient, the discriminator loss."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import soundfile as sf
import torch
import torch.nn.functional as F

from speechconv.errors import ConfigError
from speechconv.training import AudioClassifier
from speechconv.training.datamodules.audio import AudioManifestDataModule
from speechconv.training.domain_adversarial import (
    REAL,
    SYNTHETIC,
    UNKNOWN,
    DomainHead,
    domain_loss,
    domain_of,
    ramp,
    reverse_gradient,
)

LABELS = ["negative", "alexa"]
SR = 16000


def classifier(**options) -> AudioClassifier:
    torch.manual_seed(0)
    return AudioClassifier(frontend={"name": "pcen", "n_mels": 40}, model={"name": "tc_resnet", "dropout": 0.1},
                           labels=LABELS, loss="max_pool", domain_adversarial={"weight": 0.5, **options})


def test_domains_from_engines():
    for engine in ("espeak", "flite", "festival", "piper", "kokoro", "espeak+praat", "Kokoro"):
        assert domain_of(engine) == SYNTHETIC, engine
    for engine in ("librispeech", "fsdd", "custom-speech-commands", "precise-community"):
        assert domain_of(engine) == REAL, engine
    assert domain_of("noise") == domain_of("") == UNKNOWN


def test_reverse_gradient_is_identity_forward_and_negated_backward():
    x = torch.randn(3, 4, requires_grad=True)
    upstream = torch.randn(3, 4)
    y = reverse_gradient(x, 0.3)
    assert torch.equal(y, x)
    y.backward(upstream)
    torch.testing.assert_close(x.grad, -0.3 * upstream)


def test_ramp_follows_the_dann_schedule():
    assert ramp(0.0) == 0.0
    assert ramp(1.0) == pytest.approx(2 / (1 + math.exp(-10)) - 1)
    assert ramp(0.5) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    values = [ramp(p) for p in np.linspace(0, 1, 11)]
    assert all(b > a for a, b in zip(values, values[1:]))
    assert ramp(-1.0) == 0.0 and ramp(2.0) == ramp(1.0)


def test_domain_loss_uses_only_chosen_clips_of_known_domain():
    torch.manual_seed(0)
    head = DomainHead(8, hidden=4)
    features = torch.randn(5, 8, 6)
    domains = torch.tensor([SYNTHETIC, REAL, UNKNOWN, REAL, SYNTHETIC])
    use = torch.tensor([True, True, True, False, True])
    loss, accuracy, clips = domain_loss(head, features, domains, use, scale=1.0)
    keep = [0, 1, 4]
    logits = head(features[keep])
    expected = F.binary_cross_entropy_with_logits(logits, domains[keep].float())
    assert clips == 3
    torch.testing.assert_close(loss, expected)
    assert accuracy == ((logits > 0).float() == domains[keep].float()).float().mean()
    loss, _, clips = domain_loss(head, features, domains, torch.zeros(5, dtype=torch.bool), scale=1.0)
    assert clips == 0 and loss.item() == 0.0


def test_logits_through_the_encoder_view_equal_forward():
    module = classifier().eval()
    wave = torch.randn(2, 24000) * 0.1
    with torch.no_grad():
        features, logits = module.encode_and_classify(wave)
        torch.testing.assert_close(logits, module(wave), rtol=0, atol=0)
    assert features.shape[0] == 2 and features.shape[-1] == logits.shape[-1]


def test_encoder_gets_the_reversed_discriminator_gradient():
    """The discriminator learns to tell the domains; the encoder gets the opposite of that gradient, scaled."""
    module = classifier().eval()  # no dropout: both passes see the same network
    wave = torch.randn(4, 16000) * 0.1
    domains = torch.tensor([SYNTHETIC, REAL, SYNTHETIC, REAL])
    use = torch.ones(4, dtype=torch.bool)
    encoder_param = module.model.body[1].body[0].conv.weight
    head_param = module.domain_head.net[0].weight

    def grads(scale: float | None):
        module.zero_grad()
        features, _ = module.encode_and_classify(wave)
        if scale is None:  # the plain discriminator loss, no reversal
            logits = module.domain_head(features)
            loss = F.binary_cross_entropy_with_logits(logits, domains.float())
        else:
            loss, _, _ = domain_loss(module.domain_head, features, domains, use, scale)
        loss.backward()
        return encoder_param.grad.clone(), head_param.grad.clone()

    plain_encoder, plain_head = grads(None)
    reversed_encoder, reversed_head = grads(0.25)
    torch.testing.assert_close(reversed_head, plain_head)
    torch.testing.assert_close(reversed_encoder, -0.25 * plain_encoder)
    assert plain_encoder.abs().sum() > 0


def test_options_and_missing_domains_are_config_errors():
    with pytest.raises(ConfigError, match="unknown keys"):
        classifier(strength=1.0)
    module = classifier()
    batch = {"wave": torch.randn(2, 8000), "label": torch.tensor([0, 1])}
    features, _ = module.encode_and_classify(batch["wave"])
    with pytest.raises(ConfigError, match="domain_labels"):
        module._domain_loss(features, batch)
    # not part of the spotter: a packaged model carries no discriminator
    assert not any("domain" in key for key in module.spotter.state_dict())


def test_data_module_gives_domains_of_training_clips(tmp_path):
    rows = []
    for i, engine in enumerate(["espeak", "librispeech", "noise"]):
        path = tmp_path / f"{i}.wav"
        sf.write(path, np.zeros(SR // 2, np.float32), SR)
        rows.append({"path": str(path), "label": "negative", "engine": engine})
    manifest = tmp_path / "train.jsonl"
    manifest.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = AudioManifestDataModule(str(manifest), str(manifest), labels=LABELS, clip_seconds=0.5,
                                   domain_labels=True)
    data.setup("fit")
    train, val = data.datasets["train"], data.datasets["val"]
    assert [int(train[(0, i)]["domain"]) for i in range(3)] == [SYNTHETIC, REAL, UNKNOWN]
    assert "domain" not in val[0]  # validation clips need none
