"""Making Vosk's word list read as Japanese.

Vosk separates every word with a space and adds no punctuation. Japanese is written
without spaces, so spaces stay only between two Latin words ("Hello world"), and a
pause long enough to end a sentence becomes 。 — or ？ after a question particle.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

SENTENCE_PAUSE_SECONDS = 0.5
QUESTION_ENDINGS = ("か", "かな", "かい", "の？", "だろう", "でしょう")
_LATIN = re.compile(r"[A-Za-z0-9]")


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float


def _is_latin(text: str) -> bool:  # one character at a time
    """A word written in Latin letters or digits (needs a space before another such word)."""
    return bool(text) and bool(_LATIN.search(unicodedata.normalize("NFKC", text)))


def join_words(words: list[str]) -> str:
    """Join words without spaces, except between two Latin words."""
    out = ""
    for word in words:
        word = word.strip()
        if not word:
            continue
        if out and _is_latin(out[-1]) and _is_latin(word[0]):
            out += " "
        out += word
    return out


def _end_mark(sentence: str) -> str:
    return "？" if sentence.endswith(QUESTION_ENDINGS) else "。"


def sentences_from_words(words: list[Word], pause=SENTENCE_PAUSE_SECONDS) -> list[tuple[float, float, str]]:
    """Group timed words into punctuated sentences at pauses: [(start, end, text)]."""
    groups: list[list[Word]] = []
    for word in words:
        if not word.text.strip():
            continue
        if groups and word.start - groups[-1][-1].end < pause:
            groups[-1].append(word)
        else:
            groups.append([word])
    sentences = []
    for group in groups:
        text = join_words([w.text for w in group])
        sentences.append((round(group[0].start, 3), round(group[-1].end, 3), text + _end_mark(text)))
    return sentences
