"""Exponential moving average of the weights (the benchmark's `ema` variant): the checkpoint holds the
average, computed as the formula says, and `load_pretrained` serves it."""

from __future__ import annotations

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import Callback, EMAWeightAveraging, ModelCheckpoint

from speechconv.pretrained import load_pretrained
from speechconv.training import AudioClassifier
from speechconv.training.datamodules.synthetic_audio import SyntheticAudioDataModule

LABELS = ["_background_", "tone", "chirp"]
DECAY, START = 0.9, 2
PARAM = "spotter.model.body.layers.4.conv.weight"  # the classifier


class RecordWeights(Callback):
    """The raw weights after every optimizer step (before the averaging callback, listed after it, reads them)."""

    def __init__(self):
        self.steps: list[dict[str, torch.Tensor]] = []

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.steps.append({k: v.detach().clone() for k, v in pl_module.state_dict().items()})


def test_ema_checkpoint_holds_the_average_and_loads_as_the_model(tmp_path):
    torch.set_num_threads(1)
    pl.seed_everything(0, verbose=False)
    module = AudioClassifier(frontend={"name": "pcen", "n_mels": 40}, model={"name": "tc_resnet", "dropout": 0.1},
                             labels=LABELS, loss="max_pool", optimizer={"name": "adamw", "lr": 0.01})
    data = SyntheticAudioDataModule(labels=LABELS, n_train=32, n_val=8, n_test=8, batch_size=8)
    record = RecordWeights()
    ema = EMAWeightAveraging(decay=DECAY, update_starting_at_step=START)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True)
    trainer = pl.Trainer(max_epochs=2, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[record, ema, checkpoint], num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer.fit(module, data)
    assert len(record.steps) == 8  # 4 batches per epoch

    saved = torch.load(tmp_path / "ckpt" / "last.ckpt", weights_only=True)
    raw = saved["current_model_state"][PARAM]
    torch.testing.assert_close(raw, record.steps[-1][PARAM])
    # the average starts as a copy at step START, then avg <- DECAY * avg + (1 - DECAY) * weights each step
    expected = record.steps[START][PARAM]
    for step in record.steps[START + 1:]:
        expected = DECAY * expected + (1 - DECAY) * step[PARAM]
    torch.testing.assert_close(saved["state_dict"][PARAM], expected)
    assert not torch.allclose(saved["state_dict"][PARAM], raw)

    spotter = load_pretrained(tmp_path / "ckpt" / "last.ckpt", fold_bn=False)
    torch.testing.assert_close(spotter.state_dict()[PARAM.removeprefix("spotter.")], expected)
