"""Confusable words for any keyword, found by phoneme edit distance (espeak-ng phonemes).

Candidates come from the system word list (``/usr/share/dict/american-english``); they are
phonemized in large batches (one espeak-ng process per chunk, one word per line, chunks in
parallel) and cached on disk, so the cost is paid once per word list and espeak-ng version.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from speechconv.data.manifest import atomic_write_text
from speechconv.errors import SpeechconvError

WORD_LIST = Path("/usr/share/dict/american-english")
CACHE_ENV = "SPEECHCONV_CACHE"
_STRESS = re.compile(r"[',%=]")
# espeak-ng phoneme mnemonics that start with these characters are vowels.
_VOWEL_START = set("aeiouAEIOU03@V")
_CHUNK = 2000

# Everyday phrases used as generic negatives (none contains a common wake word).
COMMON_PHRASES = (
    "good morning",
    "thank you very much",
    "see you later",
    "what time is it",
    "turn on the lights",
    "how are you doing",
    "I don't know",
    "let's go outside",
    "can you help me",
    "nice to meet you",
    "what's the weather like",
    "open the door",
    "where are my keys",
    "call me back",
    "that sounds great",
    "I'll be right there",
    "play some music",
    "set a timer",
    "good night",
    "how much does it cost",
    "excuse me",
    "have a nice day",
    "I'm on my way",
    "please sit down",
    "it's raining again",
    "wait a minute",
    "the coffee is ready",
    "pass the salt",
    "turn it down",
    "who is there",
    "not right now",
    "maybe tomorrow",
    "I love this song",
    "stop the alarm",
    "read me the news",
    "what did you say",
    "keep going",
    "take care",
    "happy birthday",
    "where is the station",
)


# Short words that join a neighbour in running speech: "a record", "the letter", "to get her".
JOINING_WORDS = ("a", "the", "to", "an", "and", "in", "of", "on", "at", "is", "it", "as", "or", "for", "her",
                 "him", "up", "so", "we", "he", "i", "my", "you", "all", "that", "this", "but")


class ConfusablesError(SpeechconvError):
    """Phonemization failed or no word list is available."""


def cache_dir() -> Path:
    """Folder for on-disk caches: ``$SPEECHCONV_CACHE``, else ``$XDG_CACHE_HOME/speechconv``, else
    ``~/.cache/speechconv``."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "speechconv"


@functools.lru_cache(maxsize=4)
def load_word_list(path: str | os.PathLike = WORD_LIST) -> tuple[str, ...]:
    """Lowercase alphabetic words of the word list, sorted and unique."""
    path = Path(path)
    if not path.is_file():
        raise ConfusablesError(f"{path}: word list not found (apt-get install wamerican)")
    words = {
        w for w in path.read_text(encoding="utf-8", errors="ignore").split() if re.fullmatch(r"[a-z]+", w)
    }
    return tuple(sorted(words))


def _espeak_batch(words: list[str], voice: str) -> list[str]:
    try:
        proc = subprocess.run(
            ["espeak-ng", "-q", "-x", "--sep=_", "-v", voice],
            input="\n".join(words) + "\n",
            capture_output=True,
            text=True,
            timeout=600,
        )
    except FileNotFoundError:
        raise ConfusablesError(
            "espeak-ng not found; it is needed for phonemes (apt-get install espeak-ng)"
        ) from None
    lines = [line.strip() for line in proc.stdout.splitlines() if line.strip()]
    if proc.returncode != 0 or len(lines) != len(words):
        raise ConfusablesError(f"espeak-ng phonemization returned {len(lines)} lines for {len(words)} words")
    return lines


def _espeak_version() -> str:
    try:
        return subprocess.run(["espeak-ng", "--version"], capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        raise ConfusablesError(
            "espeak-ng not found; it is needed for phonemes (apt-get install espeak-ng)"
        ) from None


def phonemize(
    words: list[str], voice: str = "en-us", workers: int | None = None
) -> dict[str, tuple[str, ...]]:
    """espeak-ng phonemes of each word as a tuple of phoneme symbols (stress marks removed).

    Words are sent in chunks of one word per line; the chunks run in parallel.
    """
    unique = sorted(set(words))
    chunks = [unique[i : i + _CHUNK] for i in range(0, len(unique), _CHUNK)]
    workers = workers or max(1, os.cpu_count() or 1)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        outputs = list(pool.map(lambda chunk: _espeak_batch(chunk, voice), chunks))
    result = {}
    for chunk, lines in zip(chunks, outputs):
        for word, line in zip(chunk, lines):
            result[word] = split_phonemes(line)
    return result


def split_phonemes(espeak_x: str) -> tuple[str, ...]:
    """``"h_@_l_'oU"`` -> ``("h", "@", "l", "oU")``: split on separators, drop stress marks."""
    tokens = re.split(r"[_\s]+", _STRESS.sub("", espeak_x))
    return tuple(t for t in tokens if t)


def is_vowel(phoneme: str) -> bool:
    return phoneme[:1] in _VOWEL_START


def phoneme_distance(a: tuple[str, ...], b: tuple[str, ...]) -> float:
    """Weighted Levenshtein distance between phoneme sequences.

    Insertion and deletion cost 1; substituting a vowel for a vowel or a consonant for a consonant
    costs 0.5, a vowel for a consonant 1.
    """
    prev = [float(j) for j in range(len(b) + 1)]
    for i in range(1, len(a) + 1):
        cur = [float(i)] + [0.0] * len(b)
        for j in range(1, len(b) + 1):
            if a[i - 1] == b[j - 1]:
                sub = 0.0
            else:
                sub = 0.5 if is_vowel(a[i - 1]) == is_vowel(b[j - 1]) else 1.0
            cur[j] = min(prev[j] + 1.0, cur[j - 1] + 1.0, prev[j - 1] + sub)
        prev = cur
    return prev[-1]


def batch_phoneme_distance(target: tuple[str, ...], sequences: list[tuple[str, ...]]) -> np.ndarray:
    """:func:`phoneme_distance` from ``target`` to each sequence, computed for all at once (NumPy)."""
    distances = np.zeros(len(sequences))
    symbols = {p: i for i, p in enumerate(dict.fromkeys(target))}
    by_length: dict[int, list[int]] = {}
    for i, seq in enumerate(sequences):
        by_length.setdefault(len(seq), []).append(i)
    for length, rows in by_length.items():
        if length == 0:
            distances[rows] = len(target)
            continue
        ids = np.array([[symbols.setdefault(p, len(symbols)) for p in sequences[i]] for i in rows])
        vowel = np.array([is_vowel(p) for p in symbols])
        sub = np.stack([np.where(ids == symbols[t], 0.0, np.where(vowel[ids] == is_vowel(t), 0.5, 1.0))
                        for t in target])
        prev = np.broadcast_to(np.arange(length + 1, dtype=float), (len(rows), length + 1)).copy()
        for i in range(1, len(target) + 1):
            cur = np.empty_like(prev)
            cur[:, 0] = i
            diagonal_or_up = np.minimum(prev[:, 1:] + 1.0, prev[:, :-1] + sub[i - 1])
            for j in range(1, length + 1):  # left neighbour: a running minimum along the row
                cur[:, j] = np.minimum(diagonal_or_up[:, j - 1], cur[:, j - 1] + 1.0)
            prev = cur
        distances[rows] = prev[:, -1]
    return distances


def _candidates(keyword: str, words: tuple[str, ...], length_slack: int) -> list[str]:
    letters = len(re.sub(r"[^a-z]", "", keyword.lower()))
    low, high = max(2, letters - length_slack), letters + length_slack
    kw_words = set(keyword.lower().split())
    return [w for w in words if low <= len(w) <= high and not any(k in w for k in kw_words)]


def phoneme_table(words: list[str], voice: str = "en-us") -> dict[str, tuple[str, ...]]:
    """Phonemes for ``words``, read from / added to the on-disk cache."""
    key = hashlib.sha1(f"{_espeak_version()}|{voice}".encode()).hexdigest()[:12]
    path = cache_dir() / f"phonemes-{key}.json"
    table: dict[str, list[str]] = {}
    if path.is_file():
        try:
            table = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, OSError):
            table = {}
    missing = [w for w in words if w not in table]
    if missing:
        table.update({w: list(p) for w, p in phonemize(missing, voice).items()})
        try:
            atomic_write_text(path, json.dumps(table, separators=(",", ":")))
        except OSError:
            pass  # a read-only cache only costs time
    return {w: tuple(table[w]) for w in words}


def _keyword_phonemes(keyword: str, voice: str) -> tuple[str, tuple[str, ...]]:
    keyword = keyword.strip().lower()
    if not keyword:
        raise ConfusablesError("keyword is empty")
    return keyword, split_phonemes(" ".join(_espeak_batch([keyword], voice)))


def confusable_words(
    keyword: str,
    k: int = 50,
    word_list: str | os.PathLike = WORD_LIST,
    length_slack: int = 2,
    voice: str = "en-us",
) -> list[str]:
    """The ``k`` words of the word list that sound most like ``keyword``.

    Ranked by :func:`phoneme_distance` to the keyword's phonemes, then by the longest shared onset
    (listeners and detectors confuse onsets most), the difference in phoneme count, then
    alphabetically. Words containing the keyword and exact homophones are excluded.
    """
    keyword, target = _keyword_phonemes(keyword, voice)
    candidates = _candidates(keyword, load_word_list(str(word_list)), length_slack)
    table = phoneme_table(candidates, voice)
    scored = []
    for word in candidates:
        phones = table[word]
        distance = phoneme_distance(target, phones)
        if distance > 0:
            scored.append((distance, -_common_prefix(target, phones), abs(len(phones) - len(target)), word))
    scored.sort()
    return [entry[-1] for entry in scored[:k]]


def _common_prefix(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    count = 0
    for x, y in zip(a, b):
        if x != y:
            break
        count += 1
    return count


def near_miss_phrases(
    keyword: str,
    k: int = 300,
    word_list: str | os.PathLike = WORD_LIST,
    phone_slack: int = 2,
    voice: str = "en-us",
    per_word_limit: int = 2,
) -> list[str]:
    """The ``k`` words *and two-word phrases* that sound most like ``keyword``, across word boundaries.

    :func:`confusable_words` keeps words of about the keyword's spelling length and one word only, so it
    misses what trips detectors in running speech: longer words ("election" for "alexa") and a short
    word joined to its neighbour ("a record", "a lesson"). Here candidates are every word of the word list
    and every pair of one :data:`JOINING_WORDS` entry with a word (either order) whose phoneme count is
    within ``phone_slack`` of the keyword's. Words and phrases are ranked like :func:`confusable_words`
    and returned in turn; a word appears in at most ``per_word_limit`` phrases and no joining word in
    more than an eighth of them. Candidates containing the keyword, and exact homophones, are excluded.
    """
    keyword, target = _keyword_phonemes(keyword, voice)
    kw_words = set(keyword.split())
    low, high = max(1, len(target) - phone_slack), len(target) + phone_slack
    words = [w for w in load_word_list(str(word_list)) if not any(kw in w for kw in kw_words)]
    joining = sorted({w for w in JOINING_WORDS if w not in kw_words})
    table = phoneme_table(sorted(set(words) | set(joining)), voice)
    candidates: dict[str, tuple[str, ...]] = {}
    for word in words:
        phones = table[word]
        if len(phones) > high:
            continue
        if len(phones) >= low:
            candidates[word] = phones
        for joiner in joining:
            before, after = (f"{joiner} {word}", table[joiner] + phones), (f"{word} {joiner}", phones + table[joiner])
            for text, joined in (before, after):
                if low <= len(joined) <= high:
                    candidates[text] = joined
    texts = list(candidates)
    distances = batch_phoneme_distance(target, [candidates[t] for t in texts])
    scored = [(float(d), -_common_prefix(target, candidates[t]), abs(len(candidates[t]) - len(target)), t)
              for t, d in zip(texts, distances) if d > 0]
    scored.sort()
    singles, phrases, per_word, per_joiner = [], [], {}, {}
    joiner_limit = max(4, k // 8)
    for entry in scored:  # a word in at most `per_word_limit` phrases; no joining word fills the list
        text = entry[-1]
        if " " not in text:
            singles.append(text)
            continue
        parts = text.split()
        main, joiner = (parts[1], parts[0]) if parts[0] in joining else (parts[0], parts[1])
        if per_word.get(main, 0) < per_word_limit and per_joiner.get(joiner, 0) < joiner_limit:
            per_word[main] = per_word.get(main, 0) + 1
            per_joiner[joiner] = per_joiner.get(joiner, 0) + 1
            phrases.append(text)
    chosen = [t for pair in zip(singles, phrases) for t in pair]  # words and phrases in turn
    longer = singles if len(singles) > len(phrases) else phrases
    chosen += longer[min(len(singles), len(phrases)):]
    return chosen[:k]
