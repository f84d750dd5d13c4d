"""Cutting Japanese into sentences for translation, and putting the English back together.

A sentence ends at 。！？!? (with any closing quotes or brackets after it) unless it is
inside 「」『』（）, and at every line break. Paragraph breaks are kept exactly.
"""

from __future__ import annotations

import re

ENDERS = set("。！？!?．")
OPENERS = {"「": "」", "『": "』", "（": "）", "(": ")", "【": "】"}
CLOSERS = set(OPENERS.values())
_BREAKS = re.compile(r"(\r?\n+)")


def split_sentences(line: str, *, quotes: bool = True) -> list[str]:
    sentences: list[str] = []
    current = ""
    depth: list[str] = []  # the closers awaited, innermost last

    def end_here() -> None:
        nonlocal current
        sentences.append(current.strip())
        current = ""

    for i, ch in enumerate(line):
        current += ch
        following = line[i + 1 : i + 2]
        if quotes and ch in OPENERS:
            depth.append(OPENERS[ch])
        elif depth and ch == depth[-1]:
            depth.pop()
            # 「行くよ。」と言った goes on; 「はい。」「いいえ。」 are two sentences.
            if (
                not depth
                and current[-2:-1] in ENDERS
                and (not following or following.isspace() or following in OPENERS)
            ):
                end_here()
        elif not depth and (ch in ENDERS or (ch in CLOSERS and current[-2:-1] in ENDERS)):
            if following and (following in ENDERS or following in CLOSERS):
                continue  # "！？" or "。」": the sentence ends after them
            end_here()
    if depth:
        # A quote never closed (a typo, or a transcript cut mid-quote) would make the rest
        # of the line one long sentence: split that rest as if it had no quotes.
        sentences += split_sentences(current, quotes=False)
    elif current.strip():
        sentences.append(current.strip())
    return [s for s in sentences if s]


def split_text(text: str) -> list[str | list[str]]:
    """Lines as lists of sentences, with the line breaks between them kept as strings."""
    parts: list[str | list[str]] = []
    for piece in _BREAKS.split(text):
        if _BREAKS.fullmatch(piece):
            parts.append(piece)
        elif piece.strip():
            parts.append(split_sentences(piece))
        elif piece:
            parts.append(piece)
    return parts


def join_text(parts: list[str | list[str]]) -> str:
    return "".join(part if isinstance(part, str) else " ".join(part) for part in parts)
