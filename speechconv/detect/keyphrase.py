"""Phonetic keyphrase search with pocketsphinx (BSD-2-Clause; its bundled US English acoustic model was
trained on real speech): the hits that :mod:`speechconv.detect.fusion` adds to a detector's scores.

One decoding pass with a permissive threshold records every hit the search beam lets through, each with its
score: log10 of the largest ``kws_threshold`` at which pocketsphinx still reports it, i.e. the log10
likelihood ratio of the keyphrase against a free phone loop. Any stricter threshold is then a filter on the
scores (:func:`hits_at`). Audio is decoded in blocks, each with a few seconds of the previous block before
it, so memory stays flat for files hours long. Optional: ``pip install "speechconv[verify]"``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

import numpy as np

from speechconv.errors import ConfigError

SAMPLE_RATE = 16000
FRAMES_PER_SECOND = 100
# kws_search.c reports a hit's score as (keyphrase score - best phone-loop score) - KWS_MAX, in log units
# shifted right by SENSCR_SHIFT; a hit fires when the unshifted-back difference reaches log(kws_threshold).
KWS_MAX = 1500
SENSCR_SHIFT = 10
#: The threshold does not change the search, only which hits are kept; the search beam bounds the list
#: (about 200 hits per hour of read speech for "computer").
PERMISSIVE_KWS_THRESHOLD = 1e-300


class KeyphraseHits(NamedTuple):
    """Hits sorted by time, in seconds from the start of the audio.

    times: where the keyphrase ends (when pocketsphinx reports it); starts: where it starts;
    scores: the largest log10(kws_threshold) at which pocketsphinx still reports the hit.
    """

    times: np.ndarray
    scores: np.ndarray
    starts: np.ndarray


def require_pocketsphinx():
    try:
        import pocketsphinx
    except ImportError:
        raise ConfigError('the keyphrase search needs pocketsphinx; pip install "speechconv[verify]"') from None
    return pocketsphinx


class KeyphraseSearch:
    """pocketsphinx set up to spot one keyphrase. ``pronunciations`` adds words missing from the bundled
    dictionary (ARPAbet phones, e.g. ``{"zorblax": "Z AO R B L AE K S"}``); keyphrase search uses a word's
    first pronunciation only."""

    def __init__(self, keyphrase: str, pronunciations: dict[str, str] | None = None):
        self.keyphrase = " ".join(keyphrase.lower().split())
        if not self.keyphrase:
            raise ConfigError("keyphrase search: the keyphrase is empty")
        self.pronunciations = dict(pronunciations or {})
        self._unused = self._new_decoder()  # checks the words now; the first search uses it

    def _fresh_decoder(self):
        """A fresh decoder per search: its running cepstral mean starts anew, so one file's result does not
        depend on the file searched before it."""
        decoder, self._unused = self._unused, None
        return decoder if decoder is not None else self._new_decoder()

    def _new_decoder(self):
        pocketsphinx = require_pocketsphinx()
        decoder = pocketsphinx.Decoder(pocketsphinx.Config(
            lm=None, kws_threshold=PERMISSIVE_KWS_THRESHOLD, kws_delay=0, loglevel="FATAL"))
        for word, phones in self.pronunciations.items():
            decoder.add_word(word, phones, True)
        missing = [w for w in self.keyphrase.split() if decoder.lookup_word(w) is None]
        if missing:
            raise ConfigError(f"not in the pocketsphinx dictionary: {', '.join(missing)}; give their "
                              "pronunciations (ARPAbet phones)")
        decoder.add_keyphrase("keyphrase", self.keyphrase)
        decoder.activate_search("keyphrase")
        return decoder

    def open(self) -> KeyphraseSession:
        """A search over successive pieces of one stream (its running cepstral mean carried from piece to piece,
        as in a live search)."""
        return KeyphraseSession(self._fresh_decoder())

    def search_blocks(self, blocks: Iterable[tuple[int, np.ndarray]], owned_starts: Iterable[int]) -> KeyphraseHits:
        """Hits in ``(first sample, int16 samples)`` blocks; a block's hits ending before its owned start
        (the context repeated from the previous block) belong to the previous block."""
        session = self.open()
        hits: list[tuple[float, float, float]] = []
        for (read_start, audio), owned_start in zip(blocks, owned_starts):
            hits.extend(hit for hit in session.hits(read_start, audio) if hit[1] * SAMPLE_RATE >= owned_start)
        return as_hits(merge_overlaps(hits))

    def search(self, audio: np.ndarray, *, block_seconds: float = 120.0, context_seconds: float = 5.0
               ) -> KeyphraseHits:
        """Hits in 16 kHz mono audio: float samples in [-1, 1] or int16."""
        audio = np.asarray(audio)
        if audio.ndim != 1:
            raise ConfigError(f"keyphrase search: need mono audio, got shape {audio.shape}")
        owned = list(_owned_starts(len(audio), block_seconds))
        context = int(round(context_seconds * SAMPLE_RATE))
        block = int(round(block_seconds * SAMPLE_RATE))
        blocks = ((max(0, s - context), audio[max(0, s - context) : s + block]) for s in owned)
        return self.search_blocks(blocks, owned)

    def search_wav(self, path: str | Path, *, block_seconds: float = 120.0, context_seconds: float = 5.0
                   ) -> KeyphraseHits:
        """Hits in a 16 kHz mono audio file, read block by block (memory stays flat for long files)."""
        import soundfile as sf

        with sf.SoundFile(str(path)) as wav:
            if wav.samplerate != SAMPLE_RATE or wav.channels != 1:
                raise ConfigError(f"{path}: need {SAMPLE_RATE} Hz mono, got {wav.samplerate} Hz x {wav.channels}")
            owned = list(_owned_starts(wav.frames, block_seconds))
            context = int(round(context_seconds * SAMPLE_RATE))
            block = int(round(block_seconds * SAMPLE_RATE))

            def blocks() -> Iterator[tuple[int, np.ndarray]]:
                for s in owned:
                    wav.seek(max(0, s - context))
                    yield max(0, s - context), wav.read(s + block - max(0, s - context), dtype="int16")

            return self.search_blocks(blocks(), owned)


class KeyphraseSession:
    """One decoder searching successive pieces of a stream, each as one utterance."""

    def __init__(self, decoder):
        self._decoder = decoder
        self._log_base = float(decoder.config["logbase"])

    def hits(self, first_sample: int, audio: np.ndarray) -> list[tuple[float, float, float]]:
        """``(start, end, score)`` of the hits in ``audio`` (int16 samples, or floats in [-1, 1]) that begins
        at sample ``first_sample`` of the stream; times in seconds from the stream's start."""
        audio = np.asarray(audio)
        if audio.dtype != np.int16:
            audio = np.round(np.clip(audio, -1.0, 1.0) * 32767.0).astype(np.int16)
        decoder = self._decoder
        decoder.start_utt()
        # full_utt=False: streaming cepstral mean normalisation, carried across pieces, as a live search runs
        decoder.process_raw(np.ascontiguousarray(audio).tobytes(), False, False)
        decoder.end_utt()
        offset = first_sample / SAMPLE_RATE
        return [(offset + seg.start_frame / FRAMES_PER_SECOND,
                 offset + (seg.end_frame + 1) / FRAMES_PER_SECOND,  # end_frame is inclusive
                 _log10_threshold(seg.prob, self._log_base))
                for seg in decoder.seg() or []]  # None when there is no hit


def as_hits(hits: list[tuple[float, float, float]]) -> KeyphraseHits:
    """``(start, end, score)`` tuples as :class:`KeyphraseHits`."""
    if not hits:
        return KeyphraseHits(np.zeros(0), np.zeros(0), np.zeros(0))
    starts, ends, scores = (np.array(column, dtype=np.float64) for column in zip(*hits))
    return KeyphraseHits(times=ends, scores=scores, starts=starts)


def _owned_starts(samples: int, block_seconds: float) -> range:
    if not (math.isfinite(block_seconds) and block_seconds > 0):
        raise ConfigError(f"keyphrase search: block_seconds must be > 0, got {block_seconds}")
    return range(0, samples, max(1, int(round(block_seconds * SAMPLE_RATE))))


def _log10_threshold(prob: float, log_base: float) -> float:
    """Segment.prob is log_base ** (difference - KWS_MAX); the hit fires when difference >= log(T) >> SHIFT,
    i.e. when (difference << SHIFT) + (1 << SHIFT) - 1 >= log(T) (log(T) truncated toward zero)."""
    difference = round(math.log(prob) / math.log(log_base)) + KWS_MAX
    return ((difference << SENSCR_SHIFT) + (1 << SENSCR_SHIFT) - 1) * math.log10(log_base)


def merge_overlaps(hits: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """Overlapping ``(start, end, score)`` hits are one hit with the best score, as pocketsphinx merges them
    within an utterance; this also joins a keyphrase cut at a block end with its whole copy in the next block."""
    merged: list[tuple[float, float, float]] = []
    for hit in sorted(hits):
        if merged and hit[0] < merged[-1][1]:
            if hit[2] > merged[-1][2]:
                merged[-1] = hit
        else:
            merged.append(hit)
    return merged


def hits_at(hits: KeyphraseHits, kws_thresholds) -> dict[float, np.ndarray]:
    """Hit end times a pocketsphinx decode with each ``kws_threshold`` would report."""
    return {float(t): hits.times[hits.scores >= math.log10(t)] for t in kws_thresholds}
