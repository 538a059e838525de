"""Evaluation: keyword-spotting metrics on streams (:mod:`~speechconv.evaluation.kws`), their inputs
(:mod:`~speechconv.evaluation.streams`) and test-time voting over shifted clips and image crops."""

from speechconv.evaluation.voting import Vote, image_views, shift_wave, vote, vote_audio, vote_image

__all__ = ["Vote", "image_views", "shift_wave", "vote", "vote_audio", "vote_image"]
