"""The translation pipeline on a real (tiny, random-weight) CTranslate2 model."""
import math
import threading

import pytest

from translation import engine, services


class SpyTranslator:
    """The real translator, remembering what each translate_batch call was given."""

    def __init__(self, translator):
        self.translator = translator
        self.calls = []

    def translate_batch(self, source, **options):
        self.calls.append((source, options))
        return self.translator.translate_batch(source, **options)


@pytest.fixture
def spy(with_model, monkeypatch):
    spy = SpyTranslator(with_model.translator)
    monkeypatch.setattr(with_model, "translator", spy)
    return spy


def run_in_threads(function, arguments):
    results, errors = {}, []

    def call(argument):
        try:
            results[argument] = function(argument)
        except Exception as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(argument,)) for argument in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    return results


def test_without_a_model_it_says_how_to_install_one(settings, tmp_path):
    settings.JPT_TRANSLATION_MODEL = str(tmp_path / "nothing")
    with pytest.raises(services.TranslationUnavailable, match="python manage.py translation_model fetch"):
        services.translate("こんにちは。")
    assert services.status() == {"available": False, "model": None}


def test_one_request_is_one_batch_call(with_model, spy):
    result = services.translate("今日はいい天気ですね。配信を始めます。駅はどこですか？")
    assert len(spy.calls) == 1 and len(spy.calls[0][0]) == 3
    assert result.text and result.model == "opus-mt-tiny"


def test_the_call_is_split_over_the_model_replicas(with_model, spy, settings):
    services.translate("".join(f"{i}番目の文です。" for i in range(10)))
    assert spy.calls[0][1]["max_batch_size"] == math.ceil(10 / settings.JPT_TRANSLATION_INTER_THREADS)


def test_paragraphs_come_back_where_they_were(with_model):
    result = services.translate("今日はいい天気ですね。\n\n配信を始めます。\nありがとうございます。")
    first, rest = result.text.split("\n\n")
    assert first and len(rest.split("\n")) == 2


def test_repeated_sentences_come_from_the_cache(with_model, spy):
    first = services.translate("また明日会いましょう。")
    calls = len(spy.calls)
    again = services.translate("また明日会いましょう。")
    assert len(spy.calls) == calls, "no model call for a cached sentence"
    assert again.text == first.text


def test_a_sentence_repeated_in_one_request_is_translated_once(with_model, spy):
    result = services.translate("はい、わかりました。\nはい、わかりました。\nコーヒーを一杯ください。")
    assert len(spy.calls[0][0]) == 2
    first, second, _ = result.text.split("\n")
    assert first == second


def test_a_long_sentence_is_cut_not_truncated(with_model, monkeypatch, spy):
    monkeypatch.setattr(with_model, "max_input_tokens", 8)
    sentence = "、".join(["新しいコンピューターを買いました"] * 6) + "。"
    chunks = with_model.chunks(sentence)
    assert len(chunks) > 1 and all(len(c) <= 8 for c in chunks)
    assert sum(chunks, []) == with_model.source.encode(sentence, out_type=str), "nothing is dropped"
    assert services.translate(sentence).text
    assert spy.calls[0][0] == chunks, "every piece goes to the model"


def test_decoding_leaves_room_for_english_longer_than_the_japanese(with_model, spy):
    services.translate("新しいコンピューターを買いました、週末は映画を見に行きます。")
    source, options = spy.calls[0]
    assert options["max_decoding_length"] >= engine.LENGTH_FACTOR * max(len(piece) for piece in source)


def test_concurrent_requests_share_one_model_and_get_their_own_answers(with_model, spy, monkeypatch):
    texts = [f"日本語を勉強しています。{i}回目です。" for i in range(8)]
    results = run_in_threads(services.translate, texts)
    assert services.get_model() is with_model
    assert len(spy.calls) <= len(texts), "no request needs more than one call"
    monkeypatch.setattr(with_model, "cache", engine.SentenceCache(0))
    for text in texts:
        # Random weights never say "stop": how far each answer runs depends on the call's
        # longest piece, so alone and shared agree up to the shorter one's end.
        shared, alone = results[text].text, services.translate(text).text
        assert shared.startswith(alone) or alone.startswith(shared), "each got its own answer"


def test_status_names_the_installed_model(with_model):
    assert services.status() == {"available": True, "model": "opus-mt-tiny", "version": ""}
