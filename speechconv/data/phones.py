"""Phone transcriptions of text for phone-recognition (CTC) targets: espeak-ng en-us phonemes.

Words are phonemized one by one (:func:`speechconv.data.confusables.phonemize`), variant marks are
folded into their base phoneme (``@2`` -> ``@``, ``t#`` -> ``t``, ``r-`` -> ``r``) and pauses and
glottal stops are dropped, which leaves the fixed inventory :data:`PHONES`. Index 0 of a phone-id
sequence is never used: it is the CTC blank.
"""

from __future__ import annotations

import re

from speechconv.errors import SpeechconvError

# espeak-ng en-us phoneme mnemonics, variants folded (consonants, then vowels and diphthongs)
PHONES = (
    "p", "b", "t", "d", "k", "g", "f", "v", "T", "D", "s", "z", "S", "Z", "h", "tS", "dZ",
    "m", "n", "N", "l", "r", "w", "j",
    "@", "3", "3:", "a", "aa", "A:", "A@", "0", "O", "O:", "O@", "V", "E", "e@", "eI", "I", "i", "i:",
    "i@", "U", "u:", "U@", "oU", "o@", "aI", "aI@", "aU", "OI", "@L",
)
BLANK = 0
_INDEX = {phone: i + 1 for i, phone in enumerate(PHONES)}
_DROPPED = {"?", ";", "_", "_:", "_!", "_^_", "||", "|"}
_WORD = re.compile(r"[a-z0-9']+")


class PhoneError(SpeechconvError):
    """A phoneme outside the inventory."""


def normalise_phone(symbol: str) -> str | None:
    """The inventory phone of an espeak-ng symbol (``None`` for pauses and glottal stops)."""
    if symbol in _DROPPED or symbol.startswith("_"):
        return None
    if symbol in _INDEX:
        return symbol
    base = symbol.rstrip("0123456789#-")
    if base in _INDEX:
        return base
    if base.endswith("3") and base[:-1] in _INDEX:  # i@3, aI3: r-coloured variants
        return base[:-1]
    raise PhoneError(f"espeak-ng phoneme {symbol!r} is not in the phone inventory")


def words(text: str) -> list[str]:
    """Lower-case words of ``text`` (letters, digits, apostrophes); ``_`` separates words too."""
    return _WORD.findall(text.lower().replace("_", " "))


def text_phones(texts: list[str], voice: str = "en-us") -> dict[str, tuple[str, ...]]:
    """Inventory phones of each text (word by word, so no cross-word assimilation)."""
    from speechconv.data.confusables import phonemize

    vocabulary = sorted({w for text in texts for w in words(text)})
    spelled = phonemize(vocabulary, voice) if vocabulary else {}
    result = {}
    for text in texts:
        phones = [normalise_phone(s) for w in words(text) for s in spelled[w]]
        result[text] = tuple(p for p in phones if p is not None)
    return result


def phone_ids(phones: tuple[str, ...] | list[str]) -> list[int]:
    """1-based ids of inventory phones (0 is the CTC blank)."""
    return [_INDEX[p] for p in phones]
