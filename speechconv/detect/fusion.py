"""A second opinion from a phonetic keyphrase search, fused with a keyword score curve.

A detector trained on synthetic voices and a keyphrase search whose acoustic model was trained on real
speech (pocketsphinx's) miss different keywords and fire on different speech, so their evidence is added
in the log-odds domain:

    fused(t) = sigmoid(logit(p(t)) + weight * evidence(t))

``p(t)`` is the detector's keyword posterior at frame ``t``. ``evidence(t)`` is the best score of the
keyphrase hits whose match window ``[start - before, end + after]`` holds ``t``, and ``floor`` where
there is none. A hit's score is log10 of the likelihood ratio of the keyphrase against a free phone
loop, the scale of pocketsphinx's ``kws_threshold`` (a decode with threshold T reports the hits scoring
at least log10 T). The window is the one a detection peak is matched in (``kws.EARLY_S``,
``kws.LATE_S``): the search reports where the word starts and ends, and a causal detector peaks near
its end.

Pure numpy: the hits come from any keyphrase search (``recipes/wakeword_benchmark/anchors.py`` runs
pocketsphinx); this module only combines them.
"""

from __future__ import annotations

import numpy as np

from speechconv.errors import ConfigError

#: Evidence where no hit is near: below the lowest scores a permissive pocketsphinx decode reports
#: (about -63 on an hour of read speech), so "nothing found" counts against the keyword.
DEFAULT_FLOOR = -80.0
#: The weight chosen on the real-speaker wake-word benchmark (recipes/wakeword_benchmark, stage ``fusion``):
#: the best mean over every three of its four keywords; each keyword's own best lay between 0.05 and 0.15.
DEFAULT_WEIGHT = 0.075
#: Posteriors are clipped to [EPS, 1 - EPS] so a saturated detector keeps a finite log-odds.
EPS = 1e-6


def keyphrase_evidence(times, starts, ends, scores, *, before: float = 0.1, after: float = 0.5,
                       floor: float = DEFAULT_FLOOR) -> np.ndarray:
    """At each frame time, the best score of the hits whose window ``[start - before, end + after]`` holds it
    (``floor`` where none does, and no hit scores below ``floor``)."""
    times = np.asarray(times, dtype=np.float64)
    starts, ends, scores = (np.asarray(a, dtype=np.float64).ravel() for a in (starts, ends, scores))
    if not (len(starts) == len(ends) == len(scores)):
        raise ConfigError(f"keyphrase hits: {len(starts)} starts, {len(ends)} ends and {len(scores)} scores")
    if np.any(ends < starts):
        raise ConfigError("keyphrase hits: a hit ends before it starts")
    if len(times) > 1 and np.any(np.diff(times) < 0):
        raise ConfigError("keyphrase evidence: frame times must not decrease")
    evidence = np.full(len(times), float(floor))
    first = np.searchsorted(times, starts - before, side="left")
    last = np.searchsorted(times, ends + after, side="right")
    for i, j, score in zip(first, last, scores):
        np.maximum(evidence[i:j], score, out=evidence[i:j])
    return evidence


def fuse(scores, evidence, weight: float = DEFAULT_WEIGHT) -> np.ndarray:
    """``sigmoid(logit(scores) + weight * evidence)`` frame by frame, in (0, 1).

    float64: in float32 every fused log-odds above about 17 would round to 1.0 and tie at the top."""
    scores = np.asarray(scores, dtype=np.float64)
    evidence = np.asarray(evidence, dtype=np.float64)
    if scores.shape != evidence.shape:
        raise ConfigError(f"fusion: {scores.shape} scores against {evidence.shape} evidence frames")
    if weight < 0 or not np.isfinite(weight):
        raise ConfigError(f"fusion: weight must be finite and >= 0, got {weight}")
    p = np.clip(scores, EPS, 1.0 - EPS)
    z = np.log(p) - np.log1p(-p) + weight * evidence
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # sigmoid without overflow
