"""Manifests (round trips) and dataset readers on tiny generated layouts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechconv.data.manifest import ManifestEntry, ManifestError, read_manifest, write_manifest
from speechconv.data.readers import (
    DatasetError,
    read_fsdd,
    read_idx,
    read_label_folders,
    read_mnist,
    read_precise_community,
    read_wake_word_keywords,
)


def _wav(path: Path, seconds: float = 0.05, rate: int = 16000) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, np.zeros(int(seconds * rate), dtype=np.float32), rate, subtype="PCM_16")
    return path


def _entries(root: Path) -> list[ManifestEntry]:
    return [
        ManifestEntry(
            str(root / "clips" / "a.wav"),
            "keyword",
            "hello there",
            "espeak",
            "en-us+f3",
            {"speed_wpm": 150, "nested": {"x": [1, 2]}},
            0.75,
            "spk1",
            "train",
        ),
        ManifestEntry(
            str(root / "b, with comma.wav"), "negative", 'say "yellow", ok', params={}, duration=1.5
        ),
        ManifestEntry("/abs/elsewhere/c.wav", "negative"),
    ]


@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".tsv"])
def test_manifest_round_trip(tmp_path, suffix):
    entries = _entries(tmp_path)
    path = write_manifest(tmp_path / f"manifest{suffix}", entries)
    assert read_manifest(path) == entries
    assert not list(tmp_path.glob(".*tmp"))  # atomic write leaves no temp file


def test_manifest_paths_are_relative_and_move_with_the_folder(tmp_path):
    write_manifest(tmp_path / "corpus" / "m.jsonl", _entries(tmp_path / "corpus"))
    first = json.loads((tmp_path / "corpus" / "m.jsonl").read_text().splitlines()[0])
    assert first["path"] == "clips/a.wav"
    (tmp_path / "corpus").rename(tmp_path / "moved")
    moved = read_manifest(tmp_path / "moved" / "m.jsonl")
    assert moved[0].path == str(tmp_path / "moved" / "clips" / "a.wav")
    assert moved[2].path == "/abs/elsewhere/c.wav"


def test_manifest_csv_extra_columns_and_errors(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("path,label,params,source_id\nx.wav,yes,,42\n")
    (entry,) = read_manifest(path)
    assert (
        entry.label == "yes" and entry.params == {"source_id": "42"} and entry.path == str(tmp_path / "x.wav")
    )
    path.write_text('path,label,params\nx.wav,yes,"{bad"\n')
    with pytest.raises(ManifestError, match=r"m\.csv:2: 'params' is not valid JSON"):
        read_manifest(path)
    path.write_text("file,label\nx.wav,yes\n")
    with pytest.raises(ManifestError, match="must include 'path' and 'label'"):
        read_manifest(path)
    with pytest.raises(ManifestError, match="unsupported manifest extension"):
        read_manifest(tmp_path / "m.txt")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"path": "a.wav", "label": "x"}\nnot json\n')
    with pytest.raises(ManifestError, match=r"bad\.jsonl:2: invalid JSON"):
        read_manifest(bad)


def test_speech_commands_layout(tmp_path):
    for rel in [
        "yes/aa11_nohash_0.wav",
        "yes/bb22_nohash_1.wav",
        "no/aa11_nohash_2.wav",
        "no/cc33_nohash_0.wav",
        "_background_noise_/white_noise.wav",
    ]:
        _wav(tmp_path / rel)
    (tmp_path / "_background_noise_" / "README.md").write_text("noise")
    (tmp_path / "validation_list.txt").write_text("yes/bb22_nohash_1.wav\n")
    (tmp_path / "testing_list.txt").write_text("no/cc33_nohash_0.wav\n")
    got = {
        Path(e.path).relative_to(tmp_path).as_posix(): (e.label, e.split, e.speaker)
        for e in read_label_folders(tmp_path)
    }
    assert got == {
        "yes/aa11_nohash_0.wav": ("yes", "train", "aa11"),
        "yes/bb22_nohash_1.wav": ("yes", "validation", "bb22"),
        "no/aa11_nohash_2.wav": ("no", "train", "aa11"),
        "no/cc33_nohash_0.wav": ("no", "test", "cc33"),
        "_background_noise_/white_noise.wav": ("_background_noise_", "noise", ""),
    }
    only_yes = read_label_folders(tmp_path, labels=["yes"], include_noise=False)
    assert {e.label for e in only_yes} == {"yes"}


def test_plain_label_folders_have_no_split(tmp_path):
    _wav(tmp_path / "joke" / "joke_2020.wav")
    (entry,) = read_label_folders(tmp_path)
    assert (entry.label, entry.split, entry.speaker) == ("joke", "", "")
    with pytest.raises(DatasetError, match="not found"):
        read_label_folders(tmp_path / "missing")


def test_fsdd_official_and_speaker_splits(tmp_path):
    rec = tmp_path / "recordings"
    for digit in (3, 7):
        for speaker in ("george", "theo"):
            for index in (0, 4, 5, 49):
                _wav(rec / f"{digit}_{speaker}_{index}.wav", rate=8000)
    _wav(rec / "notes.wav")  # not an FSDD name: ignored
    official = read_fsdd(tmp_path)
    assert len(official) == 16
    for e in official:
        digit, speaker, index = Path(e.path).stem.split("_")
        assert (e.label, e.speaker) == (digit, speaker)
        assert e.split == ("test" if int(index) <= 4 else "train")
    by_speaker = read_fsdd(rec, split="speaker", test_speakers=("george",))
    assert all(e.split == ("test" if e.speaker == "george" else "train") for e in by_speaker)
    with pytest.raises(DatasetError, match="none of the test speakers"):
        read_fsdd(tmp_path, split="speaker", test_speakers=("nobody",))
    with pytest.raises(DatasetError, match="'official' or 'speaker'"):
        read_fsdd(tmp_path, split="random")


def test_wake_word_keywords_layout(tmp_path):
    _wav(tmp_path / "alexa" / "12.flac")
    _wav(tmp_path / "smart_mirror" / "007b3f76-b1a0-4c5c-aeb9-d9422a36f666.flac")
    _wav(tmp_path / "jarvis" / "anna_003.flac")
    got = {e.label: (e.text, e.speaker) for e in read_wake_word_keywords(tmp_path)}
    assert got == {"alexa": ("alexa", ""), "smart_mirror": ("smart mirror", ""), "jarvis": ("jarvis", "anna")}


def test_precise_community_layout(tmp_path):
    nww = tmp_path / "not-wake-words" / "en"
    _wav(nww / "notwakeword-en-1.wav")
    _wav(nww / "notwakeword-en-2.wav")
    (nww / "metadata.csv").write_text(
        "notwakeword-en-1.wav,aardvark,en,\nnotwakeword-en-2.wav,wine glass,en,\n"
    )
    _wav(tmp_path / "not-wake-words" / "noises" / "bg_noise-20201215-jarbas" / "bg_noise.wav")
    _wav(tmp_path / "computer" / "en" / "computer-en-9.wav")
    _wav(tmp_path / "heychatterbox" / "en-us" / "heychatterbox-en-us-1.wav")
    (tmp_path / "computer" / "en" / "README.md").write_text("phonemes")
    lic = tmp_path / "licenses"
    lic.mkdir()
    (lic / "license-20190814-alice.txt").write_text(
        "Files released into public domain:\n"
        "not-wake-words/en/notwakeword-en-1.wav\ncomputer/en/computer-en-9.wav\n"
    )
    (lic / "license-20201215-jarbas.txt").write_text(
        "not-wake-words/noises/bg_noise-20201215-jarbas.tar.gz\n"
    )
    got = {Path(e.path).name: (e.label, e.text, e.speaker, e.split) for e in read_precise_community(tmp_path)}
    assert got == {
        "notwakeword-en-1.wav": ("not-wake-word", "aardvark", "alice", ""),
        "notwakeword-en-2.wav": ("not-wake-word", "wine glass", "", ""),
        "bg_noise.wav": ("noise", "", "jarbas", "noise"),
        "computer-en-9.wav": ("computer", "computer", "alice", ""),
        "heychatterbox-en-us-1.wav": ("heychatterbox", "heychatterbox", "", ""),
    }


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


def test_mnist_idx_reader_matches_torchvision(tmp_path):
    from torchvision.datasets.mnist import read_image_file, read_label_file

    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(7, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, size=7, dtype=np.uint8)
    _write_idx(tmp_path / "train-images-idx3-ubyte.approx.gz", images, compress=True)  # shared-copy name
    _write_idx(tmp_path / "train-labels-idx1-ubyte.gz", labels, compress=True)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte", images[:3], compress=False)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte", labels[:3], compress=False)
    x, y = read_mnist(tmp_path, train=True)
    assert x.dtype.is_floating_point is False and tuple(x.shape) == (7, 28, 28)
    assert np.array_equal(x.numpy(), images) and np.array_equal(y.numpy(), labels)
    x_test, y_test = read_mnist(tmp_path, train=False)
    assert np.array_equal(x_test.numpy(), read_image_file(str(tmp_path / "t10k-images-idx3-ubyte")).numpy())
    assert np.array_equal(y_test.numpy(), read_label_file(str(tmp_path / "t10k-labels-idx1-ubyte")).numpy())


def test_idx_errors_name_the_file(tmp_path):
    bad = tmp_path / "x-idx1-ubyte"
    bad.write_bytes(b"\x01\x02\x03")
    with pytest.raises(DatasetError, match="x-idx1-ubyte: not an IDX file"):
        read_idx(bad)
    short = tmp_path / "s-idx1-ubyte"
    short.write_bytes(bytes([0, 0, 8, 1]) + (5).to_bytes(4, "big") + b"\x00\x01")
    with pytest.raises(DatasetError, match="header says 5"):
        read_idx(short)
    with pytest.raises(DatasetError, match="never downloaded"):
        read_mnist(tmp_path, train=True)
