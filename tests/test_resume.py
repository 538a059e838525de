"""Interrupt a training run mid-epoch, resume from the last checkpoint, and compare with an uninterrupted run."""

from __future__ import annotations

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.callbacks import Callback, ModelCheckpoint

from speechconv.training import ImageClassifier, SyntheticImageDataModule
from speechconv.training.sampling import EpochSampler, ResumableDataLoader

MODEL = {"name": "lenet5", "num_classes": 4}


class Crash(RuntimeError):
    pass


class CrashAt(Callback):
    """Raise at the end of training batch number ``step`` (a global step), like a killed process."""

    def __init__(self, step: int):
        self.step = step

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if trainer.global_step == self.step:
            raise Crash(f"interrupted at step {self.step}")


class RecordSteps(Callback):
    def __init__(self):
        self.steps: list[tuple[int, int]] = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.steps.append((trainer.current_epoch, trainer.global_step))


def _run(tmp_path, callbacks=(), ckpt_path=None, epochs=3):
    pl.seed_everything(0, verbose=False)
    model = ImageClassifier(MODEL, optimizer={"name": "sgd", "lr": 0.05, "momentum": 0.9},
                            scheduler={"name": "step", "step_size": 1, "gamma": 0.5})
    data = SyntheticImageDataModule(num_classes=4, n_train=40, n_val=8, n_test=8, batch_size=8, augment=True)
    checkpoint = ModelCheckpoint(dirpath=tmp_path / "ckpt", save_last=True, every_n_train_steps=1, save_top_k=0)
    trainer = pl.Trainer(max_epochs=epochs, logger=False, enable_progress_bar=False, enable_model_summary=False,
                         deterministic=True, callbacks=[*callbacks, checkpoint], num_sanity_val_steps=0,
                         default_root_dir=tmp_path)
    trainer.fit(model, data, ckpt_path=ckpt_path)
    return trainer, model


@pytest.mark.parametrize("crash_step", [7, 10])  # mid-epoch (5 batches/epoch) and on an epoch's last batch
def test_resume_equals_uninterrupted(tmp_path, crash_step):
    torch.set_num_threads(1)
    reference_steps = RecordSteps()
    reference, reference_model = _run(tmp_path / "ref", [reference_steps])

    with pytest.raises(Crash):
        _run(tmp_path / "run", [CrashAt(crash_step)])
    last = tmp_path / "run" / "ckpt" / "last.ckpt"
    saved = torch.load(last, weights_only=True)
    assert saved["global_step"] == crash_step - 1  # checkpoints run after the crashing callback

    resumed_steps = RecordSteps()
    resumed, resumed_model = _run(tmp_path / "run", [resumed_steps], ckpt_path=str(last))
    # Training continues at the next step, in the same epoch, and ends where the reference ends.
    assert resumed_steps.steps[0] == reference_steps.steps[crash_step - 1]
    assert resumed_steps.steps == reference_steps.steps[crash_step - 1:]
    assert resumed.global_step == reference.global_step == 15
    for (name, a), (_, b) in zip(reference_model.state_dict().items(), resumed_model.state_dict().items()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=f"parameter {name} differs after resume")


class _Keys(torch.utils.data.Dataset):
    """Returns the sampler key itself: (epoch, index)."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, key):
        return key


def test_loader_state_skips_consumed_batches():
    data = _Keys(20)
    sampler = EpochSampler(data, shuffle=True, seed=3)
    loader = ResumableDataLoader(data, sampler, batch_size=4, collate_fn=list)
    sampler.set_epoch(2)
    full = list(loader)
    assert all(epoch == 2 for batch in full for epoch, _ in batch)
    assert sorted(index for batch in full for _, index in batch) == list(range(20))
    iterator = iter(loader)
    next(iterator), next(iterator)
    state = loader.state_dict()
    assert state == {"epoch": 2, "batches": 2}

    fresh = ResumableDataLoader(data, EpochSampler(data, shuffle=True, seed=3), batch_size=4,
                                collate_fn=list)
    fresh.load_state_dict(state)
    assert list(fresh) == full[2:]
    assert list(fresh) == full  # the skip applies once; the next pass is a whole epoch again
