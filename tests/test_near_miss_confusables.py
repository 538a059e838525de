"""Near-miss negatives across word boundaries: batched distance, phrase candidates, corpus mix."""

from __future__ import annotations

import numpy as np
import pytest

from speechconv.data import confusables
from speechconv.data import synth as synth_mod
from speechconv.data.confusables import batch_phoneme_distance, near_miss_phrases, phoneme_distance
from speechconv.data.synth import plan_corpus
from speechconv.errors import SpeechconvError

# A toy lexicon: each letter is one phoneme, vowels a/e/i/o/u (is_vowel knows lowercase vowels).
LEXICON = ("lexa", "rekord", "lesson", "elexan", "ekoa", "banana", "tree", "alexander", "kord", "lexaz")


@pytest.fixture
def toy_phonemes(monkeypatch, tmp_path):
    words_file = tmp_path / "words"
    words_file.write_text("\n".join(LEXICON + confusables.JOINING_WORDS) + "\n")
    monkeypatch.setenv(confusables.CACHE_ENV, str(tmp_path / "cache"))
    monkeypatch.setattr(confusables, "_espeak_version", lambda: "toy")
    monkeypatch.setattr(confusables, "_espeak_batch",
                        lambda words, voice: ["_".join(w.replace(" ", "")) for w in words])
    monkeypatch.setattr(confusables, "phonemize", lambda words, voice: {w: tuple(w) for w in words})
    return words_file


def test_batched_distance_equals_the_reference():
    rng = np.random.default_rng(0)
    symbols = ["a", "@", "E", "k", "s", "l", "t", "oU", "n"]
    target = ("@", "l", "E", "k", "s", "@")
    sequences = [tuple(symbols[i] for i in rng.integers(len(symbols), size=rng.integers(0, 10)))
                 for _ in range(500)]
    expected = [phoneme_distance(target, seq) for seq in sequences]
    assert np.array_equal(batch_phoneme_distance(target, sequences), expected)


def test_phrases_cross_word_boundaries(toy_phonemes):
    found = near_miss_phrases("alexa", k=40, word_list=toy_phonemes, phone_slack=2)
    # "a" + "lexa" is the keyword's sound exactly (distance 0: a homophone, left out) ...
    assert "a lexa" not in found
    # ... while "a lexaz", "the lexa"-like pairs and words of other lengths are near misses
    assert "lexa" in found and "elexan" in found and any(t.startswith("a ") or t.endswith(" a") for t in found)
    assert all("alexa" not in t for t in found)  # never the keyword itself ("alexander")
    far = [i for i, t in enumerate(found) if "tree" in t or "banana" in t]
    assert far and min(far) > found.index("elexan")  # ranked by distance within words and phrases
    singles = [t for t in found if " " not in t]
    assert found[0] == singles[0] and " " in found[1]  # words and phrases alternate


def test_phrase_caps(toy_phonemes):
    found = near_miss_phrases("alexa", k=200, word_list=toy_phonemes, phone_slack=3, per_word_limit=1)
    phrases = [t.split() for t in found if " " in t]
    mains = [p[1] if p[0] in confusables.JOINING_WORDS else p[0] for p in phrases]
    assert len(mains) == len(set(mains))  # a word is in at most one phrase
    joiners = [p[0] if p[0] in confusables.JOINING_WORDS else p[1] for p in phrases]
    assert max(joiners.count(j) for j in set(joiners)) <= max(4, 200 // 8)


def test_confusable_share_sets_the_negative_mix(monkeypatch):
    monkeypatch.setattr(synth_mod, "list_voices", lambda e: ("en-us",))
    args = dict(keyword="alexa", n_positive=0, n_negative=400, engines=["espeak"], words=("tree", "river"))
    near = ["a record", "election"]
    default = plan_corpus(seed=1, confusables=near, **args)
    assert default == plan_corpus(seed=1, confusables=near, confusable_share=0.5, **args)
    share = np.mean([any(w in p.text for w in near) for p in default])
    assert 0.42 < share < 0.58

    def near_misses(share):
        plans = plan_corpus(seed=1, confusables=near, confusable_share=share, **args)
        return [any(w in p.text for w in near) for p in plans]

    assert all(near_misses(1.0)) and not any(near_misses(0.0))
    with pytest.raises(SpeechconvError, match="confusable share"):
        plan_corpus(seed=1, confusables=near, confusable_share=1.5, **args)


def test_unknown_confusable_list_is_refused(tmp_path):
    with pytest.raises(SpeechconvError, match="unknown confusable list"):
        synth_mod.synthesize_corpus("alexa", tmp_path, 1, 1, engines=["espeak"], confusables="rhymes", progress=False)
