"""Subtitles from a transcription's stored segments: cues made for reading Japanese, as SRT or
WebVTT (and the plain text). Pure functions: no database, no settings.

The rules are the README's "Subtitles". In short: the text (from the segments' `words` when
they have them, else from their text, a segment's time shared among its characters) becomes a
stream of unbreakable tokens (a word, or a character with what may not be parted from it: a
Latin run, punctuation that may not start a line, an opening bracket). Each place between two
tokens gets a strength (_cut_strength: pauses, punctuation, segment ends, changes of script).
The cues are then the cheapest layout of the stream (_Layout: at most 2 lines of 16 full-width
characters, a cue per 7 s of speech, costs for poor places to cut), and _timed gives them their
times: 1 to 7 s where the neighbours allow, starts strictly increasing, no overlaps, within the
clip, in whole milliseconds.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

CONTENT_TYPES = {
    "srt": "application/x-subrip; charset=utf-8",
    "vtt": "text/vtt; charset=utf-8",
    "txt": "text/plain; charset=utf-8",
}

LINE_WIDTH = 32  # half-width units: 16 full-width characters
MAX_LINES = 2
MIN_SECONDS = 1.0
MAX_SECONDS = 7.0
# The least time a cue shows before the next one may start, when the clip is long enough.
MIN_SHOW_SECONDS = 0.5
# Pauses between words (or segments): this long always cuts, these are good places to cut.
PAUSE_CUT = 1.5
PAUSE_LONG = 0.5
PAUSE_SHORT = 0.2

# How good a place to cut is, best last.
_ANYWHERE = 0  # between two characters of one script (text without word timings only)
_WEAK = 1  # between two words; into hiragana (a particle or okurigana follows); 2|時
_SCRIPT = 2  # where the script changes; after を
_PHRASE = 3  # after 、 and the like, a space or a polite ending; a pause of PAUSE_SHORT between words
_SENTENCE = 4  # after 。！？…, at a segment's end, a pause of PAUSE_LONG
_FORCED = 5  # a pause of PAUSE_CUT or more, and the end of the text

# The cues are the layout of the whole text that costs least (dynamic programming over the
# places to cut). A cue costs _CUE_COST (fewer, fuller cues), plus what the place it ends at
# costs, plus, for two lines, what the place they part at costs; a sentence ending inside a cue
# costs _INNER_SENTENCE_COST (and is allowed in a two-line cue only where its lines part); a cue
# shorter than MIN_SECONDS costs _SHORT_COST unless a long pause or the end follows it; a cue of
# speech longer than MAX_SECONDS (cut off there) costs _OVER_COST: more than cutting where the
# script changes, less than cutting anywhere.
_CUE_COST = 1.0
_END_COST = (7.0, 4.5, 3.0, 1.5, 0.0, 0.0)  # by strength, _ANYWHERE to _FORCED
_LINE_CUT_COST = (3.0, 1.5, 0.6, 0.2, 0.0, 0.0)
_INNER_SENTENCE_COST = 1.5
_SHORT_COST = 2.0
_OVER_COST = 5.0
# Where a cue's two lines part: the end of a sentence first, then the best place, with lines of
# more even length breaking ties.
_BALANCE_WEIGHT = 1.5

_SENTENCE_END = frozenset("。．！？!?…‥.")
_COMMA = frozenset("、，,;；:：")
_CLOSING = frozenset("」』）)]］｝}〕〉》】〙〗”’")
_OPENING = frozenset("「『（([［｛{〔〈《【〘〖“‘")
# Characters a line may not start with (besides the three sets above): they belong to what precedes.
_NO_LINE_START = (
    _SENTENCE_END
    | _COMMA
    | _CLOSING
    | frozenset("ー〜～・゛゜ゝゞヽヾ々%％ぁぃぅぇぉっゃゅょゎゕゖァィゥェォッャュョヮヵヶｧｨｩｪｫｬｭｮｯｰﾞﾟ")
)
# Polite sentence endings: in text without punctuation, one of these (春です|夏は, 始めます|これ)
# is most likely the end of a sentence, unless a particle or conjunction follows (ですが, ますね).
_POLITE_ENDINGS = ("です", "ます", "でした", "ました", "ません", "ましょう")
_AFTER_POLITE = frozenset("がかねよなわけしとのもでじ")
# Inside a Latin run: 3.5, don't, e-mail, 10:15, a/b.
_JOINERS = frozenset(".,'’-:/@_&+")


@dataclass
class Cue:
    start: float
    end: float
    lines: list[str]


@dataclass
class _Token:
    """An unbreakable piece of text with its time; `cut` says how good a place to cut just
    before it is."""

    text: str  # may start with one space, never ends with one
    start: float
    end: float
    cut: int = _ANYWHERE
    timed: bool = False  # from word timings
    first_of_segment: bool = False


# --- characters ---------------------------------------------------------------


def _script(ch: str) -> str:
    o = ord(ch)
    if 0x3041 <= o <= 0x309F:
        return "hiragana"
    if 0x30A0 <= o <= 0x30FF or 0x31F0 <= o <= 0x31FF or 0xFF66 <= o <= 0xFF9F:
        return "katakana"
    if 0x4E00 <= o <= 0x9FFF or 0x3400 <= o <= 0x4DBF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FFFF:
        return "kanji"
    if ch in "々〆〇":
        return "kanji"
    if ch.isalnum():
        return "latin"  # Latin letters and digits, full-width ones too, and other alphabets
    return "other"


def _is_word_char(ch: str) -> bool:
    return _script(ch) == "latin"


def _char_width(ch: str) -> int:
    """In half-width units: full-width characters count 2, half-width ones 1."""
    if unicodedata.combining(ch):
        return 0
    kind = unicodedata.east_asian_width(ch)
    if kind in ("W", "F"):
        return 2
    if kind == "A" and not ch.isalnum():  # …, →, ○ in a Japanese font; accented letters stay narrow
        return 2
    return 1


def text_width(text: str) -> int:
    """A text's width in half-width units (a line holds LINE_WIDTH)."""
    return sum(_char_width(ch) for ch in text)


def _spoken(ch: str) -> bool:
    return _script(ch) != "other"


def _clean(text: str) -> str:
    """Control characters become spaces; runs of whitespace become one space."""
    return " ".join("".join(" " if unicodedata.category(ch) == "Cc" else ch for ch in text).split())


# --- from segments to tokens --------------------------------------------------


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _unbreakable(before: str, after: str) -> bool:
    """Whether no cut may fall between these two pieces of text."""
    if after[0] == " ":
        return False
    last, first = before[-1], after[0]
    if first in _NO_LINE_START or last in _OPENING:
        return True
    if _is_word_char(last) and _is_word_char(first):
        return True
    return last in _JOINERS and len(before) > 1 and _is_word_char(before[-2]) and _is_word_char(first)


def _words_of(segment: dict) -> list[_Token] | None:
    """The segment's word timings as tokens, or None when it has none (or unusable ones)."""
    words = segment.get("words")
    if not isinstance(words, list) or not words:
        return None
    tokens: list[_Token] = []
    for word in words:
        if not isinstance(word, dict) or not isinstance(word.get("word"), str):
            return None
        start, end = _number(word.get("start")), _number(word.get("end"))
        if start is None or end is None:
            return None
        text = _clean(word["word"])
        if not text:
            continue
        # Words read as their segment's text joined without spaces, except between two Latin
        # words (worker_client.japanese.join_words): those are apart.
        apart = bool(tokens) and _is_word_char(tokens[-1].text[-1]) and _is_word_char(text[0])
        lead = " " if apart or word["word"][:1].isspace() else ""
        tokens.append(_Token(lead + text, start, max(start, end), timed=True))
    return tokens or None


def _characters_of(text: str, start: float, end: float) -> list[_Token]:
    """A segment without word timings: one token a character (a space joins the next one), its
    time shared among the spoken characters in proportion."""
    pieces: list[str] = []
    space = False
    for ch in text:
        if ch == " ":
            space = bool(pieces)
            continue
        pieces.append((" " if space else "") + ch)
        space = False
    weights = [sum(1 for ch in piece if _spoken(ch)) for piece in pieces]
    total = sum(weights)
    if total == 0:
        weights, total = [1] * len(pieces), len(pieces)
    tokens, done = [], 0
    for piece, weight in zip(pieces, weights, strict=True):
        token_start = start + (end - start) * done / total
        done += weight
        tokens.append(_Token(piece, token_start, start + (end - start) * done / total))
    return tokens


def _tokens(segments: Iterable[Any]) -> list[_Token]:
    """All segments' text as one stream of unbreakable tokens, in order, with times that never
    go back."""
    usable = []
    for segment in segments:
        if not isinstance(segment, dict):
            continue
        start, end = _number(segment.get("start")), _number(segment.get("end"))
        if start is None or end is None:
            continue
        usable.append((max(start, 0.0), max(end, start, 0.0), segment))
    usable.sort(key=lambda item: item[0])  # stable: segments that start together keep their order

    stream: list[_Token] = []
    for start, end, segment in usable:
        tokens = _words_of(segment)
        if tokens is None:
            raw = segment.get("text")
            text = _clean(raw) if isinstance(raw, str) else ""
            tokens = _characters_of(text, start, end) if text else []
        if not tokens:
            continue
        first = tokens[0]
        first.first_of_segment = True
        # Segments are separate utterances: two Latin words across their boundary stay apart.
        if stream and first.text[0] != " " and _is_word_char(stream[-1].text[-1]) and _is_word_char(first.text[0]):
            first.text = " " + first.text
        for token in tokens:
            if stream and _unbreakable(stream[-1].text, token.text):
                joined = stream[-1]
                joined.text += token.text
                joined.end = max(joined.end, token.end)
                continue
            stream.append(token)

    previous_start = 0.0
    for token in stream:
        token.start = max(token.start, previous_start)
        token.end = max(token.end, token.start)
        previous_start = token.start
    recent = ""  # the text just before a place to cut, for _POLITE_ENDINGS
    for before, token in itertools.pairwise(stream):
        recent = (recent + before.text)[-8:]
        token.cut = _cut_strength(before, token, recent)
    return stream


def _last_letter_script(text: str) -> str:
    for ch in reversed(text):
        if _spoken(ch):
            return _script(ch)
    return "other"


def _first_letter_script(text: str) -> str:
    for ch in text:
        if _spoken(ch):
            return _script(ch)
    return "other"


def _cut_strength(before: _Token, after: _Token, recent: str) -> int:
    pause = after.start - before.end
    if pause >= PAUSE_CUT:
        return _FORCED
    strength = _ANYWHERE
    ending = before.text.rstrip("".join(_CLOSING))
    if ending and ending[-1] in _SENTENCE_END:
        strength = _SENTENCE
    elif ending and ending[-1] in _COMMA:
        strength = _PHRASE
    if after.first_of_segment:
        strength = max(strength, _SENTENCE)
    elif after.text[0] == " ":
        strength = max(strength, _PHRASE)
    if pause >= PAUSE_LONG:
        strength = max(strength, _SENTENCE)
    elif pause >= PAUSE_SHORT and after.timed:
        strength = max(strength, _PHRASE)
    left, right = _last_letter_script(before.text), _first_letter_script(after.text)
    if left != right:
        # Into hiragana a particle or okurigana follows (配信|を, 始|めます, iPhone|で): a line
        # should not start with it; nor should a number lose its counter (2|時, 450|円).
        weak = right == "hiragana" or (before.text[-1].isdigit() and right == "kanji")
        strength = max(strength, _WEAK if weak else _SCRIPT)
    if ending.endswith("を"):  # only ever a particle: what follows starts a phrase
        strength = max(strength, _SCRIPT)
    if recent.endswith(_POLITE_ENDINGS) and after.text[0] not in _AFTER_POLITE:
        strength = max(strength, _PHRASE)
    if before.timed and after.timed:
        strength = max(strength, _WEAK)  # between two words
    return strength


# --- from tokens to cues ------------------------------------------------------


class _Layout:
    """Widths of runs of tokens in O(1) (prefix sums), for trying every place to cut."""

    def __init__(self, tokens: Sequence[_Token]):
        self.tokens = tokens
        self.sums = [0]
        for token in tokens:
            self.sums.append(self.sums[-1] + text_width(token.text))

    def width(self, a: int, b: int) -> int:
        """tokens[a:b] as one line (a line drops its leading space)."""
        return self.sums[b] - self.sums[a] - (1 if self.tokens[a].text[0] == " " else 0)

    def fits(self, a: int, b: int) -> bool:
        return b - a == 1 or self.width(a, b) <= LINE_WIDTH

    def split(self, a: int, b: int) -> int | None:
        """Where tokens[a:b] part into two lines (the second line's first token): 0 when they fit
        on one line, None when they do not fit on two."""
        if self.fits(a, b):
            return 0
        total = self.width(a, b)
        best: tuple[float, int] | None = None
        for k in range(a + 1, b):
            if not (self.fits(a, k) and self.fits(k, b)):
                continue
            cut = self.tokens[k].cut
            balance = 1 - abs(self.width(a, k) - self.width(k, b)) / total
            score = cut + _BALANCE_WEIGHT * balance + (10 if cut >= _SENTENCE else 0)
            if best is None or score > best[0]:
                best = (score, k)
        return None if best is None else best[1]

    def cost(self, a: int, b: int, split: int) -> float | None:
        """What the cue tokens[a:b] costs, parted at `split`; None if it may not be a cue."""
        tokens = self.tokens
        cut_after = tokens[b].cut if b < len(tokens) else _FORCED
        cost = _CUE_COST + _END_COST[cut_after]
        if split:
            cost += _LINE_CUT_COST[tokens[split].cut]
        for m in range(a + 1, b):
            if tokens[m].cut >= _SENTENCE:
                if split and m != split:
                    return None  # a sentence ends inside one of two lines
                cost += _INNER_SENTENCE_COST
        seconds = tokens[b - 1].end - tokens[a].start
        if seconds < MIN_SECONDS and cut_after < _FORCED:
            cost += _SHORT_COST
        if seconds > MAX_SECONDS:
            cost += _OVER_COST
        return cost

    def cues(self) -> list[tuple[int, int, int]]:
        """The cheapest layout: (first token, end, split) for each cue."""
        n = len(self.tokens)
        best = [math.inf] * n + [0.0]
        choice: list[tuple[int, int]] = [(0, 0)] * n
        for a in reversed(range(n)):
            for b in range(a + 1, n + 1):
                if b - 1 > a and self.tokens[b - 1].cut >= _FORCED:
                    break
                split = self.split(a, b)
                if split is None:
                    break
                cost = self.cost(a, b, split)
                if cost is not None and cost + best[b] <= best[a]:
                    best[a], choice[a] = cost + best[b], (b, split)
        layout, a = [], 0
        while a < n:
            b, split = choice[a]
            layout.append((a, b, split))
            a = b
        return layout


def _line_text(tokens: Sequence[_Token]) -> str:
    # "-->" would end a WebVTT cue's text (and confuse SRT readers).
    return "".join(t.text for t in tokens).strip().replace("-->", "→")


def cues(segments: list[dict], duration: float) -> list[Cue]:
    """The stored segments (with or without `words`) as cues, timed within 0..duration s."""
    tokens = _tokens(segments)
    groups: list[tuple[float, float, list[str]]] = []
    for a, b, split in _Layout(tokens).cues():
        lines = [tokens[a:split], tokens[split:b]] if split else [tokens[a:b]]
        groups.append((tokens[a].start, tokens[b - 1].end, [_line_text(line) for line in lines]))
    return _timed(groups, duration)


def _timed(groups: list[tuple[float, float, list[str]]], duration: float) -> list[Cue]:
    """Times in whole milliseconds: starts strictly increasing (each cue shows at least
    MIN_SHOW_SECONDS before the next when the clip allows), no overlaps, 1 to 7 s where the
    neighbours allow, all within the clip."""
    n = len(groups)
    if n == 0:
        return []
    seconds = _number(float(duration)) or 0.0
    clip = round(seconds * 1000) if seconds > 0 else 0
    if clip <= 0:  # no usable duration: the clip ends where the speech does
        clip = max(round(end * 1000) for _, end, _ in groups)
    step = max(1, min(round(MIN_SHOW_SECONDS * 1000), clip // n))
    clip = max(clip, step * n)  # only for absurd input: more cues than milliseconds

    starts = [min(max(round(start * 1000), 0), clip) for start, _, _ in groups]
    for k in range(1, n):
        starts[k] = max(starts[k], starts[k - 1] + step)
    limit = clip - step
    for k in reversed(range(n)):
        starts[k] = min(starts[k], limit)
        limit = starts[k] - step

    timed = []
    for k, (_, end, lines) in enumerate(groups):
        next_start = starts[k + 1] if k + 1 < n else clip
        end_ms = max(round(end * 1000), starts[k] + round(MIN_SECONDS * 1000))
        end_ms = min(end_ms, starts[k] + round(MAX_SECONDS * 1000), next_start)
        timed.append(Cue(start=starts[k] / 1000, end=end_ms / 1000, lines=lines))
    return timed


# --- rendering ------------------------------------------------------------------


def _timestamp(seconds: float, separator: str) -> str:
    ms = round(seconds * 1000)
    hours, ms = divmod(ms, 3_600_000)
    minutes, ms = divmod(ms, 60_000)
    secs, ms = divmod(ms, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{ms:03d}"


def _vtt_escaped(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def to_srt(found: Sequence[Cue]) -> str:
    blocks = [
        f"{number}\n{_timestamp(cue.start, ',')} --> {_timestamp(cue.end, ',')}\n" + "\n".join(cue.lines) + "\n"
        for number, cue in enumerate(found, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(found: Sequence[Cue]) -> str:
    blocks = ["WEBVTT\n"] + [
        f"{_timestamp(cue.start, '.')} --> {_timestamp(cue.end, '.')}\n"
        + "\n".join(_vtt_escaped(line) for line in cue.lines)
        + "\n"
        for cue in found
    ]
    return "\n".join(blocks)


def render(segments: list[dict], text: str, duration: float, fmt: str) -> str:
    """A transcription as "srt", "vtt" or "txt" (the text and a newline). A transcription
    without usable segments gets one span over the whole clip for its text."""
    if fmt == "txt":
        return text.strip() + "\n"
    if fmt not in ("srt", "vtt"):
        raise ValueError(f"unknown subtitle format {fmt!r}")
    found = cues(segments, duration)
    if not found and _clean(text):
        found = cues([{"start": 0.0, "end": float(duration), "text": text}], duration)
    return to_srt(found) if fmt == "srt" else to_vtt(found)
