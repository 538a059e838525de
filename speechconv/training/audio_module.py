"""LightningModule for keyword spotting: front-end + audio model (+ softmax) built from config.

Everything the module needs is in its constructor arguments (NeMo style), saved as hyper-parameters,
so a ``.ckpt`` alone rebuilds it: ``AudioClassifier.load_from_checkpoint(path).spotter`` is a ready
:class:`~speechconv.streaming.engine.KeywordSpotter` (checkpoint keys ``spotter.frontend.*``,
``spotter.model.*``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import lightning.pytorch as pl
import torch
import torch.nn.functional as F

from speechconv.errors import ConfigError
from speechconv.pretrained import build_spotter
from speechconv.streaming.engine import BACKGROUND_LABELS
from speechconv.training.confusion import accuracy as multiclass_accuracy
from speechconv.training.confusion import confusion_matrix, log_loss_and_accuracy, save_confusion
from speechconv.training.losses import clip_logits, frame_cross_entropy, frame_targets, max_pool_loss
from speechconv.training.optim import configure
from speechconv.training.state import RngCheckpointMixin

LOSSES = ("ce", "max_pool", "frame_ce")


class AudioClassifier(RngCheckpointMixin, pl.LightningModule):
    """Trains a :class:`KeywordSpotter` on clips (batches from the audio data modules).

    Parameters
    ----------
    frontend:
        Front-end config, e.g. ``{"name": "logmel", "n_mels": 40}``.
    model:
        Registry config, e.g. ``{"name": "tc_resnet"}``; ``in_features`` and ``num_classes`` default
        to the front-end's feature count and ``len(labels)``.
    labels:
        Class names in output order.
    loss:
        ``"ce"``: cross-entropy on clip logits pooled over time with ``clip_pool``; ``"max_pool"``:
        the wekws max-pooling loss (keyword clips on their best frame, background clips on their
        worst); ``"frame_ce"``: per-frame cross-entropy against targets built from the event span
        of each clip (frames inside the span get the clip label, the others the first background class).
    target:
        ``"clip"`` or ``"frame"`` (``"frame"`` with ``loss="ce"`` means ``"frame_ce"``).
    clip_pool:
        ``"max"``, ``"mean"`` or ``"last"``: how ``ce`` pools frame logits into clip logits.
    background:
        Labels that are not keywords (default: the labels in ``BACKGROUND_LABELS``, e.g. ``_silence_``).
    frame_tolerance:
        Seconds around the event span that still count as the event for frame targets.
    detector, keyword:
        Detector defaults and keyword label stored with the spotter (for model cards and ``detect``).
    optimizer, scheduler:
        See :mod:`speechconv.training.optim`; ``plateau`` monitors ``val/loss``.
    specaugment:
        Feature augmentation config (``{"name": "specaugment", ...}`` or a list), training only.
    ctc:
        An auxiliary phone-recognition task on the encoder (:mod:`speechconv.training.phone_task`),
        e.g. ``{"weight": 0.5, "subframes": 3}``: training batches from a data module with a
        ``transcribed_manifest`` add ``weight`` x the CTC loss of their utterances. Training only.
    domain_adversarial:
        A real-vs-synthetic discriminator on the encoder with a reversed gradient
        (:mod:`speechconv.training.domain_adversarial`), e.g. ``{"weight": 0.3}``; ``negatives_only``
        (default true) limits it to background clips, ``hidden`` sizes it. Needs a data module with
        ``domain_labels: true``. Training only.
    """

    def __init__(
        self,
        frontend: dict[str, Any],
        model: dict[str, Any],
        labels: list[str],
        loss: str = "ce",
        target: str = "clip",
        clip_pool: str = "max",
        background: list[str] | None = None,
        frame_tolerance: float = 0.05,
        label_smoothing: float = 0.0,
        detector: dict[str, Any] | None = None,
        keyword: str | None = None,
        optimizer: dict[str, Any] | None = None,
        scheduler: dict[str, Any] | None = None,
        specaugment: dict[str, Any] | list[dict[str, Any]] | None = None,
        ctc: dict[str, Any] | None = None,
        domain_adversarial: dict[str, Any] | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if target == "frame" and loss == "ce":
            loss = "frame_ce"
        if loss not in LOSSES:
            raise ConfigError(f"unknown loss {loss!r}; choose one of {list(LOSSES)}")
        if target not in ("clip", "frame"):
            raise ConfigError(f"target must be 'clip' or 'frame', got {target!r}")
        labels = [str(label) for label in labels]
        if len(set(labels)) != len(labels) or len(labels) < 2:
            raise ConfigError(f"labels must be at least two distinct names, got {labels}")
        # the same builder as a saved model's (speechconv.pretrained), so both record the config alike
        self.spotter = build_spotter({"frontend": dict(frontend), "model": dict(model), "labels": labels,
                                      "detector": detector, "keyword": keyword}, "model")
        background = [b for b in labels if b.lower() in BACKGROUND_LABELS] if background is None else background
        unknown = sorted(set(background) - set(labels))
        if unknown:
            raise ConfigError(f"background labels {unknown} are not among the labels {labels}")
        self.labels = labels
        self.background = [labels.index(b) for b in background]
        if loss == "frame_ce" and not self.background:
            raise ConfigError("frame targets need a background label (e.g. '_background_') for frames outside events")
        self.loss_name, self.clip_pool, self.label_smoothing = loss, clip_pool, label_smoothing
        self.frame_tolerance = frame_tolerance
        self.optimizer_config = optimizer or {"name": "adam", "lr": 1e-3}
        self.scheduler_config = scheduler
        self.feature_augment = None
        if specaugment:
            from speechconv.data.augment import build_feature_augment

            entries = specaugment if isinstance(specaugment, list) else [specaugment]
            self.feature_augment = build_feature_augment([{"name": "specaugment", **e} if "name" not in e else e
                                                          for e in entries])
        self._confusion: torch.Tensor | None = None
        self._encoder: list | None = None
        self.phone_head, self.ctc_weight = None, 0.0
        if ctc:
            self._build_phone_task(dict(ctc))
        self.domain_head, self.domain_weight, self.domain_negatives_only = None, 0.0, True
        if domain_adversarial:
            self._build_domain_task(dict(domain_adversarial))

    def _encoder_channels(self) -> int:
        """The model's encoder (all but its output layer) as a view for the auxiliary tasks; its channels."""
        from speechconv.training.phone_task import encoder_of

        encoder, channels = encoder_of(self.spotter.model)
        if self._encoder is None:
            self._encoder = [encoder]  # in a list: a view of the model's layers, not a second copy in the state dict
        return channels

    def _build_phone_task(self, ctc: dict[str, Any]) -> None:
        from speechconv.training.phone_task import PhoneHead

        unknown = sorted(set(ctc) - {"weight", "subframes"})
        if unknown:
            raise ConfigError(f"ctc: unknown keys {unknown}; use weight, subframes")
        self.ctc_weight = float(ctc.get("weight", 0.5))
        self.phone_head = PhoneHead(self._encoder_channels(), int(ctc.get("subframes", 3)))

    def _build_domain_task(self, options: dict[str, Any]) -> None:
        from speechconv.training.domain_adversarial import DomainHead

        unknown = sorted(set(options) - {"weight", "negatives_only", "hidden"})
        if unknown:
            raise ConfigError(f"domain_adversarial: unknown keys {unknown}; use weight, negatives_only, hidden")
        self.domain_weight = float(options.get("weight", 0.3))
        self.domain_negatives_only = bool(options.get("negatives_only", True))
        if self.domain_negatives_only and not self.background:
            raise ConfigError("domain_adversarial: negatives_only needs a background label (e.g. 'negative')")
        self.domain_head = DomainHead(self._encoder_channels(), int(options.get("hidden", 64)))

    # ------------------------------------------------------------------ computation
    @property
    def frontend(self):
        return self.spotter.frontend

    @property
    def model(self):
        return self.spotter.model

    def forward(self, wave: torch.Tensor) -> torch.Tensor:
        """Frame logits ``(B, C, frames)`` of waveforms ``(B, samples)``; training uses the front-end's fast
        float32 products (validation and inference the exact ones)."""
        augment = self.feature_augment if self.training else None
        with self.frontend.fast_numerics(self.training):
            return self.spotter.logits(wave, feature_augment=augment)  # from the initial state, as inference

    def encode_and_classify(self, wave: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(encoder features, frame logits)``: the logits of :meth:`forward`, computed through the
        encoder view so that an auxiliary task can read the features of the same pass."""
        from speechconv.training.phone_task import encode

        augment = self.feature_augment if self.training else None
        with self.frontend.fast_numerics(self.training):
            features = encode(self.spotter, self._encoder[0], wave, augment)
        return features, self.model.body[-1](features)

    def frame_times(self, frames: int, device: torch.device) -> torch.Tensor:
        """Sample index (end of the audio) that each output frame describes."""
        times = torch.as_tensor(self.spotter.output_times(0, frames), dtype=torch.float32, device=device)
        return times * self.spotter.sample_rate

    def compute_loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        labels = batch["label"]
        if self.loss_name == "max_pool":
            return max_pool_loss(logits, labels, self.background)
        if self.loss_name == "frame_ce":
            times = self.frame_times(logits.shape[-1], logits.device)
            tolerance = self.frame_tolerance * self.spotter.sample_rate
            targets = frame_targets(labels, batch["start"].float(), batch["end"].float(), times,
                                    self.background[0], tolerance)
            is_background = torch.isin(labels, torch.as_tensor(self.background, device=labels.device))
            targets[is_background] = labels[is_background, None]
            return frame_cross_entropy(logits, targets, self.label_smoothing)
        smoothing = self.label_smoothing if self.training else 0.0
        return F.cross_entropy(clip_logits(logits, self.clip_pool), labels, label_smoothing=smoothing)

    def clip_scores(self, logits: torch.Tensor) -> torch.Tensor:
        """One score per class and clip, matching the loss: pooled logits for ``ce``; for the frame
        losses, the best-frame posterior of keyword classes and worst-frame posterior of background ones."""
        if self.loss_name == "ce":
            return clip_logits(logits, self.clip_pool)
        posteriors = torch.softmax(logits, dim=1)
        scores = posteriors.amax(dim=-1)
        if self.background:
            scores[:, self.background] = posteriors[:, self.background].amin(dim=-1)
        return scores

    # ------------------------------------------------------------------ Lightning hooks
    def _step(self, batch: dict[str, torch.Tensor], split: str) -> torch.Tensor:
        adversarial = split == "train" and self.domain_head is not None
        if adversarial:
            features, logits = self.encode_and_classify(batch["wave"])
        else:
            logits = self(batch["wave"])
        loss = self.compute_loss(logits, batch)
        predictions = self.clip_scores(logits).argmax(dim=1)
        labels = batch["label"]
        accuracy = multiclass_accuracy(labels, predictions, len(self.labels))
        size = len(labels)
        log_loss_and_accuracy(self, split, loss, accuracy, size)
        if split != "train" and self._confusion is not None:
            self._confusion += confusion_matrix(labels, predictions, len(self.labels)).to(self._confusion)
        if adversarial:
            loss = loss + self._domain_loss(features, batch)
        return loss

    def _domain_loss(self, features: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from speechconv.training.domain_adversarial import domain_loss, ramp

        if "domain" not in batch:
            raise ConfigError("domain_adversarial needs clips with domains: set data.init_args.domain_labels: true")
        labels = batch["label"]
        use = torch.ones_like(labels, dtype=torch.bool)
        if self.domain_negatives_only:
            use = torch.isin(labels, torch.as_tensor(self.background, device=labels.device))
        steps = self._trainer.estimated_stepping_batches if self._trainer is not None else None
        progress = self.global_step / steps if steps and math.isfinite(steps) else 1.0  # no known end: full
        scale = self.domain_weight * ramp(progress)
        loss, accuracy, clips = domain_loss(self.domain_head, features, batch["domain"], use, scale)
        if clips:
            self.log("train/domain", loss, on_step=True, on_epoch=True, batch_size=clips)
            self.log("train/domain_acc", accuracy, on_step=False, on_epoch=True, batch_size=clips)
        return loss

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        if "keyword" not in batch:
            return self._step(batch, "train")
        loss = self._step(batch["keyword"], "train")
        if self.phone_head is None:
            raise ConfigError("the data module gives transcribed utterances but the model has no ctc task")
        phone_loss = self._phone_loss(batch["phones"])
        self.log("train/ctc", phone_loss, prog_bar=True, on_step=True, on_epoch=True,
                 batch_size=len(batch["phones"]["wave_lengths"]))
        return loss + self.ctc_weight * phone_loss

    def _phone_loss(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        from speechconv.training.phone_task import ctc_phone_loss, encode

        augment = self.feature_augment if self.training else None
        with self.frontend.fast_numerics(self.training):
            features = encode(self.spotter, self._encoder[0], batch["wave"], augment)
        ends = self.frame_times(features.shape[-1], features.device)  # causal: frame t ends at sample ends[t]
        frames = (ends[None, :] <= batch["wave_lengths"][:, None].to(ends)).sum(dim=1)
        return ctc_phone_loss(self.phone_head(features), frames, batch["targets"], batch["target_lengths"],
                              self.phone_head.subframes)

    def validation_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch, batch_idx: int) -> None:
        self._step(batch, "test")

    def predict_step(self, batch, batch_idx: int) -> torch.Tensor:
        return self.spotter(batch["wave"])

    def on_test_epoch_start(self) -> None:
        self._confusion = torch.zeros(len(self.labels), len(self.labels), dtype=torch.long, device=self.device)

    def on_test_epoch_end(self) -> None:
        confusion = self.trainer.strategy.reduce(self._confusion, reduce_op="sum")
        self._confusion = None
        if self.trainer.is_global_zero and not self.trainer.sanity_checking:
            folder = Path(self.trainer.log_dir or self.trainer.default_root_dir)
            save_confusion(confusion.cpu(), self.labels, folder / "confusion_test")

    def configure_optimizers(self):
        return configure(self, self.optimizer_config, self.scheduler_config)
