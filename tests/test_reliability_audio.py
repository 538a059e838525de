"""Audio reader reliability: non-UTF-8 file names, one truncation policy for every format, quiet MP3 decoding."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf
import torch

from speechconv.audio import AudioError, TruncatedAudio, audio_info, iter_audio_blocks, load_audio

RATE = 16000
SECONDS = 4.0


def tone(seconds: float = SECONDS) -> np.ndarray:
    t = np.arange(round(seconds * RATE)) / RATE
    noise = np.random.default_rng(0).normal(0, 0.05, len(t))
    return (0.3 * np.sin(2 * np.pi * 440 * t) + noise).astype(np.float32)


# --- file names that are not UTF-8 ------------------------------------------------------------------


def test_file_name_that_is_not_utf8_is_read(tmp_path):
    good = tmp_path / "good.wav"
    sf.write(good, tone(0.5), RATE)
    raw_name = os.path.join(os.fsencode(tmp_path), b"caf\xe9.wav")  # Latin-1 bytes: not valid UTF-8
    os.rename(os.fsencode(good), raw_name)
    name = os.fsdecode(raw_name)  # what os.listdir and argv give Python: surrogate escapes

    assert audio_info(name).frames == round(0.5 * RATE)
    assert len(load_audio(name)[0]) == round(0.5 * RATE)
    assert sum(len(b) for b in iter_audio_blocks(name, RATE)) == round(0.5 * RATE)
    info = subprocess.run([sys.executable, "-m", "speechconv.cli.main", "info", str(tmp_path)], capture_output=True,
                          timeout=60)
    assert info.returncode == 0, info.stderr
    assert info.stdout.startswith(raw_name) and b"frames=8000" in info.stdout  # the name's own bytes, like ls


# --- truncated files: one policy for every format ---------------------------------------------------

FORMATS = [
    ("wav", {}),
    ("flac", {}),
    ("ogg", {"subtype": "VORBIS"}),
    ("opus", {"format": "OGG", "subtype": "OPUS"}),
    ("mp3", {"subtype": "MPEG_LAYER_III"}),
    ("aiff", {}),
    ("au", {}),
]


def write_truncated(folder, ext: str, options: dict) -> tuple[str, str]:
    """(complete file, the same file cut in half)."""
    full = folder / f"full.{ext}"
    try:
        sf.write(full, tone(), RATE, **options)
    except (sf.LibsndfileError, ValueError, TypeError) as err:
        pytest.skip(f"this libsndfile cannot write {ext}: {err}")
    data = full.read_bytes()
    cut = folder / f"cut.{ext}"
    cut.write_bytes(data[: len(data) // 2])
    return str(full), str(cut)


@pytest.mark.parametrize("ext,options", FORMATS, ids=[f for f, _ in FORMATS])
def test_truncated_file_yields_the_audio_before_the_damage_then_raises(tmp_path, ext, options):
    full, cut = write_truncated(tmp_path, ext, options)
    assert sum(len(b) for b in iter_audio_blocks(full, RATE, 0.5)) == pytest.approx(SECONDS * RATE, abs=RATE * 0.05)

    blocks = []
    with pytest.raises(TruncatedAudio) as err:
        for block in iter_audio_blocks(cut, RATE, 0.5):
            blocks.append(block)
    seconds = sum(len(b) for b in blocks) / RATE
    assert 0.3 < seconds < SECONDS - 0.5  # the part before the cut, not nothing and not the whole
    assert err.value.seconds == pytest.approx(seconds, abs=1e-3)
    assert err.value.path == cut and isinstance(err.value, AudioError)
    assert str(err.value).startswith(f"{cut}: truncated at {err.value.seconds:.3f} s: ")
    assert "\n" not in str(err.value)

    with pytest.raises(TruncatedAudio, match=r"truncated at \d+\.\d{3} s"):
        load_audio(cut)


def test_truncated_blocks_equal_the_start_of_the_complete_file(tmp_path):
    full, cut = write_truncated(tmp_path, "flac", {})
    blocks = []
    with pytest.raises(TruncatedAudio):
        for block in iter_audio_blocks(cut, RATE, 1.0):
            blocks.append(block)
    partial = torch.cat(blocks)
    assert torch.equal(partial, load_audio(full)[0][: len(partial)])


def test_streamed_wav_with_placeholder_size_is_not_truncated(tmp_path):
    path = tmp_path / "streamed.wav"
    sf.write(path, tone(1.0), RATE)
    data = bytearray(path.read_bytes())
    at = data.index(b"data")
    data[at + 4 : at + 8] = (0xFFFFFFFF).to_bytes(4, "little")  # what a writer to a pipe leaves there
    data[4:8] = (0xFFFFFFFF).to_bytes(4, "little")
    path.write_bytes(bytes(data))
    assert len(load_audio(path)[0]) == RATE
    assert sum(len(b) for b in iter_audio_blocks(path, RATE)) == RATE


def test_truncated_pickles_with_its_seconds():
    import pickle

    err = pickle.loads(pickle.dumps(TruncatedAudio("a.flac", 1.5, "corrupt audio data (lost sync)")))
    assert (err.path, err.seconds, str(err)) == ("a.flac", 1.5, "a.flac: truncated at 1.500 s: corrupt audio data "
                                                 "(lost sync)")


def test_libmpg123_messages_do_not_reach_stderr(tmp_path, capfd):
    full, cut = write_truncated(tmp_path, "mp3", {"subtype": "MPEG_LAYER_III"})
    damaged = tmp_path / "damaged.mp3"
    data = bytearray(open(full, "rb").read())
    middle = len(data) // 2
    data[middle : middle + 200] = bytes((b * 7 + 13) % 256 for b in data[middle : middle + 200])
    damaged.write_bytes(bytes(data))
    capfd.readouterr()
    for path in (cut, str(damaged)):
        try:
            for _ in iter_audio_blocks(path, RATE):
                pass
        except AudioError:
            pass
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
