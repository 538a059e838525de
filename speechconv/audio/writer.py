"""Writing audio files: atomically (temporary file + rename), devices and pipes in place, format by suffix."""

from __future__ import annotations

import io
import os
import sys
import tempfile

import numpy as np
import soundfile as sf

from speechconv.audio.io import AudioError, _libsndfile_message, check_sample_rate

_FLOAT_SUBTYPES = ("FLOAT", "DOUBLE", "VORBIS", "OPUS")


def _as_numpy(wave) -> np.ndarray:
    if hasattr(wave, "detach"):  # torch.Tensor
        wave = wave.detach().to("cpu").numpy()
    return np.asarray(wave)


def save_audio(path: str | os.PathLike[str], wave, sample_rate: int, subtype: str = "PCM_16") -> None:
    """Write ``wave`` atomically (temporary file in the same folder, then ``os.replace``).

    ``wave`` is 1-D (mono) or 2-D ``(channels, frames)``, as a tensor or array, float in [-1, 1].
    The container follows the file extension (``.wav``, ``.flac``, ``.ogg``, ...); ``"-"`` writes
    WAV to standard output. PCM subtypes are clipped to full scale rather than wrapped.
    """
    name = os.fspath(path)
    sample_rate = check_sample_rate(sample_rate)
    data = _as_numpy(wave)
    if data.ndim == 2:
        data = data.T  # soundfile wants (frames, channels)
    elif data.ndim != 1:
        raise AudioError(name, f"cannot write a {data.ndim}-D array (expected 1-D or (channels, frames))")
    if data.size == 0:
        raise AudioError(name, "refusing to write an empty signal")
    data = np.asarray(data, dtype=np.float64 if data.dtype == np.float64 else np.float32)
    if not np.isfinite(data).all():
        raise AudioError(name, "refusing to write NaN or Inf samples")
    if subtype.upper() not in _FLOAT_SUBTYPES:
        data = np.clip(data, -1.0, 1.0)

    if name == "-":
        buffer = io.BytesIO()
        _write(name, buffer, data, sample_rate, subtype, "WAV")
        sys.stdout.buffer.write(buffer.getvalue())
        sys.stdout.buffer.flush()
        return

    folder, base = os.path.split(os.path.abspath(name))
    if not os.path.isdir(folder):
        raise AudioError(name, "folder does not exist")
    stem, ext = os.path.splitext(base)
    fmt = _format_for_extension(name, ext)
    fd, tmp = tempfile.mkstemp(prefix=f".{stem}.", suffix=f"{ext}.tmp", dir=folder)
    os.close(fd)
    try:
        _write(name, tmp, data, sample_rate, subtype, fmt)
        os.replace(tmp, name)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _format_for_extension(name: str, ext: str) -> str:
    if not ext:
        raise AudioError(name, "no file extension to choose the audio format from (e.g. .wav, .flac)")
    ext_key = ext.lower().lstrip(".")
    fmt = {"aif": "AIFF", "aifc": "AIFF", "opus": "OGG", "oga": "OGG", "snd": "AU"}.get(
        ext_key, ext_key.upper()
    )
    if fmt not in sf.available_formats():
        raise AudioError(name, f"cannot write files with extension {ext!r} (unknown audio format)")
    return fmt


def _write(name: str, target, data: np.ndarray, sample_rate: int, subtype: str, fmt: str) -> None:
    if not sf.check_format(fmt, subtype):
        raise AudioError(name, f"subtype {subtype!r} is not valid for format {fmt}")
    try:
        sf.write(target, data, sample_rate, subtype=subtype, format=fmt)
    except (sf.LibsndfileError, RuntimeError, ValueError, TypeError) as err:
        raise AudioError(name, f"cannot write audio ({_libsndfile_message(err)})") from None
    except OSError as err:
        raise AudioError(name, f"cannot write ({err.strerror or err})") from None
