"""The auxiliary phone-recognition (CTC) task: phones of text, the head's layout, padding invariance,
the loss the training step returns, and the paired loaders of the data module."""

from __future__ import annotations

import json
import shutil

import lightning.pytorch as pl
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from speechconv.audio import save_audio
from speechconv.data.phones import PHONES, PhoneError, normalise_phone, phone_ids, text_phones
from speechconv.training import AudioClassifier
from speechconv.training.datamodules import AudioManifestDataModule
from speechconv.training.datamodules.transcribed import DrawSampler, pad_utterances
from speechconv.training.phone_task import PhoneHead, ctc_phone_loss

SR = 16000
LABELS = ["negative", "hello"]
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng not installed")
pytestmark = pytest.mark.usefixtures("one_thread")


def test_espeak_variants_fold_into_the_inventory():
    assert normalise_phone("@2") == "@" and normalise_phone("I#") == "I" and normalise_phone("t#") == "t"
    assert normalise_phone("r-") == "r" and normalise_phone("i@3") == "i@" and normalise_phone("aI3") == "aI"
    assert normalise_phone("oU") == "oU" and normalise_phone("_:") is None and normalise_phone("?") is None
    with pytest.raises(PhoneError, match="'Q'"):
        normalise_phone("Q")
    assert phone_ids(["p", "@L"]) == [1, len(PHONES)]  # 0 stays the CTC blank


@needs_espeak
def test_text_phones_follow_espeak_word_by_word():
    phones = text_phones(["Hello, world!", "hey_alexa", "0"])
    assert phones["Hello, world!"] == ("h", "@", "l", "oU", "w", "3:", "l", "d")
    assert phones["hey_alexa"] == ("h", "eI", "a", "l", "E", "k", "s", "@")
    assert phones["0"] == ("z", "i@", "r", "oU")  # digits are read as words


def test_phone_head_emits_subframes_in_time_order():
    head = PhoneHead(channels=2, subframes=3)
    classes = head.classes
    with torch.no_grad():  # sub-frame s: class s scores feature 0, every other class -1e4
        head.proj.weight.zero_()
        head.proj.bias.fill_(-1e4)
        for s in range(3):
            head.proj.weight[s * classes + s, 0, 0] = 1.0
            head.proj.bias[s * classes + s] = 0.0
    features = torch.ones(1, 2, 4)
    log_probs = head(features)
    assert log_probs.shape == (1, classes, 12)
    # sub-frame s of every frame puts all its mass on class s
    assert log_probs.argmax(dim=1)[0].tolist() == [0, 1, 2] * 4
    np.testing.assert_allclose(log_probs.detach().exp().sum(dim=1).numpy(), 1.0, atol=1e-5)


def classifier(**ctc) -> AudioClassifier:
    torch.manual_seed(0)
    return AudioClassifier(frontend={"name": "pcen", "n_mels": 40}, model={"name": "tc_resnet", "dropout": 0.1},
                           labels=LABELS, loss="max_pool", ctc={"weight": 0.25, "subframes": 3, **ctc})


def utterance(seconds: float, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    return (0.3 * torch.sin(2 * torch.pi * (200 + 300 * seed) * t) + 0.05 * torch.randn(len(t), generator=gen))


def batch_of(items) -> dict[str, torch.Tensor]:
    return pad_utterances([{"wave": w, "targets": torch.tensor(t)} for w, t in items])


def test_padded_batch_loss_equals_each_utterance_alone():
    module = classifier().eval()  # no dropout, fixed batch-norm statistics
    items = [(utterance(1.3, 0), [3, 5, 7, 9]), (utterance(2.2, 1), [2, 2, 30, 4, 11, 12])]
    with torch.no_grad():
        together = module._phone_loss(batch_of(items))
        alone = [module._phone_loss(batch_of([item])) for item in items]
    # reduction "mean": each utterance's loss over its phone count, averaged over the batch
    torch.testing.assert_close(together, torch.stack(alone).mean(), rtol=1e-5, atol=1e-5)


def test_frame_lengths_are_the_frames_each_utterance_completes(monkeypatch):
    module = classifier().eval()
    wave = utterance(1.0, 0)
    captured = {}
    original = F.ctc_loss

    def spy(log_probs, targets, input_lengths, target_lengths, **kwargs):
        captured["lengths"] = input_lengths.tolist()
        return original(log_probs, targets, input_lengths, target_lengths, **kwargs)

    monkeypatch.setattr(F, "ctc_loss", spy)
    with torch.no_grad():
        module._phone_loss(batch_of([(wave, [1, 2]), (utterance(2.0, 1), [3])]))
    assert captured["lengths"][0] == 3 * module.spotter.output_frames(len(wave))


def test_training_step_adds_the_weighted_phone_loss():
    module = classifier().eval()
    clips = {"wave": torch.stack([utterance(1.0, 2), utterance(1.0, 3)]), "label": torch.tensor([0, 1]),
             "start": torch.tensor([0, 0]), "end": torch.tensor([SR, SR])}
    phones = batch_of([(utterance(1.5, 4), [5, 6, 7])])
    with torch.no_grad():
        total = module.training_step({"keyword": clips, "phones": phones}, 0)
        keyword = module.compute_loss(module(clips["wave"]), clips)
        phone = module._phone_loss(phones)
    torch.testing.assert_close(total, keyword + 0.25 * phone)


def test_ctc_loss_matches_torch_on_the_expanded_layout():
    log_probs = torch.randn(2, len(PHONES) + 1, 12).log_softmax(dim=1)
    targets, target_lengths = torch.tensor([1, 2, 3, 4, 5]), torch.tensor([2, 3])
    loss = ctc_phone_loss(log_probs, torch.tensor([4, 3]), targets, target_lengths, subframes=3)
    expected = F.ctc_loss(log_probs.permute(2, 0, 1), targets, torch.tensor([12, 9]), target_lengths)
    torch.testing.assert_close(loss, expected)


def test_draw_sampler_is_seeded_by_epoch():
    a, b = DrawSampler(10, 7, seed=3), DrawSampler(10, 7, seed=3)
    first = list(a)
    assert first == list(b) and len(first) == 7 and all(k[0] == 0 and 0 <= k[1] < 10 for k in first)
    a.set_epoch(1)
    assert [k[1] for k in a] != [k[1] for k in first]


@needs_espeak
def test_data_module_pairs_every_clip_batch_with_utterances(tmp_path):
    rows, transcribed = [], []
    for i in range(10):
        path = tmp_path / f"clip{i}.wav"
        save_audio(path, utterance(0.8, i).numpy(), SR)
        rows.append({"path": str(path), "label": LABELS[i % 2], "text": "hello" if i % 2 else "", "duration": 0.8})
    for i, text in enumerate(["good morning", "hello there", "seven", "too long"]):
        path = tmp_path / f"utt{i}.wav"
        save_audio(path, utterance(3.0 if i == 3 else 1.0 + 0.5 * i, i).numpy(), SR)
        transcribed.append({"path": str(path), "label": "negative", "text": text})
    for name, data in (("train", rows), ("dev", rows), ("transcribed", transcribed)):
        (tmp_path / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in data))
    data = AudioManifestDataModule(str(tmp_path / "train.jsonl"), str(tmp_path / "dev.jsonl"), labels=LABELS,
                                   clip_seconds=1.0, batch_size=4,
                                   transcribed_manifest=str(tmp_path / "transcribed.jsonl"),
                                   transcribed_batch_size=2, transcribed_max_seconds=2.5)
    data.setup("fit")
    assert [e.text for e in data.transcribed.entries] == ["good morning", "hello there", "seven"]  # 3 s is cut
    loaders = data.train_dataloader()
    assert len(loaders["keyword"]) == len(loaders["phones"]) == 3
    batch = next(iter(loaders["phones"]))
    assert batch["wave"].shape[0] == 2 and int(batch["target_lengths"].sum()) == len(batch["targets"])
    assert int(batch["wave_lengths"].max()) == batch["wave"].shape[1]

    module = classifier(weight=1.0)
    head_before = module.phone_head.proj.weight.detach().clone()
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0,
                         default_root_dir=tmp_path)
    trainer.fit(module, datamodule=data)
    assert "train/ctc" in trainer.callback_metrics
    assert not torch.equal(module.phone_head.proj.weight, head_before)  # the phone loss reached the head
    assert not any(k.startswith("phone_head") for k in module.spotter.state_dict())  # never packaged
