"""Two-stage detection: the detector's scores open candidate spans, and the keyphrase search runs only there.

The phonetic search (:mod:`speechconv.detect.keyphrase`) costs several times the detector when it runs on all
the audio. It only changes the outcome near frames where the detector is already somewhat confident: a frame
whose raw score ``p`` is below ``gate`` reaches a fused score of at least ``threshold`` only if the search's
evidence exceeds ``(logit(threshold) - logit(gate)) / weight`` (for gate 0.2, threshold 0.9 and weight 0.075:
a log10 likelihood ratio of 48; real "computer" clips score a median of 6). So, as two-stage wake-word
systems do:

1. a frame with ``p >= gate`` is a *gate crossing*; every frame within ``pad_seconds`` of a crossing belongs
   to a *candidate span* (overlapping pads join; a span is closed at ``max_span_seconds``);
2. when a span is complete, the search runs on its audio, from ``lead_seconds`` before it (where the
   keyphrase starts and the search settles; no more than ``overlap_seconds`` of audio the previous search
   heard) to its end, and the span's frames are fused
   with its hits (:func:`speechconv.detect.fusion.keyphrase_evidence`, :func:`~speechconv.detect.fusion.fuse`);
3. frames outside every span are fused with the evidence floor, as frames with no hit nearby are anyway.

:class:`GatedVerifier` does this on a stream, piece by piece, with bounded memory: fused frames come out in
order, each once the span it may belong to is complete, so the same audio gives the same fused frames
however it is cut into pieces. A live stream's detections lag by the pad plus the search of the span.
``gate = 0`` makes every frame a crossing: the whole stream is searched, in spans of ``max_span_seconds``.
"""

from __future__ import annotations

import math

import numpy as np

from speechconv.detect import fusion
from speechconv.errors import ConfigError

#: Raw score that opens a candidate span; chosen on the real-speaker wake-word benchmark
#: (recipes/wakeword_benchmark, stage ``gating``): as few misses as the search of all the audio, which it
#: searched a fifth of.
DEFAULT_GATE = 0.2
#: Frames this close to a gate crossing are fused with the search's evidence: more than a smoothing window
#: (farther frames score below the gate, so the floor leaves them far below any useful threshold).
DEFAULT_PAD_SECONDS = 0.5
#: Audio searched before a span: a keyphrase that ends near the first crossing starts there (with the pad,
#: 1.5 s before the crossing).
DEFAULT_LEAD_SECONDS = 1.0
#: Audio already searched that a span's search repeats before its own (at most; ``lead_seconds`` is
#: shortened to this after a span that ended closer than that), so that a keyphrase across the boundary
#: is heard whole but close spans do not search the same audio again and again.
DEFAULT_OVERLAP_SECONDS = 1.0
#: A span is closed after this long even if the gate stays open, so memory and latency stay bounded.
DEFAULT_MAX_SPAN_SECONDS = 30.0


class GatedVerifier:
    """Fuse a stream's keyword scores with a keyphrase search that runs only around candidate frames.

    Feed it the audio and the model's raw scores as they come (:meth:`feed`), then :meth:`finish`; both
    return the ``(times, fused scores)`` that are final so far, in order. ``search`` is a
    :class:`~speechconv.detect.keyphrase.KeyphraseSearch` (or anything with its ``open()``); score frames
    are timed by the end of the audio they have heard, in seconds from the stream's first sample.
    ``searched_seconds`` and ``spans`` say how much audio the search has processed, and in how many spans.
    """

    def __init__(self, search, sample_rate: int, *, weight: float | None = None, gate: float | None = None,
                 pad_seconds: float = DEFAULT_PAD_SECONDS, lead_seconds: float = DEFAULT_LEAD_SECONDS,
                 max_span_seconds: float = DEFAULT_MAX_SPAN_SECONDS, overlap_seconds: float = DEFAULT_OVERLAP_SECONDS,
                 floor: float = fusion.DEFAULT_FLOOR):
        self.weight = fusion.DEFAULT_WEIGHT if weight is None else float(weight)
        self.gate = DEFAULT_GATE if gate is None else float(gate)
        if not (math.isfinite(self.weight) and self.weight >= 0):
            raise ConfigError(f"verify: the weight must be finite and >= 0, got {self.weight}")
        if not 0.0 <= self.gate <= 1.0:
            raise ConfigError(f"verify: the gate must be in [0, 1], got {self.gate}")
        for name, value in (("pad", pad_seconds), ("lead", lead_seconds), ("overlap", overlap_seconds)):
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"verify: {name}_seconds must be finite and >= 0, got {value}")
        if not (math.isfinite(max_span_seconds) and max_span_seconds > 0):
            raise ConfigError(f"verify: max_span_seconds must be > 0, got {max_span_seconds}")
        self.sample_rate = int(sample_rate)
        self.pad, self.lead, self.overlap = float(pad_seconds), float(lead_seconds), float(overlap_seconds)
        self.max_span, self.floor = float(max_span_seconds), float(floor)
        self._session = search.open()
        self._audio = np.zeros(0, np.float32)  # buffered samples, the first of which is sample _audio_start
        self._audio_start = 0
        self._times = np.zeros(0)  # pending frames: not yet fused
        self._scores = np.zeros(0)
        self._last_time = -math.inf  # the newest frame fed
        self._span_start: float | None = None  # the open span's first frame time (frames before it are out)
        self._searched_until = -math.inf  # where the last search ended, in seconds
        self.searched_seconds = 0.0
        self.spans = 0

    def feed(self, audio, times, scores) -> tuple[np.ndarray, np.ndarray]:
        """Take the next ``audio`` samples and the score frames computed so far; returns the frames now final."""
        audio = np.asarray(audio, dtype=np.float32).reshape(-1)
        times = np.asarray(times, dtype=np.float64).reshape(-1)
        scores = np.asarray(scores, dtype=np.float64).reshape(-1)
        if times.shape != scores.shape:
            raise ConfigError(f"verify: {times.shape} times against {scores.shape} scores")
        if len(times) and (times[0] < self._last_time or np.any(np.diff(times) < 0)):
            raise ConfigError("verify: frame times must not decrease")
        self._audio = np.concatenate([self._audio, audio])
        self._times = np.concatenate([self._times, times])
        self._scores = np.concatenate([self._scores, scores])
        if len(times):
            self._last_time = float(times[-1])
        return self._advance(final=False)

    def finish(self, times=(), scores=()) -> tuple[np.ndarray, np.ndarray]:
        """The last frames (those the model gives at the end of the stream, if any), then everything pending."""
        out = [self.feed(np.zeros(0, np.float32), times, scores)]
        out.append(self._advance(final=True))
        return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])

    def _advance(self, final: bool) -> tuple[np.ndarray, np.ndarray]:
        out_t, out_f = [], []

        def take(count: int) -> tuple[np.ndarray, np.ndarray]:
            t, p = self._times[:count], self._scores[:count]
            self._times, self._scores = self._times[count:], self._scores[count:]
            return t, p

        def emit_outside(count: int) -> None:
            if count > 0:
                t, p = take(count)
                out_t.append(t)
                out_f.append(fusion.fuse(p, np.full(count, self.floor), self.weight))

        horizon = math.inf if final else self._last_time
        while len(self._times):
            crossings = self._times[self._scores >= self.gate]
            if self._span_start is None:
                if not len(crossings):  # frames more than a pad before the newest can no longer join a span
                    emit_outside(int(np.searchsorted(self._times, horizon - self.pad, side="right")))
                    break
                self._span_start = float(crossings[0]) - self.pad
                emit_outside(int(np.searchsorted(self._times, self._span_start, side="left")))
                continue
            end = self._span_end(crossings)
            if horizon < end:
                break
            t, p = take(int(np.searchsorted(self._times, end, side="right")))
            out_t.append(t)
            out_f.append(fusion.fuse(p, self._search_span(t, end), self.weight))
            self._span_start = None
        self._trim_audio()
        if not out_t:
            return np.zeros(0), np.zeros(0)
        return np.concatenate(out_t), np.concatenate(out_f)

    def _span_end(self, crossings: np.ndarray) -> float:
        """Where the open span ends: a pad after the last of its chained crossings, or at its maximum length."""
        limit = self._span_start + self.max_span
        crossings = crossings[crossings <= limit]
        if not len(crossings):
            return limit
        gaps = np.flatnonzero(np.diff(crossings) > self.pad)
        last = crossings[gaps[0]] if len(gaps) else crossings[-1]
        return min(float(last) + self.pad, limit)

    def _search_span(self, times: np.ndarray, end: float) -> np.ndarray:
        """The search's evidence at the open span's frames ``times``: its audio from ``lead`` before the span (or
        ``overlap`` before the end of the last search, if that is later) to its ``end`` (or the last sample)."""
        begin = max(self._span_start - self.lead, min(self._searched_until - self.overlap, self._span_start))
        first = max(self._audio_start, int(math.floor(begin * self.sample_rate)))
        last = int(round(end * self.sample_rate)) if math.isfinite(end) else None
        audio = self._audio[first - self._audio_start:None if last is None else max(0, last - self._audio_start)]
        hits = self._session.hits(first, audio)
        self._searched_until = (first + len(audio)) / self.sample_rate
        self.searched_seconds += len(audio) / self.sample_rate
        self.spans += 1
        starts, ends, scores = (np.array([h[i] for h in hits], dtype=np.float64) for i in range(3))
        return fusion.keyphrase_evidence(times, starts, ends, scores, floor=self.floor)

    def _trim_audio(self) -> None:
        """Keep the audio a future search may need: from ``lead`` before the earliest frame not yet final."""
        earliest = self._span_start if self._span_start is not None else min(
            float(self._times[0]) if len(self._times) else math.inf, self._last_time - self.pad)
        if not math.isfinite(earliest):
            return
        keep_from = int(math.floor((earliest - self.lead) * self.sample_rate))
        drop = min(len(self._audio), keep_from - self._audio_start)
        if drop > 0:
            self._audio = self._audio[drop:]
            self._audio_start += drop


def verify_curve(path, times, scores, search, *, block_seconds: float = 60.0, **options
                 ) -> tuple[np.ndarray, GatedVerifier]:
    """A score curve already computed for an audio file, fused with the gated search of that file (read in
    blocks, each fed with the frames that have heard it); returns the fused scores, one per frame, and the
    :class:`GatedVerifier` (how much it searched). ``options`` go to :class:`GatedVerifier`."""
    import soundfile as sf

    times = np.asarray(times, dtype=np.float64)
    scores = np.asarray(scores, dtype=np.float64)
    with sf.SoundFile(str(path)) as audio:
        if audio.channels != 1:
            raise ConfigError(f"{path}: need mono audio, got {audio.channels} channels")
        verifier = GatedVerifier(search, audio.samplerate, **options)
        parts, first, heard = [], 0, 0
        for block in audio.blocks(blocksize=max(1, int(block_seconds * audio.samplerate)), dtype="float32"):
            heard += len(block)
            last = int(np.searchsorted(times, heard / audio.samplerate, side="right"))
            parts.append(verifier.feed(block, times[first:last], scores[first:last])[1])
            first = last
    parts.append(verifier.finish(times[first:], scores[first:])[1])
    return np.concatenate(parts), verifier
