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
    keyword = keyword.strip().lower()
    if not keyword:
        raise ConfusablesError("keyword is empty")
    target = split_phonemes(" ".join(_espeak_batch([keyword], voice)))
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
