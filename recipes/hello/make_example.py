"""Generate the bundled example recording ``speechconv/pretrained/examples/hello_example.wav``.

Four "hello"s among other phrases, all spoken by TTS voices that the bundled model never saw in
training (its evaluation voices), over generated noise (pink noise plus a mains hum) at ``SNR_DB``. Nothing
from ../shared/data is used, so the file carries no third-party license. The ground truth goes to
``hello_example.csv`` (``start,end,label,text``; label ``hello`` or ``speech``; a span covers the
whole phrase, so "hello there" spans both words).

    python recipes/hello/make_example.py [--out speechconv/pretrained/examples] [--seed 7]
"""

from __future__ import annotations

import argparse
import csv
import io
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from speechconv.data.manifest import atomic_write_text
from speechconv.data.synth import trim_silence
from speechconv.data.tts import TtsJob, synthesize_jobs

SAMPLE_RATE = 16000
SNR_DB = 18.0
LEAD_S, GAP_S, TAIL_S = 0.8, (0.7, 1.3), 1.0
# (text, engine, voice, params): voices that the bundled model's training held out (train-keyword's
# evaluation voices of recipes/hello: festival ked, the espeak-ng variants Mike, Annie, belinda, Jacky and
# Gene2, and the Kokoro-82M style blends 07 and 33; Kokoro-82M is Apache-2.0).
SCRIPT = (
    ("good morning, everyone", "festival", "ked_diphone", {"duration_stretch": 1.0, "f0_mean_hz": 120.0}),
    ("hello", "espeak", "en+Mike", {"speed_wpm": 150, "pitch": 55}),
    ("the weather is nice today", "espeak", "en-US+Annie", {"speed_wpm": 165, "pitch": 60}),
    ("hello there", "kokoro", "blend33", {"speed": 1.0, "dialect": "en-us"}),
    ("turn on the kitchen lights", "espeak", "en-GB-x-rp+belinda", {"speed_wpm": 160, "pitch": 60}),
    ("seven", "espeak", "en+Jacky", {"speed_wpm": 150, "pitch": 30}),
    ("hello", "festival", "ked_diphone", {"duration_stretch": 1.1, "f0_mean_hz": 110.0}),
    ("what time is it", "kokoro", "blend07", {"speed": 1.0, "dialect": "en-us"}),
    ("oh, hello", "espeak", "en-US+Annie", {"speed_wpm": 160, "pitch": 55}),
    ("see you later", "espeak", "en-GB-x-gbclan+Gene2", {"speed_wpm": 160, "pitch": 35}),
)


def pink_noise(n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-RMS noise with a 1/f power spectrum (white noise shaped in the frequency domain)."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n)
    f[0] = f[1]
    noise = np.fft.irfft(spectrum / np.sqrt(f), n)
    return noise / np.sqrt(np.mean(noise**2))


def background(n: int, rng: np.random.Generator) -> np.ndarray:
    """Pink noise plus a weak 50 Hz hum with harmonics, unit RMS."""
    t = np.arange(n) / SAMPLE_RATE
    hum = sum(np.sin(2 * np.pi * 50 * k * t + rng.uniform(0, 2 * np.pi)) / k for k in (1, 2, 3))
    mix = pink_noise(n, rng) + 0.3 * hum / np.sqrt(np.mean(hum**2))
    return mix / np.sqrt(np.mean(mix**2))


def render(script=SCRIPT) -> list[np.ndarray]:
    """Each phrase at 16 kHz, silence-trimmed, peak-normalised to -6 dBFS."""
    with tempfile.TemporaryDirectory(prefix="speechconv-example-") as work:
        jobs = [TtsJob(text, engine, voice, params, str(Path(work) / f"{i}.wav"))
                for i, (text, engine, voice, params) in enumerate(script)]
        errors = synthesize_jobs(jobs, work)
        failed = [f"{job.voice}: {err}" for job, err in zip(jobs, errors) if err]
        if failed:
            raise SystemExit("TTS failed: " + "; ".join(failed))
        clips = []
        for job in jobs:
            audio, rate = sf.read(job.out_path, dtype="float32", always_2d=True)
            audio = soxr.resample(audio.mean(axis=1), rate, SAMPLE_RATE, quality="HQ")
            audio = trim_silence(audio, SAMPLE_RATE)
            clips.append(audio * (0.5 / np.max(np.abs(audio))))
    return clips


def compose(clips: list[np.ndarray], seed: int) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Place the clips with random gaps over noise at ``SNR_DB`` (speech power over all phrases)."""
    rng = np.random.default_rng(seed)
    gaps = [LEAD_S] + [float(rng.uniform(*GAP_S)) for _ in clips[1:]]
    starts, position = [], 0
    for gap, clip in zip(gaps, clips):
        position += int(gap * SAMPLE_RATE)
        starts.append(position)
        position += len(clip)
    total = position + int(TAIL_S * SAMPLE_RATE)
    speech = np.zeros(total)
    for start, clip in zip(starts, clips):
        speech[start:start + len(clip)] += clip
    speech_power = np.mean(np.concatenate(clips) ** 2)
    noise = background(total, rng) * np.sqrt(speech_power / 10 ** (SNR_DB / 10))
    mix = speech + noise
    mix *= 0.9 / max(0.9, np.max(np.abs(mix)))
    spans = [(s / SAMPLE_RATE, (s + len(c)) / SAMPLE_RATE) for s, c in zip(starts, clips)]
    return mix.astype(np.float32), spans


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[2] / "speechconv" /
                        "pretrained" / "examples")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    audio, spans = compose(render(), args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    wav = args.out / "hello_example.wav"
    sf.write(str(wav), audio, SAMPLE_RATE, subtype="PCM_16")
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["start", "end", "label", "text"])
    for (start, end), (text, *_rest) in zip(spans, SCRIPT):
        label = "hello" if "hello" in text else "speech"
        writer.writerow([f"{start:.3f}", f"{end:.3f}", label, text])
    atomic_write_text(args.out / "hello_example.csv", buffer.getvalue())
    print(f"wrote {wav} ({len(audio) / SAMPLE_RATE:.1f} s, {wav.stat().st_size / 1024:.0f} KiB) "
          f"and {args.out / 'hello_example.csv'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
