"""Making Vosk's word list read as Japanese.

Vosk separates every word with a space and adds no punctuation. Japanese is written
without spaces, so spaces stay only between two Latin words ("Hello world"), and a
pause long enough to end a sentence becomes 。 — or ？ after a question particle.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, replace

SENTENCE_PAUSE_SECONDS = 0.5
QUESTION_ENDINGS = ("か", "かな", "かい", "の？", "だろう", "でしょう")
_LATIN = re.compile(r"[A-Za-z0-9]")


@dataclass(frozen=True)
class Word:
    text: str
    start: float
    end: float
    conf: float | None = None  # the engine's confidence in it (0 to 1), when it gives one


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


def sentence_words(words: list[Word], pause=SENTENCE_PAUSE_SECONDS) -> list[list[Word]]:
    """Timed words grouped into sentences at pauses, each word's text stripped, and the last
    word of each sentence carrying its end mark: `join_words` of a group is the sentence."""
    groups: list[list[Word]] = []
    for word in words:
        if not word.text.strip():
            continue
        word = replace(word, text=word.text.strip())
        if groups and word.start - groups[-1][-1].end < pause:
            groups[-1].append(word)
        else:
            groups.append([word])
    for group in groups:
        text = join_words([w.text for w in group])
        group[-1] = replace(group[-1], text=group[-1].text + _end_mark(text))
    return groups


def sentences_from_words(words: list[Word], pause=SENTENCE_PAUSE_SECONDS) -> list[tuple[float, float, str]]:
    """Group timed words into punctuated sentences at pauses: [(start, end, text)]."""
    return [
        (round(group[0].start, 3), round(group[-1].end, 3), join_words([w.text for w in group]))
        for group in sentence_words(words, pause)
    ]


def whole_words(pieces: list[Word]) -> list[Word]:
    """Whisper's timed pieces of a segment as words that `join_words` joins back into its text.

    For Japanese Whisper times each token (a leading space marks where its text had one), so a
    Latin word or a number may come in pieces ("Py", "thon"; "20", "24"): pieces glued to a
    Latin piece before them are one word, timed from the first piece's start to the last's end.
    Spaces go, as in the segment's text."""
    words: list[Word] = []
    for piece in pieces:
        text = join_words(piece.text.split())
        if not text:
            continue
        glued = not piece.text[0].isspace()
        if glued and words and _is_latin(words[-1].text[-1]) and _is_latin(text[0]):
            words[-1] = replace(words[-1], text=words[-1].text + text, end=piece.end)
        else:
            words.append(replace(piece, text=text))
    return words
