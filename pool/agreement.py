"""When two workers' transcripts of one clip agree: their character error rate, after
normalising away what engines differ on without mishearing (width, punctuation, spaces), is
under a threshold that honest engines clear and junk does not (calibrated in the README,
`bench/agreement.py`)."""

from __future__ import annotations

import unicodedata

from rapidfuzz.distance import Levenshtein

# Two transcripts whose normalised character error rate is at most this agree. Calibrated on the
# corpus (README, "Agreement threshold"): Whisper base at eight settings, on clean and noisy audio,
# gave honest pairs a p99 of 0.43 (short sentences vary most: a word written in kana by one
# setting and in kanji by another costs several characters); every junk pair scored 0.5 or more.
# The nearest junk is a transcript's own first half, at exactly 0.5 or above by construction, so the
# threshold stays under it: 0.45 is just below the midway point (0.46), leaning towards rejecting
# junk because a wrongly refused honest pair costs a third run, a wrongly accepted junk text a
# caller's result. One threshold for every length: long texts' honest pairs stay far below it (at
# most 0.12 here) and no junk class comes nearer at any length.
AGREEMENT_MAX_CER = 0.45
# Characters that differ between engines without a word misheard (the long-vowel mark is kept:
# it is part of words).
_IGNORED = set("、。，．,.!?！？「」『』（）()・…〜~ 　\n\t\"'")


def normalise(text: str) -> str:
    """NFKC (full/half width alike), then no punctuation, symbols' spacing or whitespace."""
    text = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in text if ch not in _IGNORED and not unicodedata.category(ch).startswith(("P", "Z")))


def cer(first: str, second: str) -> float:
    """The two transcripts' character error rate, symmetric: edits over the longer one's length
    (0 when both are empty, 1 when only one is)."""
    a, b = normalise(first), normalise(second)
    if not a and not b:
        return 0.0
    return Levenshtein.distance(a, b) / max(len(a), len(b))


def agree(first: str, second: str) -> bool:
    """Whether two transcripts of one clip say the same thing, as honest engines do."""
    return cer(first, second) <= AGREEMENT_MAX_CER
