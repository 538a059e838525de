"""Streaming keyword scoring: :class:`KeywordSpotter` (front-end + model + softmax) and
:class:`StreamingEngine` (one stream's state and frame clock).

Names are imported on first use, so that :mod:`speechconv.streaming.timing` (numpy only) serves the
onnxruntime engine without importing torch.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        return getattr(importlib.import_module("speechconv.streaming.engine"), name)
    raise AttributeError(f"module 'speechconv.streaming' has no attribute {name!r}")
