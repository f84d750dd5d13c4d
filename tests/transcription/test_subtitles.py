"""Subtitles are made for reading Japanese, not dumped segments.

Every test builds segments the way workers store them (with and without word timings) and
checks the rules on the cues, and on the SRT and WebVTT read back by independent parsers
(`srt`, `webvtt-py`, and the W3C WebVTT file rules below):

- cues cut at pauses and punctuation, never inside a word (without word timings: never inside
  a run of Latin letters or digits, and then preferably where the script changes);
- at most 2 lines of at most 16 full-width characters (half-width ones count half);
- about 1 to 7 s on screen; starts strictly increasing, never overlapping, within the clip;
- all of the text, in order.
"""

import re
import unicodedata
from pathlib import Path

import pytest
import srt
import webvtt

from tests.speech.corpus import load_corpus
from transcription.subtitles import CONTENT_TYPES, Cue, cues, render

SENTENCES = dict(
    line.split("\t")
    for line in (Path(__file__).resolve().parent.parent / "speech" / "sentences.tsv").read_text().splitlines()[1:]
)
SECONDS_PER_CHARACTER = 0.14  # about 7 morae a second, as the corpus voices speak
PUNCTUATION = "、。！？…"
NO_LINE_START = "、。，．！？」』）ーっゃゅょ"
LATIN = re.compile(r"[A-Za-z0-9]")


# --- making segments as workers store them --------------------------------------


def sentences_of(text):
    """A text cut after 。！？ (kept), as an engine's segments would be."""
    return [s for s in re.findall(r"[^。！？]+[。！？]?", text) if s.strip()]


def segments_for(sentences, start=0.0, pause=0.4, words=False):
    """One segment a sentence, each spoken at SECONDS_PER_CHARACTER with a pause between."""
    segments, t = [], start
    for sentence in sentences:
        end = t + len(sentence) * SECONDS_PER_CHARACTER
        segment = {"start": round(t, 3), "end": round(end, 3), "text": sentence}
        if words:
            segment["words"] = words_of(sentence, t)
        segments.append(segment)
        t = end + pause
    return segments


WORD = re.compile(r"[一-龯々]+[ぁ-ゖ]*|[ァ-ヺー]+|[A-Za-z0-9.]+|[ぁ-ゖ]+|.")


def words_of(sentence, start, comma_pause=0.3):
    """Plausible timed words: runs of kanji with their kana, katakana, Latin, hiragana; punctuation
    stays on the word before it (as Vosk's 。 does), and a comma is followed by a short pause."""
    pieces = []
    for piece in WORD.findall(sentence):
        if pieces and piece in PUNCTUATION:
            pieces[-1] += piece
        else:
            pieces.append(piece)
    words, t = [], start
    for piece in pieces:
        spoken = len(piece.rstrip(PUNCTUATION)) or 1
        words.append({"word": piece, "start": round(t, 3), "end": round(t + spoken * SECONDS_PER_CHARACTER, 3)})
        t += spoken * SECONDS_PER_CHARACTER + (comma_pause if piece.endswith("、") else 0)
    return words


def clip_length(segments):
    return round(max(s["end"] for s in segments) + 0.5, 3)


# --- the rules --------------------------------------------------------------------


def width(line):
    """In half-width units: 2 for full-width (and East Asian ambiguous symbols), 1 for half-width."""
    return sum(
        2 if unicodedata.east_asian_width(c) in "WF" or (unicodedata.east_asian_width(c) == "A" and not c.isalnum())
        else 1
        for c in line
    )


def spaceless(text):
    return re.sub(r"\s+", "", text)


def assert_readable(found, duration, text, word_boundaries=None):
    """Every rule, on the cues of `text` (all segments' text in order) in a clip of `duration` s."""
    assert found, "no cues"
    assert spaceless("".join(line for cue in found for line in cue.lines)) == spaceless(text), "text lost or moved"
    previous = None
    for cue in found:
        assert 1 <= len(cue.lines) <= 2, cue
        for line in cue.lines:
            assert line and line == line.strip(), cue
            assert width(line) <= 32 or re.fullmatch(r"[A-Za-z0-9]+", line), f"over 16 full-width: {line!r}"
            assert line[0] not in NO_LINE_START, f"a line starts with {line[0]!r}: {cue}"
            assert "-->" not in line and "\n" not in line
        assert 0 <= cue.start < cue.end <= duration, cue
        assert cue.end - cue.start <= 7.0 + 1e-9, f"on screen over 7 s: {cue}"
        if previous:
            assert cue.start > previous.start, (previous, cue)
            assert cue.start >= previous.end, f"overlap: {previous} {cue}"
            if previous.end - previous.start < 1.0:  # only where the next cue or the clip's end stops it
                assert previous.end == cue.start, f"shorter than 1 s though the next cue allowed more: {previous}"
        previous = cue
    last = found[-1]
    assert last.end - last.start >= 1.0 or last.end == duration

    # Cuts (between lines and between cues) never fall inside a Latin word, nor (with word
    # timings) inside any word.
    at, cut_at = 0, []
    lines = [line for cue in found for line in cue.lines]
    for before, after in zip(lines, lines[1:], strict=False):
        at += len(spaceless(before))
        cut_at.append(at)
        assert not (LATIN.match(before[-1]) and LATIN.match(after[0])) or re.search(
            re.escape(before.split()[-1]) + r"\s+" + re.escape(after.split()[0]), text), (before, after)
    if word_boundaries is not None:
        assert set(cut_at) <= word_boundaries, "a cut inside a word"
    return cut_at


def script(c):
    name = unicodedata.name(c)
    return "kanji" if "IDEOGRAPH" in name else name.split()[0]


def assert_cues_end_at_clauses(found, text):
    """Most cues end where a sentence or a clause does (after 、。！？); the others where the
    script changes or after the particle を, the places a reader can take as a phrase's end."""
    ends = [cue.lines[-1][-1] for cue in found]
    assert sum(end in PUNCTUATION for end in ends) >= 0.75 * len(found), [cue.lines for cue in found]
    at = 0
    for cue in found[:-1]:
        at += len(spaceless("".join(cue.lines)))
        assert text[at - 1] in PUNCTUATION + "を" or script(text[at - 1]) != script(text[at]), cue


def boundaries_of(segments):
    """Offsets (in the text without spaces) where one word ends and the next begins."""
    at, boundaries = 0, set()
    for segment in segments:
        for word in segment["words"]:
            at += len(spaceless(word["word"]))
            boundaries.add(at)
    return boundaries


def all_text(segments):
    return "".join(s["text"] for s in segments)


W3C_TIMING = re.compile(r"^(\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3}) --> (\d{2,}):([0-5]\d):([0-5]\d)\.(\d{3})$")


def seconds(h, m, s, ms):
    return int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000


def assert_valid_webvtt(body):
    """The W3C WebVTT file rules that matter here: the header, blocks parted by one blank line,
    each a timing line and non-empty text lines without "-->", end after start, starts in
    order, `&` and `<` only as escapes."""
    assert body.startswith("WEBVTT\n\n") or body == "WEBVTT\n"
    assert body.endswith("\n") and "\n\n\n" not in body
    starts = []
    for block in body.split("\n\n")[1:]:
        timing, *payload = block.rstrip("\n").split("\n")
        match = W3C_TIMING.match(timing)
        assert match, timing
        start, end = seconds(*match.groups()[:4]), seconds(*match.groups()[4:])
        assert end > start
        starts.append(start)
        assert payload and all(payload), block
        for line in payload:
            assert "-->" not in line
            assert not re.search(r"&(?!(amp|lt|gt);)", line) and "<" not in line and ">" not in line, line
    assert starts == sorted(starts)


def assert_formats_agree(segments, text, duration):
    """SRT and WebVTT say exactly the cues, as `srt` and `webvtt-py` read them."""
    found = cues(segments, duration)
    body = render(segments, text, duration, "srt")
    subtitles = list(srt.parse(body))
    assert [s.index for s in subtitles] == list(range(1, len(found) + 1))
    assert re.findall(r"^(\d{2}:\d{2}:\d{2},\d{3}) --> (\d{2}:\d{2}:\d{2},\d{3})$", body, re.M)
    assert [(s.start.total_seconds(), s.end.total_seconds(), s.content) for s in subtitles] == [
        (cue.start, cue.end, "\n".join(cue.lines)) for cue in found
    ]
    vtt = render(segments, text, duration, "vtt")
    assert_valid_webvtt(vtt)
    captions = webvtt.from_string(vtt, strict=True).captions
    unescaped = [c.text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&") for c in captions]
    assert unescaped == ["\n".join(cue.lines) for cue in found]
    assert [(c.start_in_seconds, c.end_in_seconds) for c in captions] == [
        (int(cue.start), int(cue.end)) for cue in found
    ]
    assert [c.start for c in captions] == [f"{srt.timedelta_to_srt_timestamp(s.start).replace(',', '.')}" for s in
                                           subtitles]
    return found


# --- the project's sentences -----------------------------------------------------


@pytest.mark.parametrize("with_words", [False, True], ids=["text only", "word timings"])
def test_the_corpus_sentences_read_as_subtitles(with_words):
    """All 25 sentences, one segment each, as a stream would say them."""
    sentences = list(SENTENCES.values())
    segments = segments_for([s for text in sentences for s in sentences_of(text)], words=with_words)
    duration = clip_length(segments)
    found = assert_formats_agree(segments, all_text(segments), duration)
    assert_readable(found, duration, all_text(segments), boundaries_of(segments) if with_words else None)
    # A short sentence is one cue of one line; cues follow the speech.
    weather = next(cue for cue in found if cue.lines == ["今日はいい天気ですね。"])
    spoken = next(s for s in segments if s["text"] == "今日はいい天気ですね。")
    assert weather.start == spoken["start"]
    assert_cues_end_at_clauses(found, all_text(segments))


def test_a_sentence_over_16_characters_is_two_lines_parted_after_its_comma():
    segments = segments_for([SENTENCES["chat"]])  # コメントを書いてくれた人、本当に嬉しいです。
    assert [cue.lines for cue in cues(segments, 10)] == [["コメントを書いてくれた人、", "本当に嬉しいです。"]]


@pytest.mark.parametrize("clip_id", ["long40", "long60", "long85"])
@pytest.mark.parametrize("with_words", [False, True], ids=["text only", "word timings"])
def test_long_speech_is_cut_at_sentences_and_clauses(clip_id, with_words):
    segments = segments_for(sentences_of(SENTENCES[clip_id]), words=with_words)
    duration = clip_length(segments)
    found = assert_formats_agree(segments, all_text(segments), duration)
    cuts = assert_readable(found, duration, all_text(segments), boundaries_of(segments) if with_words else None)
    assert len(found) >= len(segments) and cuts
    assert_cues_end_at_clauses(found, all_text(segments))


def test_the_rendered_corpus_clips_get_subtitles_within_their_real_length():
    """The clips in var/corpus, with their real durations: the text spread over the speech."""
    for clip in load_corpus().values():
        duration = clip["duration"]
        parts = sentences_of(clip["text"])
        total = sum(len(p) for p in parts)
        segments, t = [], 0.2
        for part in parts:
            length = (duration - 0.4) * len(part) / total
            segments.append({"start": round(t, 3), "end": round(t + length, 3), "text": part})
            t += length
        found = assert_formats_agree(segments, clip["text"], duration)
        assert_readable(found, duration, clip["text"])


# --- what makes cutting hard -----------------------------------------------------


def test_long_unpunctuated_text_is_cut_where_the_script_changes():
    """Whisper may give no punctuation at all. Without word timings the cuts go where the script
    changes (kanji, hiragana, katakana, Latin), after the particle を or after a polite ending
    (です, ます, ました), here never elsewhere between two characters of one script."""
    text = re.sub(f"[{PUNCTUATION}]", "", SENTENCES["long85"])
    segments = [{"start": 0.0, "end": 84.0, "text": text}]
    found = assert_formats_agree(segments, text, 85.0)
    cuts = assert_readable(found, 85.0, text)
    assert len(found) >= 12
    for at in cuts:
        assert text[:at].endswith(("を", "です", "ます", "した")) or script(text[at - 1]) != script(text[at]), (
            f"cut inside a run of one script: {text[at - 5:at + 5]}")


def test_unpunctuated_speech_with_word_timings_is_cut_at_its_pauses():
    """Vosk's words, no punctuation: the long pauses between them are where cues end."""
    phrases = ["今日は", "配信を", "始めます", "新しい", "ゲームを", "遊びます", "皆さん", "よろしく", "お願いします"]
    words, t = [], 0.0
    for n, phrase in enumerate(phrases, start=1):
        words.append({"word": phrase, "start": round(t, 3), "end": round(t + 0.5, 3)})
        t += 0.5 + (1.6 if n % 3 == 0 else 0.05)  # a long pause after every third phrase
    segments = [{"start": 0.0, "end": words[-1]["end"], "text": "".join(phrases), "words": words}]
    found = cues(segments, t)
    assert_readable(found, t, "".join(phrases), boundaries_of(segments))
    assert [cue.lines for cue in found] == [
        ["今日は配信を始めます"], ["新しいゲームを遊びます"], ["皆さんよろしくお願いします"]]
    assert found[1].start == words[3]["start"]


def test_latin_words_inside_japanese_are_never_cut():
    text = ("新しいiPhoneでYouTubeを見ながらPythonとJavaScriptのプログラミングを毎日"
            "supercalifragilisticexpialidociousに勉強しています")
    for segments in (
        [{"start": 0.0, "end": 12.0, "text": text}],
        [{"start": 0.0, "end": 12.0, "text": text, "words": words_of(text, 0.0)}],
    ):
        found = assert_formats_agree(segments, text, 13.0)
        assert_readable(found, 13.0, text, boundaries_of(segments) if "words" in segments[0] else None)
        lines = [line for cue in found for line in cue.lines]
        for word in ("iPhone", "YouTube", "Python", "JavaScript"):
            assert any(word in line for line in lines), (word, lines)
        # A word longer than a line (34 half-width characters) gets a line of its own, whole.
        assert "supercalifragilisticexpialidocious" in lines


def test_two_latin_words_keep_their_space_and_may_part_there():
    segments = [{"start": 0.0, "end": 4.0, "text": "Hello worldと言いました",
                 "words": [{"word": "Hello", "start": 0.0, "end": 0.5}, {"word": "world", "start": 0.6, "end": 1.0},
                           {"word": "と", "start": 1.0, "end": 1.2}, {"word": "言いました", "start": 1.2, "end": 2.0}]}]
    assert cues(segments, 5.0)[0].lines == ["Hello worldと言いました"]


def test_a_segment_longer_than_7_seconds_is_split_or_cut_off():
    long_text = SENTENCES["long40"][:60]
    segments = [{"start": 1.0, "end": 20.0, "text": long_text}]
    found = assert_formats_agree(segments, long_text, 21.0)
    assert_readable(found, 21.0, long_text)
    assert len(found) >= 3 and found[0].start == 1.0

    # A short text spoken slowly over 12 s: one cue, cut off at 7 s.
    slow = [{"start": 0.5, "end": 12.5, "text": "はい。"}]
    assert [(c.start, c.end, c.lines) for c in cues(slow, 13.0)] == [(0.5, 7.5, ["はい。"])]


def test_tiny_segments_are_joined_or_held_for_a_second():
    segments = [
        {"start": 0.0, "end": 0.3, "text": "はい。"},
        {"start": 0.4, "end": 0.7, "text": "そうです。"},
        {"start": 3.0, "end": 3.2, "text": "え？"},
        {"start": 8.0, "end": 8.3, "text": "うん。"},
    ]
    found = assert_formats_agree(segments, all_text(segments), 8.5)
    assert_readable(found, 8.5, all_text(segments))
    assert [(c.start, c.end, c.lines) for c in found] == [
        (0.0, 1.0, ["はい。そうです。"]),  # joined, then held to 1 s
        (3.0, 4.0, ["え？"]),  # held to 1 s
        (8.0, 8.5, ["うん。"]),  # the clip ends first
    ]


def test_a_short_cue_is_held_only_until_the_next_one():
    segments = [
        {"start": 0.0, "end": 0.3, "text": "はい。", "words": [{"word": "はい。", "start": 0.0, "end": 0.3}]},
        {"start": 1.9, "end": 2.5, "text": "それでは、始めましょう。"},
        {"start": 2.6, "end": 3.0, "text": "今日は晴れです。"},
    ]
    found = cues(segments, 4.0)
    assert_readable(found, 4.0, all_text(segments))
    assert (found[0].start, found[0].end) == (0.0, 1.0)


def test_overlapping_segments_keep_their_order_without_overlapping_cues():
    segments = [
        {"start": 0.0, "end": 3.0, "text": "今日は配信を始めます。"},
        {"start": 2.0, "end": 5.0, "text": "このゲームをやったことがありますか？"},
        {"start": 2.0, "end": 2.5, "text": "えっと。"},
        {"start": 4.0, "end": 9.0, "text": "皆さん、見に来てくれてありがとうございます。"},
    ]
    found = assert_formats_agree(segments, all_text(segments), 10.0)
    assert_readable(found, 10.0, all_text(segments))


def test_segments_past_the_clip_end_are_kept_inside_it():
    segments = [
        {"start": 6.0, "end": 9.0, "text": "明日の会議は午後2時から始まります。"},
        {"start": 9.5, "end": 12.0, "text": "お昼ご飯はラーメンと餃子を食べました。"},
        {"start": 12.0, "end": 14.0, "text": "チャンネル登録と高評価をお願いします。"},
    ]
    found = assert_formats_agree(segments, all_text(segments), 10.0)
    assert_readable(found, 10.0, all_text(segments))
    assert found[-1].end == 10.0


def test_many_cues_squeezed_into_a_short_clip_still_increase():
    segments = [{"start": 0.0, "end": 0.0, "text": f"第{n}番です。"} for n in range(20)]
    found = assert_formats_agree(segments, all_text(segments), 2.0)
    assert_readable(found, 2.0, all_text(segments))


def test_text_that_would_break_a_subtitle_file_is_made_safe():
    text = "A&B <b>太字</b> --> 矢印\n\n空行"
    found = assert_formats_agree([{"start": 0.0, "end": 3.0, "text": text}], text, 4.0)
    assert all("-->" not in line for cue in found for line in cue.lines)
    vtt = render([{"start": 0.0, "end": 3.0, "text": text}], text, 4.0, "vtt")
    assert "A&amp;B &lt;b&gt;太字&lt;/b&gt;" in vtt


def test_bad_word_timings_fall_back_to_the_segment_text():
    segments = [{"start": 0.0, "end": 2.0, "text": "今日はいい天気ですね。", "words": [{"word": "今日", "start": "x"}]}]
    assert [cue.lines for cue in cues(segments, 3.0)] == [["今日はいい天気ですね。"]]


# --- formats -------------------------------------------------------------------------


def test_srt_is_numbered_from_1_with_comma_milliseconds():
    segments = segments_for(["今日はいい天気ですね。", "この曲は私の一番好きな歌です。"], start=3661.5)
    body = render(segments, all_text(segments), 3700, "srt")
    assert body == (
        "1\n01:01:01,500 --> 01:01:03,040\n今日はいい天気ですね。\n\n"
        "2\n01:01:03,440 --> 01:01:05,540\nこの曲は私の一番好きな歌です。\n"
    )


def test_webvtt_has_its_header_and_dot_milliseconds():
    segments = segments_for(["今日はいい天気ですね。"], start=0.25)
    assert render(segments, all_text(segments), 5, "vtt") == (
        "WEBVTT\n\n00:00:00.250 --> 00:00:01.790\n今日はいい天気ですね。\n"
    )


def test_txt_is_the_text_and_a_newline():
    assert render([], "今日はいい天気ですね。", 2.0, "txt") == "今日はいい天気ですね。\n"


def test_no_segments_but_text_is_one_span_over_the_clip():
    found = cues([], 3.0)
    assert found == []
    body = render([], "今日はいい天気ですね。", 3.0, "srt")
    assert body == "1\n00:00:00,000 --> 00:00:03,000\n今日はいい天気ですね。\n"


def test_nothing_said_is_an_empty_file():
    assert render([], "", 3.0, "srt") == ""
    assert render([], "", 3.0, "vtt") == "WEBVTT\n"


def test_content_types_name_utf8():
    assert CONTENT_TYPES == {
        "srt": "application/x-subrip; charset=utf-8",
        "vtt": "text/vtt; charset=utf-8",
        "txt": "text/plain; charset=utf-8",
    }
    assert Cue(0.0, 1.0, ["a"]).lines == ["a"]
