"""Real-speaker benchmark data: the evaluation streams, the real training negatives and the manifests.

Protocol (after the Picovoice wake-word benchmark, on the same recordings):

* **Positives for training are synthetic only** (``speechconv synth``), split by voice into train and
  dev (``held_out_speakers`` of ``speechconv.training.keyword_recipe.splits``; dev only picks checkpoints).
  No real recording of any benchmark keyword is used in training: ``wake-word-keywords`` is
  evaluation-only, for every keyword.
* **LibriSpeech train-clean-5** (28 speakers) is split by speaker: the first four female and the
  first four male speakers by numeric id (:data:`LIBRISPEECH_TRAIN_SPEAKERS`) are training negatives;
  the other 20 speakers (0.8 h) form the false-alarm stream with two held-out FSDD speakers.
* **Keyword stream** of keyword K: every real clip of K (silence trimmed) among every real clip of the
  other three keywords, in random order with 0.5-2 s gaps, over held-out noise at 10 dB SNR.
* **Negative stream**: the 20 held-out LibriSpeech speakers and FSDD ``george``/``jackson``, over the
  same held-out noise at 10 dB SNR. FRR is counted on the keyword stream; false alarms per hour over
  both streams (the keyword stream outside K's clips, and the negative stream).
* **Noise**: ``running_tap``, ``dude_miaowing`` and Precise ``bg_noise7-9`` are evaluation-only; the
  other noise files are used for training augmentation and as negative clips.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from speechconv.audio import load_audio, save_audio
from speechconv.data.manifest import ManifestEntry, write_manifest
from speechconv.data.readers import read_fsdd, read_label_folders, read_precise_community, read_wake_word_keywords
from speechconv.data.synth import trim_silence
from speechconv.errors import SpeechconvError
from speechconv.training.keyword_recipe.splits import held_out_speakers, synthetic_entries

KEYWORDS = ("alexa", "computer", "jarvis", "smart_mirror")
NEGATIVE = "negative"
SAMPLE_RATE = 16000
LIBRISPEECH_TRAIN_SPEAKERS = frozenset({"19", "32", "226", "669", "118", "163", "332", "460"})
FSDD_EVAL_SPEAKERS = frozenset({"george", "jackson"})
FSDD_TRAIN_PER_SPEAKER = 150
NOISE_EVAL_FILES = frozenset({"dude_miaowing", "running_tap", "bg_noise7", "bg_noise8", "bg_noise9"})
SEGMENT_SECONDS = 2.0  # long real utterances and noise become training clips of this length
EVAL_SNR_DB = 10.0
GAP_S = (0.5, 2.0)
DEV_SHARE = 0.15  # share of the TTS speakers of each engine family held out for dev (checkpoint choice)


# Precise-Community not-wake-word texts that are the words spoken ("heychatterbox" is one glued word)
PRECISE_SPELLED = frozenset({"a cheddar block", "aardvark", "blather", "cannister", "ceiling", "condition",
                             "emergency", "flooring", "tablecloth", "warning", "wine glass", "you better talk"})


def keyword_text(keyword: str) -> str:
    return keyword.replace("_", " ")


# ------------------------------------------------------------------------------------ real data


def librispeech(shared: Path) -> list[ManifestEntry]:
    """LibriSpeech utterances with speaker and transcript."""
    root = shared / "librispeech-train-clean-5" / "train-clean-5"
    if not root.is_dir():
        raise SpeechconvError(f"{root}: LibriSpeech train-clean-5 not found")
    texts: dict[str, str] = {}
    for trans in root.rglob("*.trans.txt"):
        for line in trans.read_text().splitlines():
            utt, _, text = line.partition(" ")
            texts[utt] = text.lower()
    return [ManifestEntry(path=str(f), label=NEGATIVE, text=texts.get(f.stem, ""), engine="librispeech",
                          speaker=f.parts[-3]) for f in sorted(root.rglob("*.flac"))]


def noise_files(shared: Path) -> tuple[list[str], list[str]]:
    """``(training noise, evaluation noise)`` file lists."""
    files = sorted((shared / "background-noise").glob("*.wav"))
    files += sorted((shared / "precise-community" / "not-wake-words" / "noises").rglob("*.wav"))
    if not files:
        raise SpeechconvError(f"{shared}: no noise files")
    train = [str(f) for f in files if f.stem not in NOISE_EVAL_FILES]
    held = [str(f) for f in files if f.stem in NOISE_EVAL_FILES]
    return train, held


def _trimmed(entry: ManifestEntry, out: Path) -> ManifestEntry | None:
    """A copy of ``entry`` with leading and trailing silence cut, written to ``out`` (once)."""
    if not out.is_file():
        audio, _ = load_audio(entry.path, SAMPLE_RATE)
        audio = trim_silence(audio.numpy(), SAMPLE_RATE, threshold_db=-35.0, pad_s=0.1)
        if len(audio) < 0.2 * SAMPLE_RATE:
            return None
        out.parent.mkdir(parents=True, exist_ok=True)
        save_audio(out, audio, SAMPLE_RATE)
    return ManifestEntry(path=str(out), label=entry.label, text=entry.text, engine=entry.engine,
                         speaker=entry.speaker)


def _segments(entry: ManifestEntry, folder: Path, seconds: float = SEGMENT_SECONDS) -> list[ManifestEntry]:
    """Cut a long recording into ``seconds``-long training clips written under ``folder``."""
    audio, _ = load_audio(entry.path, SAMPLE_RATE)
    size = int(seconds * SAMPLE_RATE)
    out = []
    for k in range(max(1, len(audio) // size)):
        clip = folder / f"{Path(entry.path).stem}_{k:03d}.wav"
        if not clip.is_file():
            clip.parent.mkdir(parents=True, exist_ok=True)
            save_audio(clip, audio[k * size:(k + 1) * size].numpy(), SAMPLE_RATE)
        out.append(ManifestEntry(path=str(clip), label=NEGATIVE, text="", engine=entry.engine,
                                 speaker=entry.speaker, duration=seconds, split="train"))
    return out


def build_streams(shared: Path, work: Path, seed: int = 0, log=print, keywords: tuple[str, ...] = KEYWORDS) -> None:
    """Write ``work/streams/{keyword}.wav|csv`` for each of ``keywords`` and ``negatives.wav|csv``."""
    from speechconv.data.evalstream import build_eval_stream

    _, eval_noise = noise_files(shared)
    wake = read_wake_word_keywords(shared / "wake-word-keywords") if keywords else []
    trimmed: list[ManifestEntry] = []
    for entry in wake:
        clip = _trimmed(entry, work / "real" / "trimmed" / entry.label / (Path(entry.path).stem + ".wav"))
        if clip is not None:
            trimmed.append(clip)
    if keywords:
        log(f"{len(trimmed)} of {len(wake)} real keyword clips kept after trimming silence")
    streams = work / "streams"
    for i, keyword in enumerate(KEYWORDS):
        if keyword not in keywords:
            continue
        wav = streams / f"{keyword}.wav"
        if wav.is_file() and wav.with_suffix(".csv").is_file():
            continue
        ours = [e for e in trimmed if e.label == keyword]
        others = [e for e in trimmed if e.label != keyword]
        rows = build_eval_stream(ours, others, eval_noise, wav, wav.with_suffix(".csv"), gap_range=GAP_S,
                                 snr_db_range=(EVAL_SNR_DB, EVAL_SNR_DB), seed=seed + i)
        log(f"{wav}: {sum(r['label'] == keyword for r in rows)} {keyword} among {len(rows)} clips, "
            f"{rows[-1]['end'] / 3600:.2f} h")
    wav = streams / "negatives.wav"
    if not (wav.is_file() and wav.with_suffix(".csv").is_file()):
        speech = [e for e in librispeech(shared) if e.speaker not in LIBRISPEECH_TRAIN_SPEAKERS]
        speech += [e for e in read_fsdd(shared / "fsdd") if e.speaker in FSDD_EVAL_SPEAKERS]
        rows = build_eval_stream([], speech, eval_noise, wav, wav.with_suffix(".csv"), gap_range=GAP_S,
                                 snr_db_range=(EVAL_SNR_DB, EVAL_SNR_DB), seed=seed + 10)
        log(f"{wav}: {len(rows)} clips of held-out real speech, {rows[-1]['end'] / 3600:.2f} h")


def real_training_negatives(shared: Path, work: Path, seed: int = 0) -> list[ManifestEntry]:
    """Real speech and noise for training; none of it holds a benchmark keyword or an evaluation speaker."""
    rng = np.random.default_rng(seed)
    out: list[ManifestEntry] = []
    folder = work / "real" / "train_segments"
    for entry in librispeech(shared):
        if entry.speaker in LIBRISPEECH_TRAIN_SPEAKERS:
            out += _segments(entry, folder)
    for speaker_clips in _by_speaker(read_fsdd(shared / "fsdd")).values():
        if speaker_clips[0].speaker in FSDD_EVAL_SPEAKERS:
            continue
        picked = rng.choice(len(speaker_clips), min(FSDD_TRAIN_PER_SPEAKER, len(speaker_clips)), replace=False)
        out += [_negative(speaker_clips[i], "fsdd") for i in sorted(picked)]
    custom = read_label_folders(shared / "custom-speech-commands" / "custom_keywords", include_noise=False)
    out += [_negative(e, "custom-speech-commands") for e in custom]
    out += [_negative(e, "precise-community") for e in read_precise_community(shared / "precise-community")
            if e.split != "noise" and not any(k in e.text.lower() for k in ("computer", "alexa", "jarvis"))]
    train_noise, _ = noise_files(shared)
    for path in train_noise:
        out += _segments(ManifestEntry(path=path, label=NEGATIVE, engine="noise", speaker=Path(path).stem),
                         work / "real" / "noise_segments")
    return out


def transcribed_speech(shared: Path) -> list[ManifestEntry]:
    """Real training speech with transcripts, for the phone task: the LibriSpeech training speakers' whole
    utterances, the FSDD training speakers' digits and the Precise-Community and custom-command words whose
    words are known. The same speakers as :func:`real_training_negatives`; no benchmark keyword."""
    out = [e for e in librispeech(shared) if e.speaker in LIBRISPEECH_TRAIN_SPEAKERS]
    out += [_negative(e, "fsdd") for e in read_fsdd(shared / "fsdd") if e.speaker not in FSDD_EVAL_SPEAKERS]
    for e in read_label_folders(shared / "custom-speech-commands" / "custom_keywords", include_noise=False):
        if e.label != "joke":  # the joke requests are free sentences without a transcript
            out.append(ManifestEntry(path=e.path, label=NEGATIVE, text=e.label.replace("_", " "),
                                     engine="custom-speech-commands", speaker=e.speaker, split="train"))
    out += [_negative(e, "precise-community") for e in read_precise_community(shared / "precise-community")
            if e.split != "noise" and e.text and e.text.lower() in PRECISE_SPELLED]
    return out


def training_sentences(shared: Path) -> list[str]:
    """Transcripts of the LibriSpeech training speakers, one utterance per line: text for running-speech
    TTS negatives (`synth` group `prose`). Nothing of the false-alarm stream's speakers."""
    return [e.text for e in librispeech(shared) if e.speaker in LIBRISPEECH_TRAIN_SPEAKERS and e.text]


def _by_speaker(entries: list[ManifestEntry]) -> dict[str, list[ManifestEntry]]:
    groups: dict[str, list[ManifestEntry]] = {}
    for e in entries:
        groups.setdefault(e.speaker, []).append(e)
    return groups


def _negative(entry: ManifestEntry, source: str) -> ManifestEntry:
    return ManifestEntry(path=entry.path, label=NEGATIVE, text=entry.text, engine=source, speaker=entry.speaker,
                         split="train")


def reference_speakers(shared: Path) -> dict[str, list[str]]:
    """Recordings per real *training* speaker, whose pitch statistics voice conversion aims at:
    the LibriSpeech training speakers, the FSDD training speakers and the Precise-Community contributors."""
    groups: dict[str, list[str]] = {}
    for e in librispeech(shared):
        if e.speaker in LIBRISPEECH_TRAIN_SPEAKERS:
            groups.setdefault(f"librispeech:{e.speaker}", []).append(e.path)
    for e in read_fsdd(shared / "fsdd"):
        if e.speaker not in FSDD_EVAL_SPEAKERS:
            groups.setdefault(f"fsdd:{e.speaker}", []).append(e.path)
    for e in read_precise_community(shared / "precise-community"):
        if e.split != "noise" and e.speaker:
            groups.setdefault(f"precise:{e.speaker}", []).append(e.path)
    return groups


# ------------------------------------------------------------------------------------ synthetic data


def write_manifests(keyword: str, synth_dirs: list[Path], real: list[ManifestEntry], out: Path,
                    max_keyword_seconds: float, repeats: dict[Path, int] | None = None) -> dict[str, int]:
    """``out/train.jsonl`` and ``out/dev.jsonl`` for one keyword; returns clip counts. ``repeats`` lists the
    training clips of a corpus folder that many times (the dev split is never repeated)."""
    entries: list[ManifestEntry] = []
    copies: dict[int, int] = {}
    for folder in synth_dirs:
        corpus = synthetic_entries(folder / "manifest.jsonl", keyword, max_keyword_seconds)
        copies.update({id(e): int((repeats or {}).get(folder, 1)) for e in corpus})
        entries += corpus
    held = held_out_speakers({e.speaker for e in entries}, DEV_SHARE)
    for entry in entries:
        entry.split = "dev" if entry.speaker in held else "train"
    entries = [e for e in entries for _ in range(copies[id(e)] if e.split == "train" else 1)]
    entries += real
    counts = {}
    for split in ("train", "dev"):
        part = [e for e in entries if e.split == split]
        write_manifest(out / f"{split}.jsonl", part)
        counts[split] = len(part)
        counts[f"{split}_{keyword}"] = sum(e.label == keyword for e in part)
    (out / "counts.json").write_text(json.dumps(counts, indent=1) + "\n")
    return counts
