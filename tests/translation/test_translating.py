"""The translation pipeline on a real (tiny, random-weight) CTranslate2 model."""
import threading

import pytest

from translation import services


def test_without_a_model_it_says_how_to_install_one(settings, tmp_path):
    settings.JPT_TRANSLATION_MODEL = str(tmp_path / "nothing")
    with pytest.raises(services.TranslationUnavailable, match="translation_model fetch"):
        services.translate("こんにちは。")
    assert services.status() == {"available": False, "model": None}


def test_one_request_is_one_batch_call(with_model):
    before = with_model.batches
    result = services.translate("今日はいい天気ですね。配信を始めます。駅はどこですか？")
    assert with_model.batches == before + 1
    assert result.text and result.model == "opus-mt-tiny"


def test_paragraphs_come_back_where_they_were(with_model):
    result = services.translate("今日はいい天気ですね。\n\n配信を始めます。\nありがとうございます。")
    first, rest = result.text.split("\n\n")
    assert first and len(rest.split("\n")) == 2


def test_repeated_sentences_come_from_the_cache(with_model):
    services.translate("また明日会いましょう。")
    before = with_model.batches
    again = services.translate("また明日会いましょう。")
    assert with_model.batches == before, "no model call for a cached sentence"
    assert again.text == services.translate("また明日会いましょう。").text


def test_a_long_sentence_is_cut_not_truncated(with_model, settings):
    with_model.max_input_tokens = 8
    try:
        sentence = "、".join(["新しいコンピューターを買いました"] * 6) + "。"
        chunks = with_model.chunks(sentence)
        assert len(chunks) > 1 and all(len(c) <= 8 for c in chunks)
        assert sum(chunks, []) == with_model.source.encode(sentence, out_type=str), "nothing is dropped"
        assert services.translate(sentence).text
    finally:
        with_model.max_input_tokens = settings.JPT_TRANSLATION_MAX_INPUT_TOKENS


def test_concurrent_requests_share_one_model(with_model):
    results, errors = [], []

    def call(i):
        try:
            results.append(services.translate(f"日本語を勉強しています。{i}回目です。").text)
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and len(results) == 8
    assert services.get_model() is with_model


def test_status_names_the_installed_model(with_model):
    assert services.status()["available"] is True
