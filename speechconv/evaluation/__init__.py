"""Evaluation: keyword-spotting metrics on streams (:mod:`~speechconv.evaluation.kws`), their inputs
(:mod:`~speechconv.evaluation.streams`) and test-time voting over shifted clips and image crops.

Names are imported on first use, so the keyword-spotting metrics run without PyTorch (voting needs it)."""

from speechconv.lazy import lazy_names

_WHERE = {name: "voting" for name in ("Vote", "image_views", "shift_wave", "vote", "vote_audio", "vote_image")}
__all__ = sorted(_WHERE)
__getattr__, __dir__ = lazy_names(__name__, _WHERE)
