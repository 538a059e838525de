"""The PyTorch engine: a :class:`~speechconv.streaming.KeywordSpotter` behind the interface that
detection uses (see :mod:`speechconv.runtime.onnx_engine` for the other engine)."""

from __future__ import annotations

import copy

import numpy as np
import torch

from speechconv.blocks.fuse import fold_batch_norm
from speechconv.streaming import KeywordSpotter, StreamingEngine


class TorchModel:
    """A spotter as detection uses it: keyword, sample rate, detector options, frame period, streams.

    Inference runs on a copy with batch norms folded into their convolutions (``fold=False`` keeps the
    layers as they are); the spotter given is not changed."""

    engine = "torch"

    def __init__(self, spotter: KeywordSpotter, fold: bool = True):
        spotter = copy.deepcopy(spotter).eval() if fold else spotter.eval()
        self.spotter = fold_batch_norm(spotter) if fold else spotter

    def __getattr__(self, name: str):  # keyword, labels, sample_rate, detector, output_period, keyword_index
        return getattr(self.__dict__["spotter"], name)

    def open_stream(self) -> TorchStream:
        return TorchStream(self.spotter)


class TorchStream:
    """One audio stream through a :class:`StreamingEngine`; ``--plot`` gets the model's own features."""

    def __init__(self, spotter: KeywordSpotter):
        self.spotter = spotter
        self.engine = StreamingEngine(spotter)
        self._frontend_state = None

    def feed(self, samples: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.engine.feed(torch.as_tensor(samples, dtype=torch.float32).reshape(-1))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """End of stream: every frame was given as soon as its samples arrived."""
        return np.zeros(0), np.zeros(0, dtype=np.float32)

    @property
    def feature_rate(self) -> float:
        return float(self.spotter.frontend.frame_rate)

    @torch.inference_mode()
    def plot_features(self, samples: np.ndarray) -> np.ndarray:
        chunk = torch.as_tensor(samples, dtype=torch.float32).reshape(1, -1).to(self.engine.device)
        features, self._frontend_state = self.spotter.frontend.stream(chunk, self._frontend_state)
        return features[0].cpu().numpy()
