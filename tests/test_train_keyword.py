"""`speechconv train-keyword`: the README's commands end to end at tiny scale, and the pieces they use."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from speechconv.data.manifest import ManifestEntry
from speechconv.data.noise_gen import KINDS, generate, write_noise_set
from speechconv.training.keyword_recipe.splits import (
    held_out_files,
    held_out_speakers,
    keyword_label,
    split_by_speaker,
    tts_speaker,
)

REPO = Path(__file__).resolve().parents[1]
#: Appended to the README's train-keyword command: the same command at tiny scale (argparse keeps the
#: last value of an option), so the test runs in about a minute.
TINY = ["--positives", "24", "--negatives", "24", "--engines", "espeak,flite", "--minutes", "0.2", "--quiet"]
needs_tts = pytest.mark.skipif(not (shutil.which("espeak-ng") and shutil.which("flite")),
                               reason="needs espeak-ng and flite (apt-get install espeak-ng flite)")


def readme_commands(section: str) -> list[str]:
    """The commands of the first code block after the README heading ``section``."""
    text = (REPO / "README.md").read_text()
    after = text[text.index(f"## {section}\n"):]
    block = re.search(r"```\n(.*?)```", after, re.S).group(1)
    return [line for line in block.replace("\\\n", " ").splitlines() if line.strip()]


def run(args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, HOME=str(cwd))
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def speechconv_argv(command: str) -> list[str]:
    argv = shlex.split(command)
    assert argv[0] == "speechconv"
    return [sys.executable, "-m", "speechconv.cli.main", *argv[1:]]


@needs_tts
def test_readme_custom_keyword_commands_run_verbatim(tmp_path):
    train, detect = readme_commands("Training a detector for your own keyword")
    assert train.startswith("speechconv train-keyword ") and detect.startswith("speechconv detect --model ")
    phrase = shlex.split(train)[2]
    out = tmp_path / shlex.split(train)[shlex.split(train).index("--out") + 1]

    result = run(speechconv_argv(train) + TINY, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    packaged = {"config.yaml", "model.safetensors", "model.onnx", "README.md"}
    assert packaged <= {p.name for p in out.iterdir()}
    card = (out / "README.md").read_text()
    assert f'"{phrase}"' in card and "synthetic voices" in card and "Whisper" in card
    results = json.loads((out / "work" / "eval" / "results.json").read_text())
    assert results["keyword"] == phrase and 0 <= results["chosen"]["threshold"] <= 1
    assert results["representation"] == "whisper"
    assert (out / "work" / "eval" / "det.png").stat().st_size > 0
    assert "encoded augmented pass 3/3" in result.stderr and "whisper head epoch 7" in result.stderr

    # A synthesised sentence with the keyword in it, where the README's detect command expects its input.
    recording = shlex.split(detect)[-1]
    subprocess.run(["espeak-ng", "-w", str(tmp_path / recording), f"well, {phrase}, what time is it"], check=True)
    # threshold 0: a few seconds of training guarantee nothing, but every frame then counts as the keyword
    result = run(speechconv_argv(detect) + ["--threshold", "0"], tmp_path)
    assert result.returncode == 0, result.stderr
    labels = (tmp_path / "labels.txt").read_text()
    assert phrase in labels and "keyword" not in labels
    # the whisper engine needs no PyTorch: the same labels whatever --engine says
    result = run(speechconv_argv(detect) + ["--threshold", "0", "--engine", "onnx"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "labels.txt").read_text() == labels

    # The same command again refuses to mix a second run into the folder; --resume finds everything done.
    again = run(speechconv_argv(train) + TINY, tmp_path)
    assert again.returncode == 1 and "--resume" in again.stderr
    resumed = run(speechconv_argv(train) + TINY + ["--resume"], tmp_path)
    assert resumed.returncode == 0 and resumed.stderr.count("done before; skipping") == 5


@needs_tts
def test_spectrogram_representation_trains_a_streaming_model(tmp_path):
    out = tmp_path / "model"
    argv = [sys.executable, "-m", "speechconv.cli.main", "train-keyword", "hey toaster", "--out", str(out), *TINY,
            "--representation", "spectrogram"]
    result = run(argv, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert {"config.yaml", "model.safetensors", "model.onnx", "README.md", "train.yaml"} <= {p.name for p in
                                                                                              out.iterdir()}
    assert "epoch" in result.stderr and "left" in result.stderr  # the progress line with the time left
    assert json.loads((out / "work" / "eval" / "results.json").read_text())["representation"] == "spectrogram"
    card = (out / "README.md").read_text()
    assert "tc_resnet" in card and "Whisper" in card  # the card points to the better representation
    wav = tmp_path / "speech.wav"
    subprocess.run(["espeak-ng", "-w", str(wav), "well, hey toaster, what time is it"], check=True)
    torch_run = run(speechconv_argv(f"speechconv detect --model {out} {wav} --threshold 0"), tmp_path)
    onnx_run = run(speechconv_argv(f"speechconv detect --model {out} {wav} --threshold 0 --engine onnx"), tmp_path)
    assert torch_run.returncode == onnx_run.returncode == 0 and torch_run.stdout.count("\n") >= 2
    assert torch_run.stdout.count("\n") == onnx_run.stdout.count("\n")


def test_whisper_representation_has_no_ensemble(tmp_path):
    result = run([sys.executable, "-m", "speechconv.cli.main", "train-keyword", "hey", "--out", str(tmp_path / "m"),
                  "--ensemble", "2"], tmp_path)
    assert result.returncode == 1 and "--ensemble needs --representation spectrogram" in result.stderr


def test_out_folder_that_holds_something_else_is_refused(tmp_path):
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "cat.jpg").write_bytes(b"\xff\xd8")
    result = run(speechconv_argv('speechconv train-keyword "hey toaster" --out photos'), tmp_path)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].startswith("speechconv: ") and "not empty" in result.stderr
    assert [p.name for p in (tmp_path / "photos").iterdir()] == ["cat.jpg"]


def test_bad_options_give_one_line(tmp_path):
    for extra, words in ((["--minutes", "0"], "--minutes"), (["--negatives-from", "nowhere"], "nowhere"),
                         (["--confusable-share", "1.5"], "--confusable-share")):
        result = run(speechconv_argv('speechconv train-keyword hi --out m') + extra, tmp_path)
        assert result.returncode == 1 and words in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert not (tmp_path / "m").exists()


# ------------------------------------------------------------------------------------ pieces


@pytest.mark.parametrize("extra, share", [([], 0.0), (["--confusable-share", "0.3"], 0.3)])
def test_confusable_share_reaches_the_synthesis(tmp_path, monkeypatch, extra, share):
    # default 0: near misses spoken by TTS voices made the benchmark's detectors miss more real keywords
    import speechconv.data.synth as synth
    from speechconv.cli.main import build_parser

    asked = {}

    def fake_corpus(keyword, out_dir, n_positive, n_negative, **options):
        asked.update(options)
        return [ManifestEntry(path=str(Path(out_dir) / "0.wav"), label=keyword, engine="espeak", voice="en")]

    monkeypatch.setattr(synth, "synthesize_corpus", fake_corpus)
    monkeypatch.setattr("speechconv.training.keyword_recipe.pipeline.KeywordRun.run",
                        lambda self, stages: (self.check_out(stages), self.stage_synth()))
    args = build_parser(["train-keyword"]).parse_args(
        ["train-keyword", "hey toaster", "--out", str(tmp_path / "m"), "--quiet", *extra])
    assert args.func(args) == 0
    assert asked["confusable_share"] == share


def test_no_near_misses_leaves_words_and_phrases():
    from speechconv.data.synth import plan_corpus

    plans = plan_corpus("hey toaster", 0, 300, ["espeak"], seed=0, confusables=["toast", "roster"],
                        confusable_share=0.0)
    texts = [p.text for p in plans]
    assert len(texts) == 300 and not any(w in t.split() for t in texts for w in ("toast", "roster"))


def test_keyword_label_normalises_spaces():
    assert keyword_label("  hey   toaster ") == "hey toaster" == keyword_label("hey_toaster")


def test_tts_speaker_merges_one_person_across_engines():
    assert tts_speaker("flite", "kal16") == tts_speaker("festival", "kal_diphone") == "tts:kal"
    assert tts_speaker("espeak", "en-gb+Hugo") == tts_speaker("espeak+praat", "en-us+Hugo") == "espeak:Hugo"
    assert tts_speaker("kokoro", "blend07") == "kokoro:blend07"


def test_held_out_speakers_are_a_fixed_share_per_family():
    speakers = {f"kokoro:blend{i:02d}" for i in range(40)} | {f"espeak:v{i}" for i in range(20)} | {"piper:joe"}
    held = held_out_speakers(speakers)
    assert sum(s.startswith("kokoro:") for s in held) == 6 and sum(s.startswith("espeak:") for s in held) == 3
    assert "piper:joe" not in held  # a family of one speaker always trains
    # the choice of a speaker does not depend on the others in the corpus
    assert held_out_speakers(speakers | {f"flite:x{i}" for i in range(5)}) >= held


def test_split_by_speaker_never_leaves_dev_without_a_label():
    entries = [ManifestEntry(path=f"/c/{i}.wav", label="hi" if i % 2 else "negative", speaker="piper:joe")
               for i in range(20)]
    split_by_speaker(entries)
    for label in ("hi", "negative"):
        splits = [e.split for e in entries if e.label == label]
        assert "dev" in splits and "train" in splits


def test_held_out_files_need_enough_files():
    assert held_out_files(["a.wav", "b.wav"]) == set()
    files = [f"/d/{i}.wav" for i in range(50)]
    held = held_out_files(files)
    assert len(held) == 10 and held == held_out_files(list(reversed(files)))


@pytest.mark.parametrize("kind, slope_db_per_octave", [("white", 0.0), ("pink", -3.0), ("brown", -6.0)])
def test_coloured_noise_has_its_spectral_slope(kind, slope_db_per_octave):
    noise = generate(kind, 8.0, 16000, np.random.default_rng(0))
    assert noise.dtype == np.float32 and np.sqrt(np.mean(noise**2)) == pytest.approx(1.0, rel=1e-3)
    power = np.abs(np.fft.rfft(noise)) ** 2
    freqs = np.fft.rfftfreq(len(noise), 1 / 16000)
    band = (freqs > 100) & (freqs < 6400)
    slope = np.polyfit(np.log2(freqs[band]), 10 * np.log10(power[band]), 1)[0]
    assert slope == pytest.approx(slope_db_per_octave, abs=0.3)


def test_hum_is_at_mains_frequency():
    hum = generate("hum", 4.0, 16000, np.random.default_rng(1))
    spectrum = np.abs(np.fft.rfft(hum))
    peak = np.fft.rfftfreq(len(hum), 1 / 16000)[np.argmax(spectrum)]
    assert peak in (50.0, 60.0)


def test_noise_set_is_written_once(tmp_path):
    clip = np.sin(np.linspace(0, 800, 8000)).astype(np.float32)
    paths = write_noise_set(tmp_path, seconds=2.0, seed=3, babble_clips=[clip])
    assert [Path(p).stem for p in paths] == list(KINDS)
    before = {p: Path(p).stat().st_mtime_ns for p in paths}
    assert write_noise_set(tmp_path, seconds=2.0, seed=3, babble_clips=[clip]) == paths
    assert {p: Path(p).stat().st_mtime_ns for p in paths} == before
    assert len(write_noise_set(tmp_path / "no_babble", seconds=1.0)) == len(KINDS) - 1


def test_a_stopped_run_stops_its_training_child_first(tmp_path):
    """SIGTERM to train-keyword reaches the training process as SIGTERM (so it saves last.ckpt), and
    train-keyword returns only after the child has finished."""
    import signal
    import threading
    import time

    from speechconv.cli.signals import Terminated, signals_stop_the_run
    from speechconv.training.keyword_recipe.pipeline import run_child

    marker = tmp_path / "child_saved"
    child = ("import signal, sys, time, pathlib\n"
             "def stop(*_):\n"
             f"    time.sleep(0.5); pathlib.Path({str(marker)!r}).write_text('last.ckpt'); sys.exit(143)\n"
             "signal.signal(signal.SIGTERM, stop)\n"
             "print('ready', flush=True)\n"
             "time.sleep(60)\n")
    threading.Timer(2.0, lambda: os.kill(os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    with pytest.raises(Terminated), signals_stop_the_run():
        run_child([sys.executable, "-c", child], env=dict(os.environ))
    assert marker.read_text() == "last.ckpt" and time.monotonic() - started < 30


def test_time_budget_chooses_epochs_and_keeps_them_on_resume():
    from types import SimpleNamespace

    import torch

    from speechconv.training.progress import TimeBudget

    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=200)
    trainer = SimpleNamespace(num_training_batches=100, num_val_batches=[20], max_epochs=200, current_epoch=0,
                              global_step=0,
                              fit_loop=SimpleNamespace(max_epochs=200),
                              lr_scheduler_configs=[SimpleNamespace(scheduler=cosine)])
    budget = TimeBudget(minutes=10)  # 600 s
    budget._choose(trainer, seconds_per_step=0.5)  # an epoch: 0.5 * (100 + 0.4 * 20) = 54 s
    assert budget.epochs == 11 == trainer.fit_loop.max_epochs == cosine.T_max
    state = budget.state_dict()
    resumed = TimeBudget(minutes=10)
    resumed.load_state_dict(state)
    trainer.fit_loop.max_epochs = cosine.T_max = 200
    resumed.on_train_start(trainer, None)
    assert trainer.fit_loop.max_epochs == cosine.T_max == 11
    slow = TimeBudget(minutes=1)
    slow._choose(trainer, seconds_per_step=2.0)  # one epoch (216 s) does not fit: train one, stopped by time
    assert slow.epochs == 1


def test_time_budget_lowers_the_epochs_when_training_is_slower_than_measured(monkeypatch):
    from types import SimpleNamespace

    import torch

    from speechconv.training import progress

    clock = [1000.0]
    monkeypatch.setattr(progress.time, "monotonic", lambda: clock[0])
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    cosine = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=200)
    trainer = SimpleNamespace(num_training_batches=100, num_val_batches=[0], max_epochs=200, current_epoch=0,
                              global_step=0, fit_loop=SimpleNamespace(max_epochs=200),
                              lr_scheduler_configs=[SimpleNamespace(scheduler=cosine)])
    budget = progress.TimeBudget(minutes=10)
    budget.on_train_start(trainer, None)
    budget._choose(trainer, seconds_per_step=0.5)  # 50 s per epoch measured: 12 epochs
    assert budget.epochs == 12
    clock[0] += 100.0  # but the first epoch took 100 s: 5 more fit in the 500 s left
    budget.on_train_epoch_end(trainer, None)
    assert budget.epochs == 6 == trainer.fit_loop.max_epochs == cosine.T_max
