"""Streaming keyword scoring: :class:`KeywordSpotter` (front-end + model + softmax) and
:class:`StreamingEngine` (one stream's state and frame clock).

Names are imported on first use, so that :mod:`speechconv.streaming.timing` (numpy only) serves the
onnxruntime engine without importing torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from speechconv.lazy import lazy_names

_NAMES = ("BACKGROUND_LABELS", "FRAME_COUNTER", "KeywordSpotter", "StreamingEngine", "default_keyword")
__all__ = ["BACKGROUND_LABELS", "FRAME_COUNTER", "KeywordSpotter", "StreamingEngine", "default_keyword"]

if TYPE_CHECKING:
    from speechconv.streaming.engine import (
        BACKGROUND_LABELS,
        FRAME_COUNTER,
        KeywordSpotter,
        StreamingEngine,
        default_keyword,
    )


__getattr__, __dir__ = lazy_names(__name__, {name: "engine" for name in _NAMES})
