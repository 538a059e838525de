"""Synthetic corpora: confusables, trimming, per-engine rendering, determinism, engine errors."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from speechconv.data import synth as synth_mod
from speechconv.data.confusables import confusable_words, phoneme_distance, split_phonemes
from speechconv.data.manifest import read_manifest
from speechconv.data.synth import plan_corpus, synthesize_corpus, trim_silence
from speechconv.data.tts import ENGINE_BINARIES
from speechconv.errors import SpeechconvError

WORDS = ("apple", "river", "window", "garden", "silver", "yellow", "pencil")


def _need(engine: str) -> None:
    if shutil.which(ENGINE_BINARIES[engine]) is None:
        pytest.skip(f"{ENGINE_BINARIES[engine]} is not installed")


def test_split_phonemes_and_weighted_distance():
    assert split_phonemes("h_@_l_'oU") == ("h", "@", "l", "oU")
    hello, yellow, hell = ("h", "@", "l", "oU"), ("j", "E", "l", "oU"), ("h", "E", "l")
    assert phoneme_distance(hello, hello) == 0
    assert phoneme_distance(hello, yellow) == 1.0  # consonant->consonant 0.5 + vowel->vowel 0.5
    assert phoneme_distance(hello, hell) == 1.5  # vowel->vowel 0.5 + one deletion
    assert phoneme_distance(("a",), ("t",)) == 1.0  # vowel->consonant
    assert phoneme_distance((), ("t", "a")) == 2.0
    assert phoneme_distance(hello, yellow) == phoneme_distance(yellow, hello)


def test_confusables_for_hello():
    _need("espeak")
    words = confusable_words("hello", k=50)
    expected = {"yellow", "mellow", "fellow", "hollow", "halo", "hell", "help", "below", "hotel"}
    assert len(expected & set(words)) >= 5, words
    assert len(words) == 50 and all("hello" not in w for w in words)


def test_trim_silence_keeps_the_sound_plus_padding():
    rate = 16000
    tone = 0.5 * np.sin(2 * np.pi * 440 * np.arange(rate // 2) / rate)
    audio = np.concatenate([np.zeros(rate), tone, np.zeros(rate)]).astype(np.float32)
    trimmed = trim_silence(audio, rate, pad_s=0.05)
    assert abs(len(trimmed) - (len(tone) + 2 * 800)) <= 160  # within one 10 ms frame
    assert len(trim_silence(np.zeros(1000, dtype=np.float32), rate)) == 0


def test_plan_is_deterministic_and_labelled(monkeypatch):
    monkeypatch.setattr(
        synth_mod, "list_voices", lambda e: {"espeak": ("en-us", "en+f3"), "flite": ("slt",)}[e]
    )
    args = dict(
        keyword="hello",
        n_positive=20,
        n_negative=20,
        engines=["espeak", "flite"],
        confusables=["yellow", "mellow"],
        words=WORDS,
    )
    first, again, other = (
        plan_corpus(seed=3, **args),
        plan_corpus(seed=3, **args),
        plan_corpus(seed=4, **args),
    )
    assert first == again and first != other
    assert [p.label for p in first] == ["keyword"] * 20 + ["negative"] * 20
    assert all("hello" in p.text for p in first[:20]) and all("hello" not in p.text for p in first[20:])
    assert {p.engine for p in first} == {"espeak", "flite"}
    # clip i depends only on (seed, i): a longer corpus starts with the same positives
    longer = plan_corpus(seed=3, **{**args, "n_positive": 25})
    assert longer[:20] == first[:20]


@pytest.mark.parametrize("engine", ["espeak", "flite", "festival"])
def test_engine_renders_trimmed_16k_mono_pcm16(tmp_path, engine):
    _need(engine)
    entries = synthesize_corpus("hello", tmp_path, 3, 0, engines=[engine], seed=1, workers=1, progress=False)
    assert len(entries) == 3  # negatives need the confusables table: covered by the plan tests
    assert read_manifest(tmp_path / "manifest.jsonl") == entries
    for entry in entries:
        info = sf.info(entry.path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert entry.engine == engine and entry.voice and entry.text
        assert abs(entry.duration - info.frames / 16000) < 1e-3
        audio, _ = sf.read(entry.path)
        peak = np.max(np.abs(audio))
        assert abs(20 * np.log10(peak) - entry.params["level_dbfs"]) < 0.1
        frames = np.sqrt(np.mean(audio[: len(audio) // 160 * 160].reshape(-1, 160) ** 2, axis=1))
        loud = np.flatnonzero(frames > frames.max() * 10 ** (-40 / 20))
        assert loud[0] <= 6 and len(frames) - 1 - loud[-1] <= 6  # <= ~60 ms of silence at each end
    assert all(e.label == "keyword" and "hello" in e.text for e in entries)


def test_same_seed_same_texts_voices_and_espeak_audio(tmp_path):
    _need("espeak")
    a = synthesize_corpus(
        "hello", tmp_path / "a", 4, 0, engines=["espeak"], seed=7, workers=2, progress=False
    )
    b = synthesize_corpus(
        "hello", tmp_path / "b", 4, 0, engines=["espeak"], seed=7, workers=1, progress=False
    )
    assert [(e.text, e.voice, e.params) for e in a] == [(e.text, e.voice, e.params) for e in b]
    for x, y in zip(a, b):
        assert Path(x.path).read_bytes() == Path(y.path).read_bytes()


def test_missing_engines_raise_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setattr(synth_mod, "available_engines", lambda: dict.fromkeys(ENGINE_BINARIES, False))
    with pytest.raises(SpeechconvError, match="apt-get install espeak-ng flite festival festvox-kallpc16k"):
        synthesize_corpus("hello", tmp_path, 1, 0, progress=False)
    with pytest.raises(SpeechconvError, match="unknown TTS engine"):
        synth_mod.resolve_engines(["espeak", "sam"])
