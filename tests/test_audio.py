"""speechconv.audio: loading, downmix, resampling, block reader, errors, saving, file discovery."""

from __future__ import annotations

import io
import math
import os
import sys
import tracemalloc

import numpy as np
import pytest
import soundfile as sf
import torch

from speechconv.audio import (
    AUDIO_EXTENSIONS,
    AudioError,
    AudioInfo,
    audio_info,
    find_audio_files,
    iter_audio_blocks,
    load_audio,
    save_audio,
)
from speechconv.errors import ConfigError


def sine(
    freq: float, sample_rate: int, seconds: float, amplitude: float = 0.5, phase: float = 0.0
) -> np.ndarray:
    t = np.arange(round(seconds * sample_rate)) / sample_rate
    return amplitude * np.sin(2 * np.pi * freq * t + phase)


def peak_frequency(wave: np.ndarray, sample_rate: int) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.argmax(spectrum) * sample_rate / len(wave))


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    return 10 * math.log10(np.sum(reference**2) / np.sum((reference - estimate) ** 2))


# --- formats ---------------------------------------------------------------------------------

# (extension, format, subtype, max abs error vs. the float64 sine): one quantisation step of the subtype.
LOSSLESS = [
    ("wav", "WAV", "PCM_U8", 1 / 128),
    ("wav", "WAV", "PCM_16", 1 / 2**15),
    ("wav", "WAV", "PCM_24", 1 / 2**23),
    ("wav", "WAV", "PCM_32", 1e-7),  # float32 resolution dominates
    ("wav", "WAV", "FLOAT", 1e-7),
    ("wav", "WAV", "DOUBLE", 1e-7),
    ("flac", "FLAC", "PCM_16", 1 / 2**15),
    ("flac", "FLAC", "PCM_24", 1 / 2**23),
    ("aiff", "AIFF", "PCM_16", 1 / 2**15),
    ("au", "AU", "PCM_16", 1 / 2**15),
]


@pytest.mark.parametrize("ext,fmt,subtype,tol", LOSSLESS, ids=[f"{f}-{s}" for _, f, s, _ in LOSSLESS])
def test_lossless_round_trip_matches_sine(tmp_path, ext, fmt, subtype, tol):
    reference = sine(440, 16000, 0.5)
    path = tmp_path / f"x.{ext}"
    sf.write(path, reference, 16000, format=fmt, subtype=subtype)

    wave, rate = load_audio(path)

    assert rate == 16000
    assert wave.dtype == torch.float32 and wave.ndim == 1 and len(wave) == len(reference)
    assert np.max(np.abs(wave.numpy() - reference)) <= tol + 1e-7
    info = audio_info(path)
    assert info == AudioInfo(str(path), 0.5, 16000, 1, 8000, fmt, subtype)


LOSSY = [("ogg", "OGG", "VORBIS"), ("opus", "OGG", "OPUS"), ("mp3", "MP3", "MPEG_LAYER_III")]


@pytest.mark.parametrize("ext,fmt,subtype", LOSSY, ids=[s for _, _, s in LOSSY])
def test_lossy_formats_load_the_same_tone(tmp_path, ext, fmt, subtype):
    if not sf.check_format(fmt, subtype):
        pytest.skip(f"libsndfile {sf.__libsndfile_version__} cannot write {fmt}/{subtype}")
    rate = 48000 if subtype == "OPUS" else 16000
    reference = sine(1000, rate, 1.0)
    path = tmp_path / f"x.{ext}"
    sf.write(path, reference, rate, format=fmt, subtype=subtype)

    wave, got_rate = load_audio(path)
    wave = wave.numpy()

    assert got_rate == rate
    assert abs(len(wave) - len(reference)) <= rate // 20  # codecs may pad by a frame
    middle = wave[rate // 4 : rate // 2]
    assert abs(peak_frequency(middle, rate) - 1000) <= 2 * rate / len(middle)
    rms = np.sqrt(np.mean(middle**2))
    assert rms == pytest.approx(0.5 / math.sqrt(2), rel=0.1)


@pytest.mark.parametrize("channels", [2, 6])
def test_multichannel_is_downmixed_to_mean(tmp_path, channels):
    rng = np.random.default_rng(0)
    frames = rng.uniform(-0.5, 0.5, size=(4000, channels)).astype(np.float32)
    path = tmp_path / "multi.wav"
    sf.write(path, frames, 16000, subtype="FLOAT")

    wave, _ = load_audio(path)

    np.testing.assert_allclose(wave.numpy(), frames.mean(axis=1), atol=1e-7)
    assert audio_info(path).channels == channels


def test_float_file_beyond_full_scale_is_clipped(tmp_path):
    path = tmp_path / "hot.wav"
    sf.write(path, np.array([0.5, 1.5, -2.0, -0.25]), 16000, subtype="FLOAT")
    wave, _ = load_audio(path)
    np.testing.assert_array_equal(wave.numpy(), np.array([0.5, 1.0, -1.0, -0.25], dtype=np.float32))


# --- resampling ------------------------------------------------------------------------------


@pytest.mark.parametrize("source_rate", [8000, 22050, 44100, 48000])
def test_resampling_to_16k_keeps_length_and_frequency(tmp_path, source_rate):
    freq, seconds = 1000.0, 1.0
    path = tmp_path / "tone.wav"
    sf.write(path, sine(freq, source_rate, seconds), source_rate, subtype="FLOAT")

    wave, rate = load_audio(path, sample_rate=16000)
    wave = wave.numpy()

    assert rate == 16000
    assert len(wave) == round(seconds * 16000)
    assert peak_frequency(wave, 16000) == pytest.approx(freq, abs=16000 / len(wave))
    # Away from the edges the result is the same sine sampled at 16 kHz.
    expected = sine(freq, 16000, seconds)
    interior = slice(800, -800)
    assert snr_db(expected[interior], wave[interior]) > 60


def test_same_rate_is_not_resampled(tmp_path):
    reference = sine(300, 16000, 0.25).astype(np.float32)
    path = tmp_path / "same.wav"
    sf.write(path, reference, 16000, subtype="FLOAT")
    wave, _ = load_audio(path, sample_rate=16000)
    np.testing.assert_array_equal(wave.numpy(), reference)


@pytest.mark.parametrize("bad_rate", [0, 500, 10**6, 16000.0, True])
def test_bad_target_rate_is_a_config_error(tmp_path, bad_rate):
    path = tmp_path / "x.wav"
    sf.write(path, sine(300, 16000, 0.1), 16000)
    with pytest.raises(ConfigError, match="sample_rate"):
        load_audio(path, sample_rate=bad_rate)
    with pytest.raises(ConfigError, match="sample_rate"):
        iter_audio_blocks(path, bad_rate)


# --- block reader ----------------------------------------------------------------------------


def test_blocks_at_native_rate_are_exact_and_bounded(tmp_path):
    rng = np.random.default_rng(1)
    frames = rng.uniform(-0.8, 0.8, size=(16000 * 3 + 123, 2))
    path = tmp_path / "stereo.flac"
    sf.write(path, frames, 16000, subtype="PCM_24")

    chunks = list(iter_audio_blocks(path, 16000, block_seconds=0.5))

    assert [len(c) for c in chunks] == [8000] * 6 + [123]
    assert all(c.dtype == torch.float32 and c.ndim == 1 for c in chunks)
    assert torch.equal(torch.cat(chunks), load_audio(path)[0])


@pytest.mark.parametrize("source_rate", [8000, 44100])
def test_resampled_blocks_concatenate_to_load_audio(tmp_path, source_rate):
    rng = np.random.default_rng(2)
    x = sine(440, source_rate, 2.3) + 0.05 * rng.standard_normal(round(2.3 * source_rate))
    path = tmp_path / "long.wav"
    sf.write(path, np.stack([x, 0.5 * x], axis=1), source_rate, subtype="FLOAT")

    chunks = list(iter_audio_blocks(path, 16000, block_seconds=0.25))
    whole, _ = load_audio(path, 16000)

    joined = torch.cat(chunks)
    assert len(joined) == len(whole) == round(2.3 * 16000)
    assert torch.max(torch.abs(joined - whole)).item() < 1e-4
    # soxr emits irregular pieces; the reader regroups them into exact block_seconds chunks.
    assert [len(c) for c in chunks] == [4000] * 9 + [800]


def _streaming_peak_bytes(path) -> tuple[int, int]:
    tracemalloc.start()
    total = 0
    for chunk in iter_audio_blocks(path, 16000, block_seconds=0.5):
        total += len(chunk)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return total, peak


def test_block_reader_memory_does_not_grow_with_file_length(tmp_path):
    rate = 44100
    peaks = {}
    for seconds in (5, 40):
        path = tmp_path / f"{seconds}s.wav"
        tone = (sine(1000, rate, seconds) * 32767).astype(np.int16)
        sf.write(path, np.stack([tone, tone], axis=1), rate, subtype="PCM_16")
        total, peaks[seconds] = _streaming_peak_bytes(path)
        assert total == seconds * 16000

    decoded_bytes = rate * 40 * 4  # a single float32 mono copy of the long file
    assert peaks[40] < decoded_bytes / 10, f"peak {peaks[40]} bytes while streaming"
    assert peaks[40] < 1.25 * peaks[5] + 65536, peaks  # 8x longer file, same memory


def test_nan_in_a_later_block_raises_naming_the_file(tmp_path):
    x = sine(300, 16000, 2.0)
    x[16000 + 5] = np.nan
    path = tmp_path / "late_nan.wav"
    sf.write(path, x, 16000, subtype="FLOAT")

    blocks = iter_audio_blocks(path, 16000, block_seconds=0.5)
    assert len(next(blocks)) == 8000 and len(next(blocks)) == 8000  # the clean blocks come out
    with pytest.raises(AudioError) as err:
        next(blocks)
    assert err.value.path == str(path)
    assert "frame 16005" in err.value.reason and "NaN" in err.value.reason


@pytest.mark.parametrize("block_seconds", [0, -1.0, math.nan, math.inf, "1"])
def test_block_seconds_must_be_positive_and_finite(tmp_path, block_seconds):
    with pytest.raises(ConfigError, match="block_seconds"):
        iter_audio_blocks(tmp_path / "x.wav", 16000, block_seconds=block_seconds)


# --- bad input -------------------------------------------------------------------------------


def _write_bad(kind: str, folder) -> str:
    path = folder / f"{kind}.wav"
    if kind == "missing":
        pass
    elif kind == "directory":
        path = folder / "a_folder"
        path.mkdir()
    elif kind == "not_audio":
        path.write_text("this is a text file, not a RIFF/WAVE file\n" * 20)
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated_header":
        sf.write(path, sine(300, 16000, 0.1), 16000)
        path.write_bytes(path.read_bytes()[:30])
    elif kind == "corrupt_header":
        sf.write(path, sine(300, 16000, 0.1), 16000)
        data = bytearray(path.read_bytes())
        data[8:12] = b"XXXX"  # "WAVE" tag
        path.write_bytes(bytes(data))
    elif kind == "corrupt_data":
        path = folder / "corrupt_data.flac"
        sf.write(path, np.random.default_rng(0).uniform(-0.5, 0.5, 48000), 16000)
        data = bytearray(path.read_bytes())
        data[len(data) // 2 : len(data) // 2 + 2000] = bytes(2000)  # zero out frames mid-stream
        path.write_bytes(bytes(data))
    elif kind == "zero_samples":
        sf.write(path, np.zeros(0), 16000)
    elif kind == "nan":
        sf.write(path, np.array([0.0, 0.1, np.nan, 0.2]), 16000, subtype="FLOAT")
    elif kind == "inf":
        sf.write(path, np.array([0.0, np.inf, 0.2]), 16000, subtype="DOUBLE")
    elif kind == "rate_too_low":
        sf.write(path, np.zeros(100), 500)
    elif kind == "rate_too_high":
        sf.write(path, np.zeros(100), 400_000)
    return str(path)


BAD = {
    "missing": "no such file",
    "directory": "directory",
    "not_audio": "not an audio file",
    "empty": "empty",
    "truncated_header": "corrupt header",
    "corrupt_header": "not an audio file",
    "zero_samples": "no audio samples",
    "corrupt_data": "corrupt audio data",
    "nan": "NaN or Inf",
    "inf": "NaN or Inf",
    "rate_too_low": "sample rate 500",
    "rate_too_high": "sample rate 400000",
}
HEADER_PROBLEMS = {k for k in BAD if k not in ("nan", "inf", "corrupt_data")}  # audio_info reads headers only


@pytest.mark.parametrize("kind", sorted(BAD))
def test_bad_input_raises_audio_error_naming_the_file(tmp_path, kind):
    path = _write_bad(kind, tmp_path)
    readers = [load_audio, lambda p: list(iter_audio_blocks(p, 16000))]
    if kind in HEADER_PROBLEMS:
        readers.append(audio_info)
    for read in readers:
        with pytest.raises(AudioError) as err:
            read(path)
        assert err.value.path == path
        assert BAD[kind] in err.value.reason
        assert str(err.value) == f"{path}: {err.value.reason}"
        assert "\n" not in str(err.value)


def test_audio_error_is_a_speechconv_error_and_pickles():
    import pickle

    from speechconv.errors import SpeechconvError

    err = pickle.loads(pickle.dumps(AudioError("a.wav", "no such file")))
    assert isinstance(err, SpeechconvError)
    assert (err.path, err.reason, str(err)) == ("a.wav", "no such file", "a.wav: no such file")


# --- stdin and file objects ------------------------------------------------------------------


def _wav_bytes(x: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, x, rate, format="WAV", subtype=subtype)
    return buffer.getvalue()


class _Pipe(io.RawIOBase):
    """A readable, non-seekable byte stream, like a shell pipe."""

    def __init__(self, data: bytes):
        self._data = io.BytesIO(data)

    def readable(self):
        return True

    def seekable(self):
        return False

    def readinto(self, buffer):
        chunk = self._data.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


def test_dash_reads_stdin(monkeypatch, tmp_path):
    x = sine(500, 8000, 0.5)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(_Pipe(_wav_bytes(x, 8000))))

    wave, rate = load_audio("-", sample_rate=16000)

    reference_path = tmp_path / "same.wav"
    reference_path.write_bytes(_wav_bytes(x, 8000))
    assert rate == 16000
    assert torch.equal(wave, load_audio(reference_path, 16000)[0])


def test_dash_stdin_errors_say_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(_Pipe(b"not audio at all" * 10)))
    with pytest.raises(AudioError, match=r"^<stdin>: not an audio file"):
        load_audio("-")


def test_file_objects_seekable_and_not(tmp_path):
    x = sine(700, 16000, 0.3)
    data = _wav_bytes(x, 16000, "FLOAT")
    expected = torch.from_numpy(x.astype(np.float32))
    assert torch.equal(load_audio(io.BytesIO(data))[0], expected)
    assert torch.equal(torch.cat(list(iter_audio_blocks(_Pipe(data), 16000, 0.1))), expected)
    assert audio_info(io.BytesIO(data)).path == "<stdin>"
    path = tmp_path / "named.wav"
    path.write_bytes(b"junk" * 50)
    with open(path, "rb") as handle, pytest.raises(AudioError) as err:
        load_audio(handle)
    assert err.value.path == str(path)


# --- saving ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ext,subtype,tol", [("wav", "PCM_16", 1 / 2**15), ("flac", "PCM_24", 1 / 2**23), ("wav", "FLOAT", 0.0)]
)
def test_save_round_trip_and_no_temp_files(tmp_path, ext, subtype, tol):
    x = torch.from_numpy(sine(440, 16000, 0.2).astype(np.float32))
    path = tmp_path / f"out.{ext}"
    save_audio(path, x, 16000, subtype=subtype)

    info = audio_info(path)
    wave, _ = load_audio(path)
    assert (info.sample_rate, info.subtype, info.frames) == (16000, subtype, len(x))
    assert torch.max(torch.abs(wave - x)).item() <= tol
    assert os.listdir(tmp_path) == [f"out.{ext}"]


def test_save_multichannel_channels_first(tmp_path):
    stereo = np.stack([sine(440, 8000, 0.1), -sine(440, 8000, 0.1)]).astype(np.float32)
    path = tmp_path / "stereo.wav"
    save_audio(path, stereo, 8000, subtype="FLOAT")
    read, _ = sf.read(path, dtype="float32")
    np.testing.assert_array_equal(read, stereo.T)


def test_save_clips_pcm_instead_of_wrapping(tmp_path):
    path = tmp_path / "loud.wav"
    save_audio(path, np.array([0.5, 1.7, -3.0]), 16000)
    wave, _ = load_audio(path)
    np.testing.assert_allclose(wave.numpy(), [0.5, 1.0, -1.0], atol=1 / 2**15)


def test_failed_save_keeps_the_old_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "keep.wav"
    save_audio(path, sine(440, 16000, 0.1), 16000)
    before = path.read_bytes()
    for bad in [dict(subtype="VORBIS"), dict(wave=np.array([0.0, np.nan]))]:
        args = dict(wave=sine(440, 16000, 0.1), sample_rate=16000) | bad
        with pytest.raises(AudioError, match=str(path)):
            save_audio(path, **args)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["keep.wav"]
    with pytest.raises(AudioError, match="extension"):
        save_audio(tmp_path / "x.unknown", sine(440, 16000, 0.1), 16000)


# --- discovery -------------------------------------------------------------------------------


def test_find_audio_files_expands_folders_sorted_and_keeps_the_rest(tmp_path):
    root = tmp_path / "data"
    for rel in [
        "b/2.wav",
        "b/1.FLAC",
        "a/x.mp3",
        "a/deep/y.opus",
        "top.ogg",
        "notes.txt",
        "a/._x.wav",
        ".hidden/z.wav",
        "c/readme.md",
    ]:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(b"")
    loose = tmp_path / "loose.txt"
    loose.write_text("kept: files are taken as given")

    found = find_audio_files(
        [str(root), str(loose), "-", str(tmp_path / "missing.wav"), str(root / "top.ogg")]
    )

    j = os.path.join
    assert found == [
        j(root, "a", "deep", "y.opus"),
        j(root, "a", "x.mp3"),
        j(root, "b", "1.FLAC"),
        j(root, "b", "2.wav"),
        j(root, "top.ogg"),
        str(loose),
        "-",
        str(tmp_path / "missing.wav"),
    ]
    assert find_audio_files(str(root / "b")) == [j(root, "b", "1.FLAC"), j(root, "b", "2.wav")]
    assert set(AUDIO_EXTENSIONS) >= {".wav", ".flac", ".ogg", ".mp3", ".opus"}


def test_active_span_is_the_one_activity_rule():
    """Trimming, the end of speech in a clip and the active power of an SNR reference share one rule."""
    from speechconv.audio.activity import active_power, active_span
    from speechconv.data.augment import signal_power
    from speechconv.data.synth import trim_silence
    from speechconv.training.datamodules import speech_end

    rate = 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)
    audio = np.concatenate([np.zeros(rate // 4), tone, 1e-4 * np.ones(rate // 4)]).astype(np.float32)
    assert active_span(audio, rate) == (rate // 4, rate // 4 + rate // 2)  # the 1e-4 tail is 70 dB down
    assert active_span(np.zeros(rate, np.float32), rate) is None
    assert len(trim_silence(audio, rate, pad_s=0.0)) == rate // 2
    assert speech_end(torch.from_numpy(audio), rate) == rate // 4 + rate // 2
    expected = float(np.mean(tone.astype(np.float64) ** 2))
    # 20 ms frames: the two that straddle the tone's edges count too (within 30 dB), so a little below
    assert active_power(audio, rate) == pytest.approx(expected, rel=0.05)
    assert signal_power(torch.from_numpy(audio), "active", rate) == active_power(audio, rate)
