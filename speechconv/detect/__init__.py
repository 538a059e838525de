"""Keyword detection: per-frame scores -> events (:class:`Detector`), over files (:func:`detect_file`,
:func:`run_detection`), output formats, plots, and Lightning prediction (:mod:`.predict`).

An event's ``peak`` is the detection time and ``score`` the smoothed posterior there; ``start`` and
``end`` bracket the spoken keyword (:func:`bracket`, calibrated per model with :func:`calibrate_bracket`).
A second opinion from a phonetic search: :mod:`.keyphrase` (pocketsphinx, optional) finds the keyphrase
with an acoustic model trained on real speech and :mod:`.fusion` adds its evidence to the scores.
Names are imported on first use: detection runs on either engine (:mod:`speechconv.runtime`), so
nothing here may import torch before a torch model is used.
"""

from __future__ import annotations

from speechconv.lazy import lazy_names

_WHERE = {
    "DEFAULT_KEYWORD_SECONDS": "detector",
    "DEFAULT_PEAK_DELAY_SECONDS": "detector",
    "Detector": "detector",
    "Event": "detector",
    "bracket": "detector",
    "calibrate_bracket": "detector",
    "match_peaks_to_words": "detector",
    "moving_average": "detector",
    "FileResult": "runner",
    "detect_chunks": "runner",
    "detect_file": "runner",
    "make_detector": "runner",
    "run_detection": "runner",
}
__all__ = [
    "DEFAULT_KEYWORD_SECONDS",
    "DEFAULT_PEAK_DELAY_SECONDS",
    "Detector",
    "Event",
    "FileResult",
    "bracket",
    "calibrate_bracket",
    "detect_chunks",
    "detect_file",
    "make_detector",
    "match_peaks_to_words",
    "moving_average",
    "run_detection",
]

__getattr__, __dir__ = lazy_names(__name__, _WHERE)
