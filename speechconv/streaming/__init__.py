"""Streaming keyword scoring: :class:`KeywordSpotter` (front-end + model + softmax) and
:class:`StreamingEngine` (one stream's state and frame clock)."""

from speechconv.streaming.engine import (
    BACKGROUND_LABELS,
    FRAME_COUNTER,
    KeywordSpotter,
    StreamingEngine,
    default_keyword,
)

__all__ = ["BACKGROUND_LABELS", "FRAME_COUNTER", "KeywordSpotter", "StreamingEngine", "default_keyword"]
