"""Readers that turn common on-disk data set layouts into ``list[ManifestEntry]`` (and MNIST into tensors).

Nothing is downloaded: every reader takes a local folder.
"""

from __future__ import annotations

import csv
import gzip
import os
import re
from pathlib import Path

import numpy as np

from speechconv.data.manifest import ManifestEntry, read_manifest  # noqa: F401  (re-exported)
from speechconv.errors import SpeechconvError

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")
BACKGROUND_NOISE = "_background_noise_"
FSDD_DEFAULT_TEST_SPEAKERS = ("theo",)

__all__ = [
    "read_label_folders",
    "read_fsdd",
    "read_wake_word_keywords",
    "read_precise_community",
    "read_manifest",
    "read_mnist",
]


class DatasetError(SpeechconvError):
    """A data set folder is missing or does not have the expected layout."""


def _require_dir(root: str | os.PathLike) -> Path:
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: data set folder not found")
    return root


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def _read_list(path: Path) -> set[str]:
    if not path.is_file():
        return set()
    return {line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()}


def read_label_folders(
    root: str | os.PathLike, labels: list[str] | None = None, include_noise: bool = True
) -> list[ManifestEntry]:
    """Folder-per-label layouts (``root/<label>/*.wav``), including Google Speech Commands v1/v2.

    When ``validation_list.txt`` / ``testing_list.txt`` exist, ``split`` is "validation" / "test"
    for the listed files and "train" otherwise (empty when there are no lists). ``_background_noise_``
    files get label "_background_noise_" and split "noise". The speaker is the part of the file name
    before ``_nohash_`` (Speech Commands naming), else empty. ``labels`` keeps only those folders.
    """
    root = _require_dir(root)
    validation = _read_list(root / "validation_list.txt")
    testing = _read_list(root / "testing_list.txt")
    has_lists = bool(validation or testing)
    entries = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        label = folder.name
        if label == BACKGROUND_NOISE:
            if include_noise:
                entries.extend(
                    ManifestEntry(path=str(f), label=label, split="noise") for f in _audio_files(folder)
                )
            continue
        if labels is not None and label not in labels:
            continue
        for clip in _audio_files(folder):
            rel = f"{label}/{clip.name}"
            split = (
                ("validation" if rel in validation else "test" if rel in testing else "train")
                if has_lists
                else ""
            )
            speaker = clip.stem.split("_nohash_")[0] if "_nohash_" in clip.stem else ""
            entries.append(ManifestEntry(path=str(clip), label=label, speaker=speaker, split=split))
    if not entries:
        raise DatasetError(f"{root}: no audio files in label folders")
    return entries


_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)$")


def read_fsdd(
    root: str | os.PathLike,
    split: str = "official",
    test_speakers: tuple[str, ...] = FSDD_DEFAULT_TEST_SPEAKERS,
) -> list[ManifestEntry]:
    """Free Spoken Digit Dataset: ``{digit}_{speaker}_{index}.wav`` under ``root`` or ``root/recordings``.

    ``split="official"``: take index 0-4 is "test", the rest "train". ``split="speaker"``: files of
    ``test_speakers`` are "test", the rest "train" (speaker-independent evaluation).
    """
    root = _require_dir(root)
    if split not in ("official", "speaker"):
        raise DatasetError(f"{root}: FSDD split must be 'official' or 'speaker', got {split!r}")
    folder = root / "recordings" if (root / "recordings").is_dir() else root
    entries = []
    for clip in _audio_files(folder):
        match = _FSDD_NAME.match(clip.stem)
        if not match:
            continue
        digit, speaker, index = match.group(1), match.group(2), int(match.group(3))
        if split == "official":
            part = "test" if index < 5 else "train"
        else:
            part = "test" if speaker in test_speakers else "train"
        entries.append(ManifestEntry(path=str(clip), label=digit, text=digit, speaker=speaker, split=part))
    if not entries:
        raise DatasetError(f"{folder}: no FSDD files named {{digit}}_{{speaker}}_{{index}}.wav")
    if split == "speaker" and not any(e.split == "test" for e in entries):
        raise DatasetError(f"{folder}: none of the test speakers {', '.join(test_speakers)} is present")
    return entries


def read_wake_word_keywords(root: str | os.PathLike) -> list[ManifestEntry]:
    """Picovoice wake-word-benchmark layout: ``root/<keyword>/*.flac`` (label = folder name).

    File names there are numbers or UUIDs without speaker ids; a name of the form
    ``<speaker>_<anything>`` or ``<speaker>-<n>`` would give a speaker, else it stays empty.
    """
    root = _require_dir(root)
    entries = []
    for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for clip in _audio_files(folder):
            stem = clip.stem
            uuid_or_number = re.fullmatch(r"[0-9a-fA-F-]{8,}|\d+", stem) is not None
            match = re.match(r"^([A-Za-z][A-Za-z0-9]*)[_-]", stem)
            speaker = match.group(1) if (match and not uuid_or_number) else ""
            entries.append(
                ManifestEntry(
                    path=str(clip), label=folder.name, text=folder.name.replace("_", " "), speaker=speaker
                )
            )
    if not entries:
        raise DatasetError(f"{root}: no audio files in keyword folders")
    return entries


def _precise_speakers(root: Path) -> dict[str, str]:
    """File name -> contributor, from ``licenses/license-YYYYMMDD-<user>.txt`` file lists."""
    speakers: dict[str, str] = {}
    licenses = root / "licenses"
    if not licenses.is_dir():
        return speakers
    for license_file in sorted(licenses.glob("license-*.txt")):
        match = re.match(r"license-\d{8}-(.+)$", license_file.stem)
        if not match:
            continue
        user = match.group(1)
        for line in license_file.read_text(encoding="utf-8", errors="ignore").splitlines():
            name = line.strip().rsplit("/", 1)[-1]
            if name.endswith((".wav", ".tar.gz")):
                speakers[name.removesuffix(".tar.gz")] = user
    return speakers


def read_precise_community(root: str | os.PathLike) -> list[ManifestEntry]:
    """Mycroft Precise-Community-Data layout.

    - ``not-wake-words/<lang>/*.wav`` with ``metadata.csv`` (``file,transcript,...``):
      label "not-wake-word", text = transcript.
    - ``not-wake-words/noises/**.wav``: label "noise", split "noise".
    - ``<wakeword>/<lang>/*.wav`` for any other folder (e.g. computer, heycomputer, heychatterbox):
      label = folder name.
    Speakers come from the contributors' license files when present.
    """
    root = _require_dir(root)
    speakers = _precise_speakers(root)

    def speaker_of(clip: Path) -> str:
        return speakers.get(clip.name) or next(
            (speakers[p.name] for p in clip.parents if p.name in speakers), ""
        )

    entries = []
    not_wake = root / "not-wake-words"
    if not_wake.is_dir():
        for lang in sorted(p for p in not_wake.iterdir() if p.is_dir()):
            if lang.name == "noises":
                for clip in sorted(p for p in lang.rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS):
                    entries.append(
                        ManifestEntry(path=str(clip), label="noise", split="noise", speaker=speaker_of(clip))
                    )
                continue
            transcripts = {}
            metadata = lang / "metadata.csv"
            if metadata.is_file():
                with open(metadata, encoding="utf-8", newline="") as handle:
                    for row in csv.reader(handle):
                        if len(row) >= 2:
                            transcripts[row[0].strip()] = row[1].strip()
            for clip in _audio_files(lang):
                entries.append(
                    ManifestEntry(
                        path=str(clip),
                        label="not-wake-word",
                        text=transcripts.get(clip.name, ""),
                        speaker=speaker_of(clip),
                        params={"language": lang.name},
                    )
                )
    for word in sorted(
        p for p in root.iterdir() if p.is_dir() and p.name not in ("not-wake-words", "licenses")
    ):
        for lang in sorted(p for p in word.iterdir() if p.is_dir() and p.name != "models"):
            for clip in _audio_files(lang):
                entries.append(
                    ManifestEntry(
                        path=str(clip),
                        label=word.name,
                        text=word.name,
                        speaker=speaker_of(clip),
                        params={"language": lang.name},
                    )
                )
    if not entries:
        raise DatasetError(f"{root}: no Precise-Community-Data clips found")
    return entries


# ---------------------------------------------------------------- MNIST (IDX files)

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed) into a numpy array."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as err:
        raise DatasetError(f"{path}: cannot read IDX file ({err})") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_DTYPES:
        raise DatasetError(f"{path}: not an IDX file (bad magic number)")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[data[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(data) - header != expected:
        raise DatasetError(f"{path}: IDX payload has {len(data) - header} bytes, header says {expected}")
    return np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)


def _find_idx(root: Path, prefix: str, kind: str) -> Path:
    for name in (
        f"{prefix}-{kind}",
        f"{prefix}-{kind}.gz",
        f"{prefix}-{kind}.approx.gz",
        f"{prefix}-{kind}.approx",
    ):
        for folder in (root, root / "raw", root / "MNIST" / "raw"):
            if (folder / name).is_file():
                return folder / name
    raise DatasetError(f"{root}: no {prefix}-{kind}[.gz|.approx.gz] file (MNIST is never downloaded)")


def read_mnist(root: str | os.PathLike, train: bool):
    """MNIST from local IDX files: ``(images uint8 (N, 28, 28), labels int64 (N,))`` as torch tensors.

    Accepts ``train-images-idx3-ubyte[.gz]`` and the ``.approx.gz`` name of the project's shared copy.
    """
    import torch

    root = _require_dir(root)
    prefix = "train" if train else "t10k"
    images = read_idx(_find_idx(root, prefix, "images-idx3-ubyte"))
    labels = read_idx(_find_idx(root, prefix, "labels-idx1-ubyte"))
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DatasetError(
            f"{root}: MNIST {prefix} images {images.shape} and labels {labels.shape} do not match"
        )
    return torch.from_numpy(images.astype(np.uint8)), torch.from_numpy(labels.astype(np.int64))
