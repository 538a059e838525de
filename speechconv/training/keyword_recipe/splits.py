"""Who trains and who tests: synthetic voices split by speaker, recordings split by file.

- A synthetic clip's *speaker* is the voice behind it (:func:`tts_speaker`): an espeak-ng variant, a
  flite/festival speaker (the same person across engines counts once), a piper model or a Kokoro blend.
- :func:`held_out_speakers` holds out a fixed share of each engine family's speakers, chosen by a hash
  of the name, so the choice never depends on what else is in the corpus.
- :func:`held_out_files` does the same for recordings (real negatives, noise) by file name.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from pathlib import Path

from speechconv.data.manifest import ManifestEntry, read_manifest

NEGATIVE = "negative"
HELD_OUT_SHARE = 0.15
_SPEAKER_ALIASES = {"kal16": "kal", "kal_diphone": "kal", "ked_diphone": "ked", "cmu_us_slt_arctic_hts": "slt"}


def keyword_label(phrase: str) -> str:
    """The label a keyword gets in manifests, model configs and detections: the phrase, spaces normalised."""
    return " ".join(phrase.replace("_", " ").split())


def tts_speaker(engine: str, voice: str) -> str:
    """The speaker behind a TTS voice (converted clips, engine ``espeak+praat``, keep their source)."""
    engine = engine.split("+", 1)[0]
    if engine == "espeak":
        return "espeak:" + (voice.split("+", 1)[1] if "+" in voice else "<default>")
    name = _SPEAKER_ALIASES.get(voice, voice)
    return f"{engine}:{name}" if engine in ("piper", "kokoro") else f"tts:{name}"


def _hash(name: str) -> int:
    return zlib.crc32(name.encode("utf-8", "surrogateescape"))


def held_out_speakers(speakers: Iterable[str], share: float = HELD_OUT_SHARE) -> set[str]:
    """Per engine family (the part before ``:``) with at least 3 speakers, the ``share`` (at least one)
    that rank first by a hash of their names."""
    families: dict[str, list[str]] = {}
    for speaker in set(speakers):
        families.setdefault(speaker.split(":", 1)[0], []).append(speaker)
    held = set()
    for names in families.values():
        if len(names) >= 3:
            ranked = sorted(names, key=_hash)
            held.update(ranked[:max(1, round(share * len(names)))])
    return held


def held_out_files(paths: Iterable[str], share: float = 0.2, minimum: int = 5) -> set[str]:
    """The ``share`` of ``paths`` (by a hash of the file name) kept for evaluation; none when fewer than
    ``minimum`` files are given (then they all train)."""
    paths = sorted(set(paths))
    if len(paths) < minimum:
        return set()
    ranked = sorted(paths, key=lambda p: _hash(Path(p).name + "/" + p))
    return set(ranked[:max(1, round(share * len(paths)))])


def synthetic_entries(manifest: str | Path, label: str, max_keyword_seconds: float) -> list[ManifestEntry]:
    """Clips of a ``speechconv synth`` corpus relabelled ``label`` / ``negative``, with their speaker.

    Keyword clips longer than ``max_keyword_seconds`` are dropped: training crops clips to a fixed
    window ending after the speech, which could cut the keyword out of a long carrier phrase.
    """
    out = []
    for entry in read_manifest(manifest):
        is_keyword = entry.label == "keyword"
        if is_keyword and entry.duration > max_keyword_seconds:
            continue
        out.append(ManifestEntry(path=entry.path, label=label if is_keyword else NEGATIVE, text=entry.text,
                                 engine=entry.engine, voice=entry.voice, params=entry.params,
                                 duration=entry.duration, speaker=tts_speaker(entry.engine, entry.voice),
                                 split="train"))
    return out


def split_by_speaker(entries: list[ManifestEntry], share: float = HELD_OUT_SHARE) -> None:
    """Set ``split`` to ``dev`` for the held-out speakers' clips and ``train`` for the rest. When no
    family has 3 speakers (a tiny corpus), the ``share`` of clips ranked first by a hash of the path
    is held out instead, so dev is never empty."""
    held = held_out_speakers((e.speaker for e in entries), share)
    for entry in entries:
        entry.split = "dev" if entry.speaker in held else "train"
    labels = {e.label for e in entries}
    for label in labels:  # every label needs clips on both sides
        part = [e for e in entries if e.label == label]
        if part and all(e.split == part[0].split for e in part) and len(part) >= 2:
            ranked = sorted(part, key=lambda e: _hash(e.path))
            for i, entry in enumerate(ranked):
                entry.split = "dev" if i < max(1, round(share * len(part))) else "train"
