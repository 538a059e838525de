"""Running-speech negatives: windows of consecutive words of user sentences (`speechconv synth --sentences`)."""

from __future__ import annotations

import numpy as np
import pytest

from speechconv.cli.main import main
from speechconv.data import synth as synth_mod
from speechconv.data.synth import SENTENCE_WORDS, plan_corpus, read_sentences, sentence_window
from speechconv.errors import SpeechconvError

SENTENCES = (
    "knit two together and knit three then make one at the end of the row",
    "she said alexa twice before anyone answered her",
    "the river ran past the old mill and under the stone bridge",
)


def _is_window(text: str) -> bool:
    """``text`` is a run of consecutive words of one sentence."""
    words = text.split()
    for sentence in SENTENCES:
        sw = sentence.split()
        if any(sw[i:i + len(words)] == words for i in range(len(sw) - len(words) + 1)):
            return True
    return False


def test_windows_are_consecutive_keyword_free_runs_of_bounded_length():
    rng = np.random.default_rng(0)
    windows = [sentence_window(SENTENCES, "alexa", rng) for _ in range(300)]
    assert all(w is not None and _is_window(w) and "alexa" not in w for w in windows)
    lengths = {len(w.split()) for w in windows}
    assert lengths == set(range(SENTENCE_WORDS[0], SENTENCE_WORDS[1] + 1))
    # a sentence made only of the keyword gives no window
    assert sentence_window(("alexa alexa alexa",), "alexa", np.random.default_rng(0)) is None
    # sentences shorter than the window are taken whole
    assert sentence_window(("good night",), "alexa", np.random.default_rng(0)) == "good night"


def test_sentence_share_sets_the_mix_and_zero_keeps_the_old_plans(monkeypatch):
    monkeypatch.setattr(synth_mod, "list_voices", lambda e: ("en-us",))
    args = dict(keyword="alexa", n_positive=20, n_negative=400, engines=["espeak"], words=("tree", "river"),
                confusables=["election"])
    before = plan_corpus(seed=3, **args)
    assert plan_corpus(seed=3, sentences=SENTENCES, sentence_share=0.0, **args) == before
    plans = plan_corpus(seed=3, sentences=SENTENCES, sentence_share=0.8, **args)
    assert [p for p in plans if p.label == "keyword"] == [p for p in before if p.label == "keyword"]
    negatives = [p for p in plans if p.label == "negative"]
    running = [len(p.text.split()) >= SENTENCE_WORDS[0] and _is_window(p.text) for p in negatives]
    assert 0.74 < np.mean(running) < 0.86
    assert all("alexa" not in p.text for p in negatives)
    assert plan_corpus(seed=3, sentences=SENTENCES, sentence_share=0.8, **args) == plans  # seeded
    with pytest.raises(SpeechconvError, match="sentence share"):
        plan_corpus(seed=3, sentences=SENTENCES, sentence_share=1.2, **args)
    with pytest.raises(SpeechconvError, match="needs sentences"):
        plan_corpus(seed=3, sentences=("  ",), sentence_share=0.5, **args)


def test_read_sentences(tmp_path):
    path = tmp_path / "texts.txt"
    path.write_text("  first   line \n\nsecond line\n")
    assert read_sentences(path) == ("first line", "second line")
    (tmp_path / "empty.txt").write_text("\n \n")
    with pytest.raises(SpeechconvError, match="empty.txt: no sentences"):
        read_sentences(tmp_path / "empty.txt")
    with pytest.raises(SpeechconvError, match="missing.txt: cannot read"):
        read_sentences(tmp_path / "missing.txt")


def test_cli_refuses_a_share_without_sentences_and_a_missing_file(tmp_path, capsys):
    out = tmp_path / "corpus"
    assert main(["synth", "--keyword", "alexa", "--out", str(out), "--n", "1", "--negatives", "1",
                 "--sentence-share", "0.5"]) != 0
    assert "--sentence-share needs --sentences" in capsys.readouterr().err
    assert main(["synth", "--keyword", "alexa", "--out", str(out), "--n", "1", "--negatives", "1",
                 "--sentences", str(tmp_path / "nope.txt")]) != 0
    err = capsys.readouterr().err
    assert "nope.txt: cannot read sentences" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()
