"""Keyword detection: per-frame scores -> events (:class:`Detector`), over files (:func:`detect_file`,
:func:`run_detection`), output formats, plots, and Lightning prediction (:mod:`.predict`)."""

from speechconv.detect.detector import Detector, Event, moving_average
from speechconv.detect.runner import FileResult, detect_chunks, detect_file, make_detector, run_detection

__all__ = [
    "Detector",
    "Event",
    "FileResult",
    "detect_chunks",
    "detect_file",
    "make_detector",
    "moving_average",
    "run_detection",
]
