"""Manifests for the "hello" recipe: train/dev/test splits with voices, speakers and noise held out.

Splits
------
* Synthetic clips (``speechconv synth``): split by *voice*. A TTS speaker that appears in several
  engines (flite ``kal``/``kal16`` and festival ``kal_diphone``; flite ``slt`` and festival
  ``cmu_us_slt_arctic_hts``) counts as one speaker. espeak-ng voices are split by variant (the
  voice character), whatever the dialect.
* Real negative speech from ``../shared/data``: wake-word-keywords ``alexa``/``computer``/``jarvis``
  train, ``smart_mirror`` is split in two halves for dev and test (the benchmark has no speaker ids,
  so speakers may recur across words); FSDD by speaker; custom-speech-commands by phrase folder;
  Precise-Community speech is train only (three contributors).
* Noise: whole files held out (``dude_miaowing``, ``running_tap``, ``bg_noise7-9``); each held-out
  file is cut in two: first half dev, second half test.

Everything a later stage needs is written under ``WORK/manifests``: ``train.jsonl``, ``dev.jsonl``,
``test.jsonl`` (labels ``hello`` / ``negative``) and ``noise.json`` (noise files per split).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

import numpy as np
import soundfile as sf

from speechconv.data.manifest import ManifestEntry, read_manifest, write_manifest
from speechconv.data.readers import read_fsdd, read_label_folders, read_precise_community, read_wake_word_keywords
from speechconv.errors import SpeechconvError

KEYWORD, NEGATIVE = "hello", "negative"
LABELS = [NEGATIVE, KEYWORD]

# Synthetic voices held out. espeak-ng: variant names; flite/festival: speaker names.
ESPEAK_DEV_VARIANTS = frozenset({"Annie", "Mike", "aunty", "edward2"})
ESPEAK_TEST_VARIANTS = frozenset({"Alicia", "Andrea", "Hugo", "Lee", "belinda", "david"})
TTS_DEV_SPEAKERS = frozenset({"awb"})
TTS_TEST_SPEAKERS = frozenset({"rms", "ked"})
_TTS_SPEAKER = {"kal16": "kal", "kal_diphone": "kal", "ked_diphone": "ked", "cmu_us_slt_arctic_hts": "slt"}

# Real data held out.
WAKE_WORD_EVAL_FOLDER = "smart_mirror"
FSDD_DEV_SPEAKERS, FSDD_TEST_SPEAKERS = frozenset({"yweweler"}), frozenset({"theo"})
FSDD_TRAIN_PER_SPEAKER = 150  # of 500 clips per speaker: digits only, keep them from dominating
CUSTOM_DEV, CUSTOM_TEST = frozenset({"hey_archie"}), frozenset({"hey_fenrir"})
NOISE_EVAL_FILES = frozenset({"dude_miaowing", "running_tap", "bg_noise7", "bg_noise8", "bg_noise9"})
NOISE_CLIP_SECONDS = 2.0  # training noise is also cut into negative clips of this length


def synthetic_speaker(engine: str, voice: str) -> str:
    """The speaker identity behind a TTS voice: espeak variant or a flite/festival speaker name."""
    if engine == "espeak":
        return "espeak:" + (voice.split("+", 1)[1] if "+" in voice else "<default>")
    return "tts:" + _TTS_SPEAKER.get(voice, voice)


def synthetic_split(engine: str, voice: str) -> str:
    """``train``, ``dev`` or ``test`` for a TTS voice (see the module docstring)."""
    kind, name = synthetic_speaker(engine, voice).split(":", 1)
    if kind == "espeak":
        return "dev" if name in ESPEAK_DEV_VARIANTS else "test" if name in ESPEAK_TEST_VARIANTS else "train"
    return "dev" if name in TTS_DEV_SPEAKERS else "test" if name in TTS_TEST_SPEAKERS else "train"


def split_synthetic(entries: list[ManifestEntry], max_keyword_seconds: float) -> list[ManifestEntry]:
    """Relabel synth clips ``hello`` / ``negative``, set ``split`` and ``speaker``.

    Keyword clips longer than ``max_keyword_seconds`` are dropped: training crops clips to a fixed
    window ending after the speech, which could cut the keyword out of a long carrier phrase.
    """
    out = []
    for entry in entries:
        label = KEYWORD if entry.label == "keyword" else NEGATIVE
        if label == KEYWORD and entry.duration > max_keyword_seconds:
            continue
        out.append(
            ManifestEntry(
                path=entry.path, label=label, text=entry.text, engine=entry.engine, voice=entry.voice,
                params={}, duration=entry.duration, speaker=synthetic_speaker(entry.engine, entry.voice),
                split=synthetic_split(entry.engine, entry.voice),
            )
        )
    return out


def _negative(entry: ManifestEntry, split: str, source: str) -> ManifestEntry:
    return ManifestEntry(path=entry.path, label=NEGATIVE, text=entry.text, engine=source,
                         speaker=entry.speaker, split=split)


def real_negatives(shared: Path, seed: int = 0) -> list[ManifestEntry]:
    """Real speech (never containing "hello") from ../shared/data, with splits."""
    rng = np.random.default_rng(seed)
    out: list[ManifestEntry] = []
    wake = read_wake_word_keywords(shared / "wake-word-keywords")
    held = [e for e in wake if Path(e.path).parent.name == WAKE_WORD_EVAL_FOLDER]
    order = rng.permutation(len(held))
    for rank, i in enumerate(order):
        out.append(_negative(held[i], "dev" if rank % 2 == 0 else "test", "wake-word-keywords"))
    out += [_negative(e, "train", "wake-word-keywords") for e in wake
            if Path(e.path).parent.name != WAKE_WORD_EVAL_FOLDER]
    fsdd = read_fsdd(shared / "fsdd")
    for speaker in sorted({e.speaker for e in fsdd}):
        clips = [e for e in fsdd if e.speaker == speaker]
        if speaker in FSDD_DEV_SPEAKERS or speaker in FSDD_TEST_SPEAKERS:
            split = "dev" if speaker in FSDD_DEV_SPEAKERS else "test"
            picked = [clips[i] for i in sorted(rng.choice(len(clips), 150, replace=False))]
        else:
            split = "train"
            picked = [clips[i] for i in sorted(rng.choice(len(clips), FSDD_TRAIN_PER_SPEAKER, replace=False))]
        out += [_negative(e, split, "fsdd") for e in picked]
    custom = read_label_folders(shared / "custom-speech-commands" / "custom_keywords", include_noise=False)
    for entry in custom:
        split = "dev" if entry.label in CUSTOM_DEV else "test" if entry.label in CUSTOM_TEST else "train"
        entry.text = entry.text or entry.label.replace("_", " ")
        out.append(_negative(entry, split, "custom-speech-commands"))
    precise = read_precise_community(shared / "precise-community")
    out += [_negative(e, "train", "precise-community") for e in precise if e.split != "noise"]
    if not all(keyword_free(e.text) for e in out):
        raise SpeechconvError("a real negative clip's transcript contains 'hello'")
    return out


def noise_files(shared: Path) -> list[Path]:
    """All noise recordings: Speech Commands background noise and Precise-Community bg noise."""
    files = sorted((shared / "background-noise").glob("*.wav"))
    files += sorted((shared / "precise-community" / "not-wake-words" / "noises").rglob("*.wav"))
    if not files:
        raise SpeechconvError(f"{shared}: no noise files under background-noise/ or precise-community noises/")
    return files


def split_noise(shared: Path, work: Path) -> dict[str, list[str]]:
    """Noise files per split; held-out files are cut in halves written to ``work/noise/{dev,test}``."""
    splits: dict[str, list[str]] = {"train": [], "dev": [], "test": []}
    for path in noise_files(shared):
        if path.stem not in NOISE_EVAL_FILES:
            splits["train"].append(str(path))
            continue
        audio, rate = sf.read(str(path), dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        half = len(audio) // 2
        for split, part in (("dev", audio[:half]), ("test", audio[half:])):
            out = work / "noise" / split / f"{path.stem}.wav"
            out.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(out), part, rate, subtype="PCM_16")
            splits[split].append(str(out))
    return splits


def noise_clips(paths: list[str], work: Path, seconds: float = NOISE_CLIP_SECONDS) -> list[ManifestEntry]:
    """Cut training noise into ``seconds``-long negative clips (the model must stay silent on noise)."""
    out = []
    for path in paths:
        audio, rate = sf.read(path, dtype="float32", always_2d=True)
        audio = audio.mean(axis=1)
        size = int(seconds * rate)
        for k in range(len(audio) // size):
            clip = work / "noise_clips" / f"{Path(path).stem}_{k:03d}.wav"
            clip.parent.mkdir(parents=True, exist_ok=True)
            sf.write(str(clip), audio[k * size:(k + 1) * size], rate, subtype="PCM_16")
            out.append(ManifestEntry(path=str(clip), label=NEGATIVE, engine="noise", duration=seconds,
                                     speaker=Path(path).stem, split="train"))
    return out


def prepare(synth_dirs: list[Path], shared: Path, work: Path, max_keyword_seconds: float = 1.45,
            seed: int = 0) -> dict[str, list[ManifestEntry]]:
    """Write ``work/manifests/{train,dev,test}.jsonl`` and ``noise.json``; return the splits."""
    entries: list[ManifestEntry] = []
    for folder in synth_dirs:
        entries += split_synthetic(read_manifest(folder / "manifest.jsonl"), max_keyword_seconds)
    entries += real_negatives(shared, seed)
    noise = split_noise(shared, work)
    entries += noise_clips(noise["train"], work)
    manifests = work / "manifests"
    splits = {name: [e for e in entries if e.split == name] for name in ("train", "dev", "test")}
    for name, part in splits.items():
        write_manifest(manifests / f"{name}.jsonl", part)
    (manifests / "noise.json").write_text(json.dumps(noise, indent=1) + "\n", encoding="utf-8")
    check_disjoint(splits)
    return splits


def check_disjoint(splits: dict[str, list[ManifestEntry]]) -> None:
    """No synthetic speaker or clip may appear in two splits."""
    seen: dict[str, str] = {}
    for name, part in splits.items():
        for entry in part:
            for key in (entry.path, entry.speaker if entry.speaker.startswith(("espeak:", "tts:")) else None):
                if key is None:
                    continue
                if seen.setdefault(key, name) != name:
                    raise SpeechconvError(f"{key} is in both the {seen[key]} and {name} splits")


def describe(splits: dict[str, list[ManifestEntry]]) -> str:
    """One line per split: clip counts by label and source."""
    lines = []
    for name, part in splits.items():
        counts = Counter((e.label, e.engine if e.engine else "?") for e in part)
        voices = len({e.speaker for e in part if e.speaker.startswith(("espeak:", "tts:"))})
        detail = ", ".join(f"{label}/{source} {n}" for (label, source), n in sorted(counts.items()))
        lines.append(f"{name}: {len(part)} clips, {voices} synthetic speakers ({detail})")
    return "\n".join(lines)


def keyword_free(text: str) -> bool:
    return re.search(rf"\b{KEYWORD}\b", text.lower()) is None
