"""``speechconv train-keyword``: from a typed phrase to a model directory that ``speechconv detect`` uses.

Stages, each re-runnable on its own (``--stage``) and each reading what the earlier ones wrote under
``OUT/work``:

1. ``synth``: keyword clips (alone and in carrier phrases) and negatives (random words and phrases;
   phonetic near misses only with ``confusable_share``) from every installed TTS voice (``speechconv synth``).
2. ``prepare``: voices held out for dev (:mod:`.splits`); generated noise (:mod:`speechconv.data.noise_gen`)
   plus any ``--noise-from`` files; ``--negatives-from`` recordings cut in 2 s training negatives, a
   fifth of the files held out to count false alarms; train/dev manifests.
3. ``train``: with ``representation="whisper"`` (the default), WHISPER_PASSES augmented passes over the
   training clips (the template's augmentation) encoded by Whisper's encoder, once, and a keyword head
   trained on the frames (:mod:`speechconv.training.whisper_head`; ``OUT/work/whisper/``). With
   ``"spectrogram"``, the recipe template (``template.yaml``) filled in and written to ``OUT/train.yaml``; the
   number of epochs is chosen from a short throughput probe so that training fits ``--minutes``;
   ``speechconv train fit --config OUT/train.yaml`` (``--resume`` continues from ``last.ckpt``). With
   ``--ensemble N``, N models with seeds ``seed .. seed + N - 1``, each with the whole budget
   (``OUT/train.yaml``, ``OUT/train_member1.yaml``, ...), and the later stages use their mean posterior
   (:mod:`speechconv.models.ensemble`).
4. ``evaluate``: a stream of the held-out voices' keywords among held-out negatives over held-out
   noise, plus the held-out real negatives; FRR against false alarms per hour, the threshold for
   ``--target-fa`` false alarms per hour, a DET PNG, and the word-bracket calibration of the detector.
5. ``package``: ``OUT/config.yaml``, ``OUT/model.safetensors``, ``OUT/model.onnx`` (the head, or the
   spectrogram model's streaming step, for onnxruntime) and the model card ``OUT/README.md`` (:mod:`.card`).

One module for the run on purpose (about 470 lines): the stages share the run's folders, markers and
options through :class:`KeywordRun`; the split, the card and the template live beside it.
"""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import yaml

from speechconv.data.manifest import ManifestEntry, read_manifest, write_manifest
from speechconv.data.synth import trim_silence
from speechconv.errors import ConfigError, SpeechconvError
from speechconv.training.keyword_recipe.splits import (
    NEGATIVE,
    held_out_files,
    keyword_label,
    split_by_speaker,
    synthetic_entries,
)

STAGES = ("synth", "prepare", "train", "evaluate", "package")
REPRESENTATIONS = ("whisper", "spectrogram")
#: Augmented passes over the training clips that the whisper representation encodes, and the head's epochs
#: over them: the settings of recipes/wakeword_benchmark's ``whisper`` stage.
WHISPER_PASSES = 3
WHISPER_HEAD_EPOCHS = 8
#: Scores are sigmoid(logit / WHISPER_TEMPERATURE): trained heads reach logits of 12 on real speech, where
#: sigmoid saturates and thresholds near 1 cannot be told apart (recipes/hello chose 4 the same way).
WHISPER_TEMPERATURE = 4.0
WHISPER_DETECTOR = {"threshold": 0.5, "smoothing_frames": 1, "merge_seconds": 0.3, "refractory_seconds": 1.0}
TEMPLATE = Path(__file__).with_name("template.yaml")
SAMPLE_RATE = 16000
MAX_KEYWORD_SECONDS = 1.45  # training windows are 1.5 s
SEGMENT_SECONDS = 2.0
MAX_REAL_SEGMENTS = 4000
FA_STREAM_MAX_HOURS = 1.0
NOISE_SECONDS = 60.0
EVAL_SNR_DB = (5.0, 20.0)
EVAL_GAP_S = (0.5, 2.0)
SYNTH_PAD_S = inspect.signature(trim_silence).parameters["pad_s"].default  # silence kept around clips
MIN_BLIND_THRESHOLD = 0.5  # the lowest default threshold when the negatives are too short to measure it


class TrainKeywordError(SpeechconvError):
    """A train-keyword run that cannot go on (missing stage output, output folder in use)."""


@dataclass
class Options:
    phrase: str
    out: Path
    negatives_from: list[Path] = field(default_factory=list)
    noise_from: list[Path] = field(default_factory=list)
    minutes: float = 30.0
    positives: int = 1500
    negatives: int = 1500
    engines: list[str] | None = None
    engine_weights: dict[str, float] | None = None
    confusable_share: float = 0.0
    workers: int = 2
    seed: int = 0
    target_fa: float = 0.5
    batch_size: int = 64
    ensemble: int = 1
    resume: bool = False
    quiet: bool = False
    representation: str = "whisper"


def log(message: str) -> None:
    print(f"train-keyword: {message}", file=sys.stderr, flush=True)


class KeywordRun:
    """The folders and stages of one ``train-keyword`` run (see the module docstring)."""

    def __init__(self, options: Options):
        self.o = options
        self.label = keyword_label(options.phrase)
        if not self.label:
            raise ConfigError("the keyword phrase is empty")
        self.out = Path(options.out).resolve()
        self.work = self.out / "work"
        self.synth = self.work / "synth"
        self.manifests = self.work / "manifests"
        self.run_dir = self.work / "train"
        self.eval_dir = self.work / "eval"
        self.train_config = self.out / "train.yaml"

    # --------------------------------------------------------------------------------- bookkeeping
    def marker(self, stage: str) -> Path:
        return self.work / f".{stage}.done"

    def done(self, stage: str) -> bool:
        return self.marker(stage).is_file()

    def mark(self, stage: str, info: dict | None = None) -> None:
        self.marker(stage).write_text(json.dumps(info or {}, indent=1) + "\n")

    def check_out(self, stages: list[str]) -> None:
        """Refuse to mix a new run into a folder that holds something else."""
        if self.out.exists() and not self.out.is_dir():
            raise TrainKeywordError(f"{self.out}: exists and is not a folder")
        ours = (self.work / "run.json").is_file()
        if ours:
            previous = json.loads((self.work / "run.json").read_text())
            if previous.get("keyword") != self.label:
                raise TrainKeywordError(f"{self.out}: holds a run for {previous.get('keyword')!r}, "
                                        f"not {self.label!r}; choose another --out")
        elif self.out.is_dir() and any(self.out.iterdir()):
            raise TrainKeywordError(f"{self.out}: folder is not empty and is not a train-keyword run; "
                                    "choose a new --out")
        if ours and stages == list(STAGES) and not self.o.resume and self.done("synth"):
            raise TrainKeywordError(f"{self.out}: a run is already there; --resume continues it, "
                                    "--stage STAGE redoes one stage")
        self.work.mkdir(parents=True, exist_ok=True)
        (self.work / "run.json").write_text(
            json.dumps({"keyword": self.label, "options": asdict(self.o)}, indent=1, default=str) + "\n")

    def need(self, stage: str) -> None:
        if not self.done(stage):
            raise TrainKeywordError(f"{self.out}: stage {stage!r} has not run yet (run it first or drop --stage)")

    # --------------------------------------------------------------------------------- stages
    def stage_synth(self) -> None:
        from speechconv.data.synth import synthesize_corpus

        entries = synthesize_corpus(self.label, self.synth, self.o.positives, self.o.negatives,
                                    engines=self.o.engines, seed=self.o.seed, workers=self.o.workers,
                                    progress=not self.o.quiet, engine_weights=self.o.engine_weights,
                                    confusable_share=self.o.confusable_share)
        voices = len({(e.engine, e.voice) for e in entries})
        self.mark("synth", {"clips": len(entries), "voices": voices})
        log(f"synth: {len(entries)} clips from {voices} voices in {self.synth}")

    def stage_prepare(self) -> None:
        self.need("synth")
        entries = synthetic_entries(self.synth / "manifest.jsonl", self.label, MAX_KEYWORD_SECONDS)
        if not any(e.label == self.label for e in entries):
            raise TrainKeywordError(f"{self.synth}: no keyword clip of at most {MAX_KEYWORD_SECONDS} s; "
                                    "is the phrase too long for a 1.5 s window?")
        split_by_speaker(entries)
        noise = self._noise(entries)
        real_train, real_eval = self._real_negatives()
        negatives_from_noise = self._segments(noise["train"], "noise", self.work / "noise_segments")
        entries += real_train + negatives_from_noise
        counts = {}
        for split in ("train", "dev"):
            part = [e for e in entries if e.split == split]
            write_manifest(self.manifests / f"{split}.jsonl", part)
            counts[split] = {label: sum(e.label == label for e in part) for label in (self.label, NEGATIVE)}
        (self.manifests / "noise.json").write_text(json.dumps(noise, indent=1) + "\n")
        (self.manifests / "real_eval.json").write_text(json.dumps(real_eval, indent=1) + "\n")
        info = {"clips": counts, "real_train_segments": len(real_train), "real_eval_files": len(real_eval),
                "noise_train": len(noise["train"]), "noise_eval": len(noise["eval"]),
                "dev_speakers": sorted({e.speaker for e in entries if e.split == "dev"})}
        self.mark("prepare", info)
        log(f"prepare: train {counts['train']}, dev {counts['dev']} (held-out voices: "
            f"{len(info['dev_speakers'])}); {len(real_train)} real negative segments, {len(real_eval)} real files "
            f"held out for false alarms; noise {len(noise['train'])} train / {len(noise['eval'])} eval files")

    def _noise(self, entries: list[ManifestEntry]) -> dict[str, list[str]]:
        """Generated noise (training and evaluation sets with different seeds and babble voices) plus
        ``--noise-from`` files, a fifth of them held out for evaluation."""
        from speechconv.audio import find_audio_files, load_audio
        from speechconv.data.noise_gen import write_noise_set

        def babble_clips(split: str) -> list[np.ndarray]:
            picked = [e for e in entries if e.label == NEGATIVE and e.split == split][:150]
            return [load_audio(e.path, SAMPLE_RATE)[0].numpy() for e in picked]

        folder = self.work / "noise"
        train = write_noise_set(folder, NOISE_SECONDS, SAMPLE_RATE, self.o.seed, babble_clips("train"), "train_")
        held = write_noise_set(folder, NOISE_SECONDS, SAMPLE_RATE, self.o.seed + 1, babble_clips("dev"), "eval_")
        user = find_audio_files([str(p) for p in self.o.noise_from]) if self.o.noise_from else []
        if self.o.noise_from and not user:
            raise TrainKeywordError(f"--noise-from {' '.join(map(str, self.o.noise_from))}: no audio files found")
        user_eval = held_out_files(user)
        return {"train": train + [p for p in user if p not in user_eval],
                "eval": held + sorted(user_eval)}

    def _real_negatives(self) -> tuple[list[ManifestEntry], list[str]]:
        """``--negatives-from`` recordings: 2 s training segments of the training files, and the held-out
        files (at most about an hour) whose false alarms are counted."""
        if not self.o.negatives_from:
            return [], []
        from speechconv.audio import find_audio_files

        files = find_audio_files([str(p) for p in self.o.negatives_from])
        if not files:
            raise TrainKeywordError(f"--negatives-from {' '.join(map(str, self.o.negatives_from))}: "
                                    "no audio files found")
        held = held_out_files(files)
        train_files = [f for f in files if f not in held]
        rng = np.random.default_rng(self.o.seed)
        rng.shuffle(train_files)
        segments = self._segments(train_files, "real", self.work / "real_segments", MAX_REAL_SEGMENTS)
        return segments, sorted(held)

    def _segments(self, paths: list[str], source: str, folder: Path, limit: int | None = None) -> list[ManifestEntry]:
        """Training negatives: each file cut into 2 s pieces (shorter files whole), written under ``folder``."""
        from speechconv.audio import AudioError, load_audio, save_audio

        size = int(SEGMENT_SECONDS * SAMPLE_RATE)
        folder.mkdir(parents=True, exist_ok=True)
        out: list[ManifestEntry] = []
        for index, path in enumerate(paths):
            if limit is not None and len(out) >= limit:
                break
            try:
                audio = load_audio(path, SAMPLE_RATE)[0].numpy()
            except AudioError as err:
                log(f"skipping {err}")
                continue
            for k in range(max(1, len(audio) // size)):
                piece = audio[k * size:(k + 1) * size]
                if len(piece) < SAMPLE_RATE // 4 or not np.any(piece):
                    continue
                clip = folder / f"{index:05d}_{Path(path).stem[:40]}_{k:03d}.wav"
                if not clip.is_file():
                    save_audio(clip, piece, SAMPLE_RATE)
                out.append(ManifestEntry(path=str(clip), label=NEGATIVE, engine=source, speaker=f"{source}:{path}",
                                         duration=len(piece) / SAMPLE_RATE, split="train"))
        return out[:limit] if limit is not None else out

    def members(self) -> list[tuple[int, Path, Path]]:
        """``(seed, run folder, config file)`` of each model to train: one, or the ``--ensemble`` members
        (member 0 is the single model's, the others add 1, 2, ... to the seed)."""
        out = [(self.o.seed, self.run_dir, self.train_config)]
        for i in range(1, self.o.ensemble):
            out.append((self.o.seed + i, self.work / f"train_member{i}", self.out / f"train_member{i}.yaml"))
        return out

    def stage_train(self) -> None:
        self.need("prepare")
        if self.o.representation == "whisper":
            self.train_whisper()
            return
        members = self.members()  # each trains for --minutes: members trained fewer epochs miss more real keywords
        for i, (seed, run_dir, config) in enumerate(members):
            what = f"member {i + 1}/{len(members)} (seed {seed}): " if len(members) > 1 else ""
            if self.o.resume and self.done(f"train_member{i}"):
                log(f"train: {what}done before; skipping")
                continue
            last = run_dir / "checkpoints" / "last.ckpt"
            resume = self.o.resume and last.is_file() and config.is_file()
            if not resume:
                self.write_config(self.fill_template(seed, run_dir), config)
                log(f"train: {what}config {config}; epochs are chosen to fit {self.o.minutes:g} min")
            cmd = [sys.executable, "-m", "speechconv.cli.main", "train", "fit", "--config", str(config)]
            if resume:
                cmd += ["--ckpt_path", str(last)]
                log(f"train: {what}resuming from {last}")
            code = run_child(cmd, env=_quiet_env())
            if code:
                raise TrainKeywordError(f"training stopped (exit status {code}); add --resume to continue it")
            self.mark(f"train_member{i}", {"config": str(config), "seed": seed})
        self.mark("train", {"configs": [str(config) for _, _, config in members]})

    @property
    def whisper_dir(self) -> Path:
        return self.work / "whisper"

    def train_whisper(self) -> None:
        """WHISPER_PASSES augmented passes encoded (each cached, so a stopped run resumes by pass), a head
        trained on them (:mod:`speechconv.training.whisper_head`)."""

        from speechconv.frontends.whisper import WhisperEncoder
        from speechconv.training.datamodules import AudioManifestDataModule
        from speechconv.training.whisper_head import encoded_passes, save_head, train_head

        data = dict(self.fill_template()["data"]["init_args"])
        data.update(num_workers=0, batch_size=20)
        dataset = AudioManifestDataModule(**data)._dataset("train")
        encoder = WhisperEncoder(threads=min(2, os.cpu_count() or 1))
        frames, labels = encoded_passes(encoder, dataset, self.whisper_dir, WHISPER_PASSES,
                                        workers=min(2, os.cpu_count() or 1), log=lambda m: log(f"train: {m}"))
        head = train_head(frames, labels, epochs=WHISPER_HEAD_EPOCHS, seed=self.o.seed,
                          batch_size=min(128, len(frames)), log=lambda m: log(f"train: {m}"))
        save_head(head, self.whisper_dir / "head.pt")
        self.mark("train", {"head": str(self.whisper_dir / "head.pt"), "clips": len(frames)})

    def whisper_head(self):
        from speechconv.training.whisper_head import load_head

        return load_head(self.whisper_dir / "head.pt", temperature=WHISPER_TEMPERATURE)

    def scoring_model(self, checkpoints: list[Path]):
        """What the evaluate stage scores with: the whisper head as a model directory under ``work``, or the
        spectrogram model (batch norms folded)."""
        if self.o.representation == "whisper":
            from speechconv.export.whisper_head import save_whisper_model
            from speechconv.runtime.whisper_engine import WhisperModel

            folder = save_whisper_model(self.whisper_head(), self.whisper_dir / "model", self.label,
                                        WHISPER_DETECTOR, "Draft of the evaluate stage.\n")
            return WhisperModel(folder, threads=min(2, os.cpu_count() or 1))
        from speechconv.blocks.fuse import fold_batch_norm

        return fold_batch_norm(self.spotter(checkpoints).eval())  # inference only

    def fill_template(self, seed: int | None = None, run_dir: Path | None = None) -> dict:
        noise = json.loads((self.manifests / "noise.json").read_text())
        text = TEMPLATE.read_text()
        seed = self.o.seed if seed is None else seed
        text = text.replace("RUN", str(run_dir or self.run_dir)).replace("MANIFESTS", str(self.manifests))
        config = yaml.safe_load(text)
        init, data = config["model"]["init_args"], config["data"]["init_args"]
        init["labels"] = data["labels"] = [NEGATIVE, self.label]
        init["keyword"] = self.label
        config["seed_everything"] = data["seed"] = seed
        data["batch_size"] = self.o.batch_size
        data["num_workers"] = config["num_threads"] = min(2, os.cpu_count() or 1)
        for op in data["augment"]:
            if op.get("noise") == "NOISE_TRAIN":
                op["noise"] = noise["train"]
        for callback in config["trainer"]["callbacks"]:
            if callback["class_path"].endswith("TimeBudget"):
                callback["init_args"]["minutes"] = self.o.minutes
        cap = max(60, int(self.o.minutes * 60 * 1.5))
        config["trainer"]["max_time"] = f"00:{cap // 3600:02d}:{cap % 3600 // 60:02d}:{cap % 60:02d}"
        return config

    def write_config(self, config: dict, path: Path | None = None) -> None:
        path = path or self.train_config
        self.out.mkdir(parents=True, exist_ok=True)
        header = (f"# speechconv train-keyword {self.label!r}: written by the train stage; reproduce the run with\n"
                  f"#   speechconv train fit --config {path}\n")
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(header + yaml.safe_dump(config, sort_keys=False))
        os.replace(tmp, path)

    def checkpoints(self) -> list[Path]:
        """Each member's checkpoint (see :meth:`checkpoint`)."""
        return [self.checkpoint(run_dir) for _, run_dir, _ in self.members()]

    def checkpoint(self, run_dir: Path | None = None) -> Path:
        """The checkpoint with the lowest dev loss; ``last.ckpt`` when the budget ended before any validation."""
        from speechconv.training.recipe_tools import best_checkpoint

        folder = (run_dir or self.run_dir) / "checkpoints"
        try:
            return best_checkpoint(folder)
        except ConfigError:
            if (folder / "last.ckpt").is_file():
                return folder / "last.ckpt"
            raise TrainKeywordError(f"{folder}: no checkpoint; run the train stage") from None

    def stage_evaluate(self) -> None:
        self.need("train")
        from speechconv.data.evalstream import build_eval_stream
        from speechconv.evaluation import kws
        from speechconv.evaluation.streams import load_stream

        whisper = self.o.representation == "whisper"
        checkpoints = [self.whisper_dir / "head.pt"] if whisper else self.checkpoints()
        spotter = self.scoring_model(checkpoints)
        noise = json.loads((self.manifests / "noise.json").read_text())
        real_eval = json.loads((self.manifests / "real_eval.json").read_text())
        dev = read_manifest(self.manifests / "dev.jsonl")
        keyword_wav = self.eval_dir / "keyword_stream.wav"
        if not keyword_wav.is_file():
            build_eval_stream([e for e in dev if e.label == self.label], [e for e in dev if e.label != self.label],
                              noise["eval"], keyword_wav, keyword_wav.with_suffix(".csv"), gap_range=EVAL_GAP_S,
                              snr_db_range=EVAL_SNR_DB, seed=self.o.seed + 7)
        streams = [load_stream(keyword_wav, self.label, spotter=spotter, cache_dir=self.eval_dir / "scores",
                               group_by="text")]
        fa_streams = list(streams)
        if real_eval:
            real_wav = self.eval_dir / "real_negatives.wav"
            if not real_wav.is_file():
                others = [ManifestEntry(path=p, label=NEGATIVE) for p in real_eval]
                build_eval_stream([], others, noise["eval"], real_wav, real_wav.with_suffix(".csv"),
                                  gap_range=EVAL_GAP_S, snr_db_range=(10.0, 30.0), seed=self.o.seed + 8)
                _trim_stream(real_wav, FA_STREAM_MAX_HOURS)
            fa_streams.append(load_stream(real_wav, self.label, spotter=spotter, keyword_free=True,
                                          cache_dir=self.eval_dir / "scores"))
        options = {k: spotter.detector[k] for k in ("merge_seconds", "refractory_seconds") if k in spotter.detector}
        points = kws.sweep(streams, fa_streams, options)
        hours = sum(stream.duration_s for stream in fa_streams) / 3600
        resolvable = hours * self.o.target_fa >= 1.0  # one false alarm would exceed the target
        if resolvable:
            chosen = kws.choose(points, self.o.target_fa)
        else:  # no false alarm at all, and the best recall at the lowest such threshold
            quiet = [p for p in points if p.threshold >= MIN_BLIND_THRESHOLD and p.false_alarms == 0]
            chosen = (min(quiet, key=lambda p: (p.frr, p.threshold, p.smoothing_frames)) if quiet
                      else kws.choose(points, self.o.target_fa))
        if not resolvable:
            log(f"evaluate: {hours:.2f} h of negatives cannot resolve {self.o.target_fa:g} false alarms per hour; "
                f"the threshold stays >= {MIN_BLIND_THRESHOLD} (more --negatives-from gives a measured one)")
        detector = spotter.detector | {"threshold": chosen.threshold, "smoothing_frames": chosen.smoothing_frames}
        detector.pop("smoothing_seconds", None)
        bracket = stream_bracket(streams[0], chosen, options, self.label)
        results = {
            "keyword": self.label,
            "representation": self.o.representation,
            "checkpoint": str(checkpoints[0]),
            "checkpoints": [str(c) for c in checkpoints],
            "target_fa_per_hour": self.o.target_fa,
            "chosen": chosen.as_dict(),
            "frr_at": {str(fa): (p.as_dict() if p else None) for fa in (0.5, 1.0, 5.0)
                       for p in [kws.frr_at(points, fa)]},
            "streams": {s.name: {"hours": round(s.duration_s / 3600, 3), "keywords": len(s.keywords)}
                        for s in fa_streams},
            "fa_resolvable": resolvable,
            "real_negative_hours": round(sum(s.duration_s for s in fa_streams[1:]) / 3600, 3),
            "bracket": None if bracket is None else {"keyword_seconds": round(bracket[0], 3),
                                                     "peak_delay_seconds": round(bracket[1], 3)},
            "detector": detector,
        }
        (self.eval_dir / "results.json").write_text(json.dumps(results, indent=1) + "\n")
        kws.plot_det({f"smoothing {chosen.smoothing_frames}": [p for p in points
                                                               if p.smoothing_frames == chosen.smoothing_frames]},
                     self.eval_dir / "det.png", {"chosen": chosen}, title=f"{self.label}: held-out voices")
        self.mark("evaluate", {"results": str(self.eval_dir / "results.json")})
        log(f"evaluate: {kws.describe(chosen)} on {chosen.hours:.2f} h "
            f"({results['real_negative_hours']:.2f} h of real negatives); DET {self.eval_dir / 'det.png'}")

    def stage_package(self) -> None:
        self.need("evaluate")
        from speechconv.pretrained import save_pretrained

        results = json.loads((self.eval_dir / "results.json").read_text())
        prepare = json.loads(self.marker("prepare").read_text())
        synth = json.loads(self.marker("synth").read_text())
        if self.o.representation == "whisper":
            self.package_whisper(results, prepare, synth)
            return
        spotter = self.spotter([Path(c) for c in results.get("checkpoints", [results["checkpoint"]])])
        spotter.detector.clear()
        spotter.detector.update(results["detector"])
        if results["bracket"]:
            spotter.detector.update(results["bracket"])
        from speechconv.training.keyword_recipe.card import model_card

        save_pretrained(spotter, self.out, model_card(spotter, results, prepare, synth, self.o), onnx=True)
        size = sum((self.out / name).stat().st_size
                   for name in ("config.yaml", "model.safetensors", "model.onnx", "README.md"))
        self.mark("package", {"bytes": size})
        log(f"package: {self.out} ({size / 1024:.0f} KiB). Use it: speechconv detect --model {self.out} FILE")

    def package_whisper(self, results: dict, prepare: dict, synth: dict) -> None:
        from speechconv.export.whisper_head import save_whisper_model
        from speechconv.training.keyword_recipe.card import whisper_model_card

        detector = dict(results["detector"]) | (results["bracket"] or {})
        head = self.whisper_head()
        save_whisper_model(head, self.out, self.label, detector,
                           whisper_model_card(head, detector, results, prepare, synth, self.o))
        size = sum((self.out / name).stat().st_size
                   for name in ("config.yaml", "model.safetensors", "model.onnx", "README.md"))
        self.mark("package", {"bytes": size})
        log(f"package: {self.out} ({size / 1024:.0f} KiB). Use it: speechconv detect --model {self.out} FILE")

    @staticmethod
    def spotter(checkpoints: list[Path]):
        """The model of one checkpoint, or the ensemble of several (their mean posterior)."""
        from speechconv.pretrained import ensemble_spotter, load_pretrained

        spotters = [load_pretrained(c) for c in checkpoints]
        return spotters[0] if len(spotters) == 1 else ensemble_spotter(spotters)

    # --------------------------------------------------------------------------------- driver
    def run(self, stages: list[str]) -> None:
        self.check_out(stages)
        started = time.monotonic()
        for stage in stages:
            if self.o.resume and self.done(stage):
                log(f"{stage}: done before; skipping")
                continue
            t0 = time.monotonic()
            log(f"stage {stage}")
            getattr(self, f"stage_{stage}")()
            log(f"stage {stage} done in {_duration(time.monotonic() - t0)}")
        log(f"finished in {_duration(time.monotonic() - started)}")


def _duration(seconds: float) -> str:
    from speechconv.training.progress import format_seconds

    return format_seconds(seconds)


def run_child(cmd: list[str], env: dict[str, str]) -> int:
    """Run ``cmd`` and return its exit status. A SIGTERM or SIGHUP to this process (raised as
    :class:`~speechconv.cli.signals.Terminated`) is passed on as SIGTERM, and Ctrl-C (which the child gets
    from the terminal too) waits: either way the child saves ``last.ckpt`` and ends before we do."""
    import signal

    proc = subprocess.Popen(cmd, env=env)
    try:
        return proc.wait()
    except KeyboardInterrupt:
        proc.wait()  # the terminal's SIGINT reached the child too: let it save and stop on its own
        raise
    except BaseException:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=300)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        raise


def _quiet_env() -> dict[str, str]:
    """Environment of the training process: without Lightning's deprecation chatter."""
    env = dict(os.environ)
    env.setdefault("PYTHONWARNINGS", "ignore::DeprecationWarning,ignore::UserWarning")
    return env


def _trim_stream(wav: Path, max_hours: float) -> None:
    """Cut a stream (and its truth CSV) to at most ``max_hours``."""
    import soundfile as sf

    info = sf.info(str(wav))
    limit = int(max_hours * 3600 * info.samplerate)
    if info.frames <= limit:
        return
    from speechconv.audio import load_audio, save_audio

    audio = load_audio(str(wav), info.samplerate)[0].numpy()[:limit]
    save_audio(wav, audio, info.samplerate)
    csv = wav.with_suffix(".csv")
    lines = csv.read_text().splitlines()
    header, rows = lines[0], lines[1:]
    keep = [r for r in rows if float(r.split(",")[1]) <= max_hours * 3600]  # columns: start,end,...
    csv.write_text("\n".join([header, *keep]) + "\n")


def stream_bracket(stream, point, options: dict, keyword: str) -> tuple[float, float] | None:
    """``(keyword_seconds, peak_delay_seconds)`` of the detector at operating ``point`` on a keyword stream
    built by the evaluate stage (None when it finds no keyword spoken alone). Recalibrate whenever the
    threshold or smoothing changes: smoothing moves the peaks."""
    from speechconv.detect.detector import calibrate_bracket

    peaks, spans = _matched_peaks(stream, point, options, alone=keyword)
    return calibrate_bracket(peaks, spans) if len(peaks) else None


def _matched_peaks(stream, point, options: dict, alone: str) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Peaks of the detections at ``point`` that found a keyword spoken alone (clip text ``alone``: the
    clip's span is then the word's), with that keyword's span."""
    from speechconv.detect.detector import Detector
    from speechconv.evaluation.kws import EARLY_S, LATE_S

    events = stream.detect(Detector(threshold=point.threshold, smoothing_frames=point.smoothing_frames, **options))
    peaks, spans = [], []
    for span in stream.keywords:
        if keyword_label(span.group.strip(" ,.!?").lower()) != alone.lower():
            continue
        inside = [e.peak for e in events if span.start - EARLY_S <= e.peak <= span.end + LATE_S]
        if inside:
            peaks.append(inside[0])
            spans.append((span.start + SYNTH_PAD_S, span.end - SYNTH_PAD_S))
    return np.array(peaks), spans
