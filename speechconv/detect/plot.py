"""``--plot``: spectrogram, smoothed keyword score, threshold and detections of one file, as a PNG."""

from __future__ import annotations

import numpy as np

from speechconv.detect.detector import Event
from speechconv.detect.runner import Curve
from speechconv.output_files import write_output

MAX_COLUMNS = 4000  # longer spectrograms are max-pooled over time to this many columns


def downsample_columns(features: np.ndarray, max_columns: int = MAX_COLUMNS) -> tuple[np.ndarray, int]:
    """Max-pool ``(F, N)`` over time so that at most ``max_columns`` remain; returns (image, factor)."""
    n = features.shape[-1]
    factor = max(1, -(-n // max_columns))
    if factor == 1:
        return features, 1
    usable = n // factor * factor
    pooled = features[:, :usable].reshape(features.shape[0], -1, factor).max(axis=-1)
    return pooled, factor


def plot_detections(
    png_path: str,
    curve: Curve,
    threshold: float,
    events: list[Event],
    title: str = "",
    keyword: str = "keyword",
) -> None:
    """Write the figure to ``png_path`` (see :func:`speechconv.output_files.open_output`)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    figure = Figure(figsize=(12, 5), constrained_layout=True)
    spec_ax, score_ax = figure.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 2]})
    image, factor = downsample_columns(curve.features)
    duration = image.shape[-1] * factor / curve.frame_rate if image.size else 1.0
    if image.size:
        spec_ax.imshow(image, origin="lower", aspect="auto", cmap="magma", extent=(0.0, duration, 0, image.shape[0]))
    spec_ax.set_ylabel("feature")
    spec_ax.set_title(title)
    score_ax.plot(curve.times, curve.scores, lw=1.0, color="tab:blue", label=f"smoothed P({keyword})")
    score_ax.axhline(threshold, color="tab:red", ls="--", lw=1.0, label=f"threshold {threshold:g}")
    for i, event in enumerate(events):
        for ax in (spec_ax, score_ax):
            ax.axvspan(event.start, max(event.end, event.start + 1e-3), color="tab:green", alpha=0.25,
                       label="detection" if ax is score_ax and i == 0 else None)
        score_ax.plot([event.peak], [event.score], "v", color="tab:green")
    score_ax.set_ylim(-0.02, 1.02)
    score_ax.set_xlim(0.0, max(duration, float(curve.times[-1]) if len(curve.times) else 0.0))
    score_ax.set_xlabel("time (s)")
    score_ax.set_ylabel("score")
    score_ax.legend(loc="upper right", fontsize="small")
    png = io.BytesIO()
    figure.savefig(png, format="png", dpi=100)
    write_output(png_path, png.getvalue())
