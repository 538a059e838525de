"""Third-party anchors for the wake-word benchmark: detectors we did not build, scored on the same stream.

pocketsphinx (BSD-2-Clause) keyphrase spotting with its bundled en-us model, and openWakeWord 0.4.0
(code Apache-2.0). openWakeWord's pre-trained models are CC BY-NC-SA 4.0: we run them for measurement only,
loading them from the installed package. Never copy them into this repository or ship them with our models.
Nothing here downloads anything.

Both anchors read a 16 kHz mono WAV in blocks, so memory stays flat for streams hours long.

    python recipes/wakeword_benchmark/anchors.py pocketsphinx stream.wav --keyphrase computer --out ps.npz
    python recipes/wakeword_benchmark/anchors.py openwakeword stream.wav --model alexa_v0.1 --out oww.npz
"""

from __future__ import annotations

import argparse
import math
import time
import warnings
from pathlib import Path
from typing import NamedTuple

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000

# --- pocketsphinx ----------------------------------------------------------------------------------------------

# kws_search.c reports a hit's score as (keyphrase score - best phone-loop score) - KWS_MAX, in log units
# shifted right by SENSCR_SHIFT; a hit fires when the unshifted-back difference reaches log(kws_threshold).
KWS_MAX = 1500
SENSCR_SHIFT = 10
# Permissive threshold: one decoding pass records every hit the search beam lets through (the threshold does not
# change the search, only which hits are kept), each with its score, so any stricter threshold is a filter.
# The search beam, not this threshold, bounds the list (about 200 hits per hour of LibriSpeech for "computer").
PERMISSIVE_KWS_THRESHOLD = 1e-300
FRAMES_PER_SECOND = 100

# The four benchmark words are all in the bundled cmudict-en-us.dict, so no pronunciation is added:
#   alexa AH L EH K S AH | computer K AH M P Y UW T ER | jarvis JH AA R V AH S | smart S M AA R T, mirror M IH R ER
# Keyphrase search uses a word's first pronunciation only, so jarvis(2) JH AA R V IH S is not searched.


class KeyphraseHits(NamedTuple):
    """pocketsphinx hits, sorted by time.

    times: seconds in the stream where the keyphrase ends (when pocketsphinx reports it).
    scores: the largest log10(kws_threshold) at which pocketsphinx still reports the hit; a decode with
        kws_threshold=T reports exactly the hits with score >= log10(T).
    starts: seconds in the stream where the keyphrase starts.
    """

    times: np.ndarray
    scores: np.ndarray
    starts: np.ndarray


def pocketsphinx_detections(
    wav_path: str | Path,
    keyphrase: str,
    *,
    block_seconds: float = 120.0,
    context_seconds: float = 5.0,
    pronunciations: dict[str, str] | None = None,
) -> KeyphraseHits:
    """Spot ``keyphrase`` in a 16 kHz mono WAV with one pocketsphinx decoding pass; sweep thresholds on ``scores``.

    Each block is one utterance (start_utt/end_utt), decoded with ``context_seconds`` of the previous block
    before it so a keyphrase across the boundary is still seen whole; hits ending in that context belong to
    the previous block. ``pronunciations`` adds words missing from the bundled dictionary (ARPAbet phones).
    """
    from pocketsphinx import Config, Decoder

    keyphrase = " ".join(keyphrase.lower().split())
    decoder = Decoder(Config(lm=None, kws_threshold=PERMISSIVE_KWS_THRESHOLD, kws_delay=0, loglevel="FATAL"))
    for word, phones in (pronunciations or {}).items():
        decoder.add_word(word, phones, True)
    missing = [word for word in keyphrase.split() if decoder.lookup_word(word) is None]
    if missing:
        raise ValueError(f"not in the pocketsphinx dictionary: {missing}; pass pronunciations={{word: phones}}")
    decoder.add_keyphrase("anchor", keyphrase)
    decoder.activate_search("anchor")
    log_base = float(decoder.config["logbase"])

    hits: list[tuple[float, float, float]] = []  # (start, end, score)
    block = int(round(block_seconds * SAMPLE_RATE))
    context = int(round(context_seconds * SAMPLE_RATE))
    with sf.SoundFile(str(wav_path)) as wav:
        _check_format(wav)
        for owned_start in range(0, wav.frames, block):
            read_start = max(0, owned_start - context)
            wav.seek(read_start)
            audio = wav.read(owned_start + block - read_start, dtype="int16")
            decoder.start_utt()
            # full_utt=False: streaming cepstral mean normalisation, carried across blocks, as a live detector runs
            decoder.process_raw(audio.tobytes(), False, False)
            decoder.end_utt()
            for seg in decoder.seg() or []:  # None when there is no hit
                end = read_start / SAMPLE_RATE + (seg.end_frame + 1) / FRAMES_PER_SECOND  # end_frame is inclusive
                if end * SAMPLE_RATE < owned_start:
                    continue
                start = read_start / SAMPLE_RATE + seg.start_frame / FRAMES_PER_SECOND
                hits.append((start, end, _log10_threshold(seg.prob, log_base)))
    hits = _merge_overlaps(hits)
    starts, ends, scores = (np.array(column, dtype=np.float64) for column in zip(*hits)) if hits else [np.zeros(0)] * 3
    return KeyphraseHits(times=ends, scores=scores, starts=starts)


def _log10_threshold(prob: float, log_base: float) -> float:
    """Segment.prob is log_base ** (difference - KWS_MAX); the hit fires when difference >= log(T) >> SHIFT,
    i.e. when (difference << SHIFT) + (1 << SHIFT) - 1 >= log(T) (log(T) truncated toward zero)."""
    difference = round(math.log(prob) / math.log(log_base)) + KWS_MAX
    return ((difference << SENSCR_SHIFT) + (1 << SENSCR_SHIFT) - 1) * math.log10(log_base)


def _merge_overlaps(hits: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    """Overlapping hits are one hit with the best score, as pocketsphinx merges them within an utterance;
    this also joins a keyphrase cut at a block end with its whole copy in the next block."""
    merged: list[tuple[float, float, float]] = []
    for hit in sorted(hits):
        if merged and hit[0] < merged[-1][1]:
            if hit[2] > merged[-1][2]:
                merged[-1] = hit
        else:
            merged.append(hit)
    return merged


def detections_at(hits: KeyphraseHits, kws_thresholds) -> dict[float, np.ndarray]:
    """Detection times a pocketsphinx decode with each kws_threshold would report."""
    return {float(t): hits.times[hits.scores >= math.log10(t)] for t in kws_thresholds}


# --- openWakeWord ----------------------------------------------------------------------------------------------

OWW_FRAME = 1280  # 80 ms at 16 kHz: the model's native step
OWW_FEATURE_MODELS = ("melspectrogram", "embedding_model", "silero_vad")


def openwakeword_models_dir() -> Path:
    """The ONNX models shipped inside the installed openwakeword wheel (CC BY-NC-SA 4.0: measurement only)."""
    import openwakeword

    return Path(openwakeword.__file__).parent / "resources" / "models"


def openwakeword_model_names() -> list[str]:
    return sorted(p.stem for p in openwakeword_models_dir().glob("*.onnx") if p.stem not in OWW_FEATURE_MODELS)


def openwakeword_scores(
    wav_path: str | Path, model_name: str = "alexa_v0.1", *, block_seconds: float = 64.0
) -> tuple[np.ndarray, np.ndarray]:
    """Score a 16 kHz mono WAV with an openWakeWord 0.4.0 model, one 80 ms frame at a time as in streaming.

    Returns (times, scores): the end of each 1280-sample frame in seconds and the model's score there (0-1).
    A trailing partial frame is dropped. openWakeWord itself reports 0 for the first 5 frames (warm-up).
    """
    from openwakeword.model import Model

    models_dir = openwakeword_models_dir()
    model_path = models_dir / f"{model_name}.onnx"
    if model_name in OWW_FEATURE_MODELS or not model_path.is_file():
        raise ValueError(f"unknown openWakeWord model {model_name!r}; installed: {openwakeword_model_names()}")
    with warnings.catch_warnings():  # it asks for CUDA first, then falls back to CPU
        warnings.filterwarnings("ignore", message=".*CUDAExecutionProvider.*")
        model = Model(
            wakeword_model_paths=[str(model_path)],
            melspec_onnx_model_path=str(models_dir / "melspectrogram.onnx"),
            embedding_onnx_model_path=str(models_dir / "embedding_model.onnx"),
        )

    scores: list[float] = []
    block = max(1, int(block_seconds * SAMPLE_RATE) // OWW_FRAME) * OWW_FRAME
    with sf.SoundFile(str(wav_path)) as wav:
        _check_format(wav)
        for audio in wav.blocks(blocksize=block, dtype="int16"):
            for start in range(0, len(audio) - OWW_FRAME + 1, OWW_FRAME):
                scores.append(float(model.predict(audio[start : start + OWW_FRAME])[model_name]))
    times = np.arange(1, len(scores) + 1) * (OWW_FRAME / SAMPLE_RATE)
    return times, np.array(scores, dtype=np.float32)


def _check_format(wav: sf.SoundFile) -> None:
    if wav.samplerate != SAMPLE_RATE or wav.channels != 1:
        raise ValueError(f"{wav.name}: need {SAMPLE_RATE} Hz mono, got {wav.samplerate} Hz x {wav.channels}")


# --- CLI -------------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    anchors = parser.add_subparsers(dest="anchor", required=True)
    ps = anchors.add_parser("pocketsphinx", help="keyphrase hits with scores (npz: times, scores, starts)")
    ps.add_argument("wav")
    ps.add_argument("--keyphrase", required=True)
    ps.add_argument("--out", required=True)
    oww = anchors.add_parser("openwakeword", help="one score per 80 ms frame (npz: times, scores)")
    oww.add_argument("wav")
    oww.add_argument("--model", default="alexa_v0.1")
    oww.add_argument("--out", required=True)
    args = parser.parse_args(argv)

    started = time.perf_counter()
    if args.anchor == "pocketsphinx":
        arrays = pocketsphinx_detections(args.wav, args.keyphrase)._asdict()
        setting = args.keyphrase
    else:
        times, scores = openwakeword_scores(args.wav, args.model)
        arrays = {"times": times, "scores": scores}
        setting = args.model
    seconds = time.perf_counter() - started
    audio_seconds = sf.info(args.wav).duration
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    np.savez(args.out, **arrays, anchor=args.anchor, setting=setting, audio_seconds=audio_seconds, run_seconds=seconds)
    print(
        f"{args.anchor} {setting}: {len(arrays['times'])} rows, {seconds:.1f} s for {audio_seconds / 3600:.3f} h "
        f"({seconds / max(audio_seconds, 1e-9) * 3600:.0f} s per hour of audio) -> {args.out}"
    )


if __name__ == "__main__":
    main()
