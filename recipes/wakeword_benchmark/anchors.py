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
import time
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf

from speechconv.detect.keyphrase import KeyphraseHits, KeyphraseSearch

SAMPLE_RATE = 16000

# --- pocketsphinx ----------------------------------------------------------------------------------------------

# The search itself lives in the package (speechconv.detect.keyphrase), where fusion uses it too.
# The four benchmark words are all in the bundled cmudict-en-us.dict, so no pronunciation is added:
#   alexa AH L EH K S AH | computer K AH M P Y UW T ER | jarvis JH AA R V AH S | smart S M AA R T, mirror M IH R ER
# Keyphrase search uses a word's first pronunciation only, so jarvis(2) JH AA R V IH S is not searched.


def pocketsphinx_detections(
    wav_path: str | Path,
    keyphrase: str,
    *,
    block_seconds: float = 120.0,
    context_seconds: float = 5.0,
    pronunciations: dict[str, str] | None = None,
) -> KeyphraseHits:
    """Spot ``keyphrase`` in a 16 kHz mono WAV with one pocketsphinx decoding pass; sweep thresholds on
    ``scores`` (:class:`speechconv.detect.keyphrase.KeyphraseHits`)."""
    return KeyphraseSearch(keyphrase, pronunciations).search_wav(
        wav_path, block_seconds=block_seconds, context_seconds=context_seconds)


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
