"""Keyword detection: per-frame scores -> events (:class:`Detector`), over files (:func:`detect_file`,
:func:`run_detection`), output formats, plots, and Lightning prediction (:mod:`.predict`).

An event's ``peak`` is the detection time and ``score`` the smoothed posterior there; ``start`` and
``end`` bracket the spoken keyword (:func:`bracket`, calibrated per model with :func:`calibrate_bracket`).
"""

from speechconv.detect.detector import (
    DEFAULT_KEYWORD_SECONDS,
    DEFAULT_PEAK_DELAY_SECONDS,
    Detector,
    Event,
    bracket,
    calibrate_bracket,
    match_peaks_to_words,
    moving_average,
)
from speechconv.detect.runner import FileResult, detect_chunks, detect_file, make_detector, run_detection

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
