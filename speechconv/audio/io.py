"""Reading and checking audio files.

Everything libsndfile decodes is accepted (WAV PCM/float, FLAC, OGG Vorbis/Opus, MP3, AIFF, ...); writing
is in :mod:`speechconv.audio.writer`.
Audio comes back mono (channels averaged), float32 in [-1, 1], optionally resampled with soxr.
Every way an input can be bad raises one error type, :class:`AudioError`, naming the file.
"""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Union

import numpy as np
import soundfile as sf

from speechconv.errors import ConfigError, SpeechconvError

if TYPE_CHECKING:
    import torch

AudioSource = Union[str, "os.PathLike[str]", IO[bytes]]

MIN_SAMPLE_RATE = 1_000
MAX_SAMPLE_RATE = 384_000
STDIN_NAME = "<stdin>"
# Non-seekable streams (pipes) are spooled: in memory up to this size, on disk beyond it.
_SPOOL_MAX_BYTES = 32 * 1024 * 1024


class AudioError(SpeechconvError):
    """An audio input that cannot be used. ``str(err) == f"{path}: {reason}"``."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason

    def __reduce__(self):  # keep pickling (multiprocessing data loaders) working
        return (type(self), (self.path, self.reason))


class TruncatedAudio(AudioError):
    """The audio stops before its end: the file is cut short, or decoding fails part-way.

    ``seconds`` of audio (at the file's rate) were decoded before the damage. The block reader raises
    it after it has yielded those seconds, so callers can keep what came before.
    """

    def __init__(self, path: str, seconds: float, detail: str) -> None:
        super().__init__(path, f"truncated at {seconds:.3f} s: {detail}")
        self.seconds = seconds
        self.detail = detail

    def __reduce__(self):
        return (type(self), (self.path, self.seconds, self.detail))


@dataclass(frozen=True)
class AudioInfo:
    """Header facts of one audio file."""

    path: str
    duration: float  # seconds
    sample_rate: int
    channels: int
    frames: int
    format: str  # libsndfile major format, e.g. "WAV", "FLAC"
    subtype: str  # e.g. "PCM_16", "FLOAT", "VORBIS"


def source_name(source: AudioSource) -> str:
    """Name used for ``source`` in messages: the path, or ``<stdin>`` for ``-`` and unnamed streams."""
    if isinstance(source, (str, os.PathLike)):
        name = os.fspath(source)
        return STDIN_NAME if name == "-" else name
    name = getattr(source, "name", None)
    return name if isinstance(name, str) and name else STDIN_NAME


def check_sample_rate(sample_rate: int, what: str = "sample_rate") -> int:
    """Validate a requested (not file) sample rate; raise ConfigError when out of range."""
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer)):
        raise ConfigError(f"{what} must be an integer, got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= sample_rate <= MAX_SAMPLE_RATE:
        raise ConfigError(f"{what}={sample_rate} is outside {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE} Hz")
    return int(sample_rate)


def _seekable(stream: IO[bytes]) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


def _spool(stream: IO[bytes]) -> IO[bytes]:
    """Copy a non-seekable stream into a seekable spooled temporary file (libsndfile needs seek)."""
    spooled = tempfile.SpooledTemporaryFile(max_size=_SPOOL_MAX_BYTES)
    shutil.copyfileobj(stream, spooled, length=1 << 20)
    spooled.seek(0)
    return spooled


def _stdin_bytes() -> IO[bytes]:
    stdin = sys.stdin
    if stdin is None:
        raise AudioError(STDIN_NAME, "no standard input to read from")
    if stdin.isatty():
        raise AudioError(STDIN_NAME, "standard input is a terminal; pipe audio into it (e.g. '< file.wav')")
    return getattr(stdin, "buffer", stdin)


def _check_path(name: str) -> None:
    """What ``name`` is, when it is not a readable, non-empty regular file, as an AudioError."""
    try:
        st = os.stat(name)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise AudioError(name, "symbolic link loop") from None
        if err.errno == errno.ENOENT and os.path.islink(name):
            raise AudioError(name, "broken symbolic link (its target does not exist)") from None
        if err.errno == errno.ENOENT:
            raise AudioError(name, "no such file") from None
        if err.errno == errno.EACCES:
            raise AudioError(name, "permission denied") from None
        raise AudioError(name, (err.strerror or str(err)).lower()) from None
    if stat.S_ISDIR(st.st_mode):
        raise AudioError(name, "is a directory, not an audio file")
    if stat.S_ISFIFO(st.st_mode):
        raise AudioError(name, "is a named pipe (FIFO), not a file (pipe it to '-' instead)")
    if stat.S_ISCHR(st.st_mode) or stat.S_ISBLK(st.st_mode):
        raise AudioError(name, "is a device, not an audio file")
    if stat.S_ISSOCK(st.st_mode):
        raise AudioError(name, "is a socket, not an audio file")
    if not os.access(name, os.R_OK):
        raise AudioError(name, "permission denied")
    if st.st_size == 0:
        raise AudioError(name, "empty file (0 bytes)")


def _check_header(name: str, f: sf.SoundFile) -> None:
    if not MIN_SAMPLE_RATE <= f.samplerate <= MAX_SAMPLE_RATE:
        raise AudioError(
            name, f"absurd sample rate {f.samplerate} Hz (expected {MIN_SAMPLE_RATE}..{MAX_SAMPLE_RATE})"
        )
    if f.channels < 1:
        raise AudioError(name, f"invalid channel count {f.channels}")
    if f.frames <= 0:
        raise AudioError(name, "no audio samples (0 frames)")


_devnull_fd: int | None = None


@contextmanager
def quiet_c_stderr() -> Iterator[None]:
    """Mute what C libraries print on file descriptor 2 while the block runs: libmpg123 (inside libsndfile)
    prints warnings and notes about damaged MP3 frames there. The damage itself is reported as an AudioError."""
    global _devnull_fd
    try:
        if _devnull_fd is None:
            _devnull_fd = os.open(os.devnull, os.O_WRONLY)
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError, AttributeError):  # no fd 2 to redirect: nothing to mute
        yield
        return
    os.dup2(_devnull_fd, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def _sf_path(name: str) -> str | bytes:
    """The path as libsndfile opens it: bytes on POSIX, so names that are not valid UTF-8 (held by Python
    as surrogate escapes) reach the file system unchanged."""
    return name if os.name == "nt" else os.fsencode(name)


@contextmanager
def open_audio(source: AudioSource) -> Iterator[tuple[str, sf.SoundFile]]:
    """Open ``source`` for reading and validate its header.

    Yields ``(name, soundfile)``; ``name`` is what error messages call the source.
    ``"-"`` reads standard input. Raises :class:`AudioError` on any bad input.
    """
    name = source_name(source)
    owned: IO[bytes] | None = None
    if isinstance(source, (str, os.PathLike)):
        if os.fspath(source) == "-":
            owned = _spool(_stdin_bytes())
            target: str | IO[bytes] = owned
        else:
            _check_path(name)
            target = _sf_path(name)
    else:
        if not hasattr(source, "read"):
            raise TypeError(f"expected a path or a binary file object, got {type(source).__name__}")
        if _seekable(source):
            target = source
        else:
            owned = _spool(source)
            target = owned
    try:
        try:
            with quiet_c_stderr():
                f = sf.SoundFile(target)
        except (sf.LibsndfileError, RuntimeError, TypeError, ValueError) as err:
            raise AudioError(
                name, f"not an audio file or corrupt header ({_libsndfile_message(err)})"
            ) from None
        except OSError as err:
            raise AudioError(name, f"cannot read ({err.strerror or err})") from None
        with f:
            _check_header(name, f)
            yield name, f
    finally:
        if owned is not None:
            owned.close()


def _libsndfile_message(err: Exception) -> str:
    message = str(getattr(err, "error_string", "") or err).strip()
    return message.rstrip(".") or type(err).__name__


def read_block(f: sf.SoundFile, frames: int) -> tuple[np.ndarray, str | None]:
    """Read up to ``frames`` frames as float32 of shape (n, channels).

    Returns ``(frames read, damage)``: ``damage`` is None, or why decoding stopped (the frames decoded
    before the failure are still returned). 16-bit PCM is decoded as int16 and scaled by 2**-15 here: the
    same floats as libsndfile's own float conversion (an int16 is exact in float32 and the scale is a power
    of two), several times faster.
    """
    pcm16 = is_pcm16(f)
    start = f.tell()
    remaining = max(0, f.frames - start)
    frames = remaining if frames < 0 else min(frames, remaining)
    buffer = np.empty((frames, f.channels), dtype=np.int16 if pcm16 else np.float32)
    damage = None
    try:
        with quiet_c_stderr() if _is_mpeg(f) else nullcontext():
            raw = f.read(frames, dtype=str(buffer.dtype), always_2d=True, out=buffer)
    except (sf.LibsndfileError, RuntimeError) as err:
        detail = re.sub(r"^Error\s*:\s*", "", _libsndfile_message(err))
        damage = f"corrupt audio data ({detail})"
        raw = buffer[: _frames_decoded_before_error(f, start, frames)]
    if pcm16:
        return np.multiply(raw, np.float32(2.0**-15), dtype=np.float32), damage
    return raw, damage


def _frames_decoded_before_error(f: sf.SoundFile, start: int, requested: int) -> int:
    """After a decode error libsndfile's position still counts the frames it decoded into the buffer."""
    try:
        decoded = f.tell() - start
    except (sf.LibsndfileError, RuntimeError):
        return 0
    return decoded if 0 <= decoded <= requested else 0


def _is_mpeg(f: sf.SoundFile) -> bool:
    return str(f.format) == "MP3" or str(f.subtype).startswith("MPEG")


# libsndfile logs "data : <header size> (should be <bytes present>)" for a data chunk cut short.
_CHUNK_SIZE_LOG = re.compile(r"^\s*(?:data|SSND|Data Size)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
# Sizes that streaming writers put in a header they cannot go back to fix (0xFFFFFFFF and similar).
_PLACEHOLDER_SIZE = 0x7FFF0000
_SAMPLE_BYTES = {"PCM_S8": 1, "PCM_U8": 1, "PCM_16": 2, "PCM_24": 3, "PCM_32": 4, "FLOAT": 4, "DOUBLE": 8,
                 "ULAW": 1, "ALAW": 1}
# MP3 frame counts come from the Xing/LAME header or an estimate; allow two MPEG frames of slack.
_MPEG_SLACK_FRAMES = 2 * 1152


def truncation(f: sf.SoundFile, frames_decoded: int) -> str | None:
    """Why a file that decoded ``frames_decoded`` frames without error is cut short, or None."""
    rate = f.samplerate
    if frames_decoded < f.frames < 2**62:  # a frame count from the header that decoding did not reach
        slack = _MPEG_SLACK_FRAMES if _is_mpeg(f) else 0
        if f.frames - frames_decoded > slack:
            return f"the header says {f.frames / rate:.3f} s"
    try:
        log = f.extra_info
    except (sf.LibsndfileError, RuntimeError, AttributeError):
        return None
    match = _CHUNK_SIZE_LOG.search(log)
    if match:
        declared, present = int(match.group(1)), int(match.group(2))
        frame_bytes = f.channels * _SAMPLE_BYTES.get(str(f.subtype), 1)
        if declared < _PLACEHOLDER_SIZE and declared - present >= frame_bytes:
            return f"the header says {declared / frame_bytes / rate:.3f} s"
    if "Last page lacks an end-of-stream bit" in log:
        return "the last Ogg page has no end-of-stream mark"
    return None


def is_pcm16(f: sf.SoundFile) -> bool:
    """True for 16-bit integer PCM, whose samples are always finite and within [-1, 1)."""
    return str(f.subtype) == "PCM_16"


def downmix(frames: np.ndarray, copy: bool = True) -> np.ndarray:
    """(n, channels) -> (n,) float32 by averaging channels; ``copy=False`` may return a view of mono input."""
    if frames.shape[1] == 1:
        return np.array(frames[:, 0], dtype=np.float32, copy=copy or None)
    return frames.mean(axis=1, dtype=np.float32)


def check_finite(name: str, samples: np.ndarray, sample_rate: int, offset: int = 0) -> None:
    """Raise AudioError if ``samples`` (starting at frame ``offset``) holds NaN or Inf."""
    if np.isfinite(np.sum(samples)):  # cheap first pass: NaN/Inf make the sum non-finite
        return
    finite = np.isfinite(samples)
    if not finite.all():
        first = offset + int(np.argmin(finite.reshape(len(samples), -1).all(axis=1)))
        raise AudioError(
            name, f"contains NaN or Inf samples (first at frame {first}, {first / sample_rate:.3f} s)"
        )


def clip_unit(samples: np.ndarray) -> np.ndarray:
    """Clip in place to [-1, 1] (float files and resampling overshoot may exceed full scale)."""
    return np.clip(samples, -1.0, 1.0, out=samples)


def make_resampler(in_rate: int, out_rate: int):
    """A stateful soxr high-quality resampler for mono float32 audio."""
    import soxr

    return soxr.ResampleStream(in_rate, out_rate, num_channels=1, dtype="float32", quality="HQ")


def resample_all(samples: np.ndarray, in_rate: int, out_rate: int) -> np.ndarray:
    """Resample a whole mono signal. Uses the same streaming resampler as the block reader,
    so a file read in blocks matches a file read at once."""
    if in_rate == out_rate:
        return samples
    resampler = make_resampler(in_rate, out_rate)
    return np.ascontiguousarray(resampler.resample_chunk(samples, last=True), dtype=np.float32)


def audio_info(path: AudioSource) -> AudioInfo:
    """Read and validate the header of ``path`` (samples are not decoded). Raises AudioError."""
    with open_audio(path) as (name, f):
        return AudioInfo(
            path=name,
            duration=f.frames / f.samplerate,
            sample_rate=int(f.samplerate),
            channels=int(f.channels),
            frames=int(f.frames),
            format=str(f.format),
            subtype=str(f.subtype),
        )


def load_audio(path: AudioSource, sample_rate: int | None = None) -> tuple[torch.Tensor, int]:
    """:func:`load_audio_array` as a torch tensor (sharing its memory)."""
    import torch

    wave, rate = load_audio_array(path, sample_rate)
    return torch.from_numpy(wave), rate


def load_audio_array(path: AudioSource, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Load a whole file as a mono float32 1-D numpy array in [-1, 1].

    Parameters
    ----------
    path : a file path, ``"-"`` for standard input, or a binary file object.
    sample_rate : resample to this rate (soxr, high quality); ``None`` keeps the file's rate.

    Returns
    -------
    (wave, rate) where ``rate == sample_rate`` when given. Samples beyond full scale (float files,
    resampling overshoot) are clipped to [-1, 1].
    """
    if sample_rate is not None:
        sample_rate = check_sample_rate(sample_rate)
    with open_audio(path) as (name, f):
        rate = int(f.samplerate)
        frames, damage = read_block(f, -1)
        damage = damage or truncation(f, len(frames))
    mono = downmix(frames)
    if damage is not None:
        raise TruncatedAudio(name, len(mono) / rate, damage)
    if mono.size == 0:
        raise AudioError(name, "no audio samples could be decoded")
    check_finite(name, mono, rate)
    target = rate if sample_rate is None else sample_rate
    return clip_unit(resample_all(mono, rate, target)), target
