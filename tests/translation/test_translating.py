"""The translation pipeline on a real (tiny, random-weight) CTranslate2 model."""
import math
import subprocess
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest

from translation import engine, services


class SpyTranslator:
    """The model's real translators, remembering what each translate_batch call was given
    and which of them ran it: "solo" (every core on one call) or "replicas"."""

    def __init__(self, model):
        self.calls = []
        self.ran_on = []
        self.replicas = self._spy("replicas", model.translator)
        self.solo = self._spy("solo", model.solo)

    def _spy(self, name, translator):
        def translate_batch(source, **options):
            self.calls.append((source, options))
            self.ran_on.append(name)
            return translator.translate_batch(source, **options)
        return SimpleNamespace(translate_batch=translate_batch)

    def pieces(self):
        """Every piece sent, over all calls."""
        return [piece for source, _ in self.calls for piece in source]


class EchoTranslator:
    """Answers every piece with its own tokens: a random model's answers all look alike,
    an echo shows which answer went where."""

    def translate_batch(self, source, asynchronous=False, **options):
        results = [SimpleNamespace(hypotheses=[tokens]) for tokens in source]
        return [SimpleNamespace(result=lambda r=r: r) for r in results] if asynchronous else results


@pytest.fixture
def spy(with_model, monkeypatch):
    """The model as it is, but counting calls, with a cache that earlier tests did not fill."""
    spy = SpyTranslator(with_model)
    monkeypatch.setattr(with_model, "translator", spy.replicas)
    monkeypatch.setattr(with_model, "solo", spy.solo)
    monkeypatch.setattr(with_model, "cache", engine.SentenceCache(64))
    return spy


@pytest.fixture
def echo(with_model, monkeypatch):
    monkeypatch.setattr(with_model, "translator", EchoTranslator())
    monkeypatch.setattr(with_model, "solo", EchoTranslator())
    monkeypatch.setattr(with_model, "cache", engine.SentenceCache(0))


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


def test_a_short_lone_request_is_one_batch_on_every_core(with_model, spy, settings):
    """Nothing else running: the copy of the model whose threads all work on one batch."""
    assert settings.JPT_TRANSLATION_INTER_THREADS == 2 and with_model.solo is not with_model.translator
    calls = with_model.calls
    result = services.translate("今日はいい天気ですね。配信を始めます。駅はどこですか？")
    assert with_model.calls == calls + 1
    assert spy.ran_on == ["solo"]
    assert [len(source) for source, options in spy.calls] == [3]
    assert spy.calls[0][1]["max_batch_size"] == 3
    assert result.text and result.model == "opus-mt-tiny"


def test_a_long_lone_request_gets_even_shares_on_the_replicas(with_model, spy):
    """Split by total length, not by count: the replica with the long sentences gets fewer."""
    count = engine.SOLO_MAX_PIECES + 4
    services.translate("".join(f"{'とても' * i}長い文です。" for i in range(count)))
    assert spy.ran_on == ["replicas", "replicas"]
    shares = sorted((sorted(len(piece) for piece in source) for source, _ in spy.calls), key=max)
    assert sum(map(len, shares)) == count
    assert abs(sum(shares[0]) - sum(shares[1])) <= max(shares[0] + shares[1])
    assert max(shares[0]) <= min(shares[1]), "each replica's batch holds pieces of similar length"


def test_with_another_call_running_a_call_goes_to_a_replica(with_model, spy, monkeypatch):
    """The cores are taken then: one batch on a replica wastes the least CPU."""
    monkeypatch.setattr(with_model.shared, "_busy", 1)  # the other call; this one makes 2
    services.translate("".join(f"{'とても' * i}長い文です。" for i in range(10)))
    assert spy.ran_on == ["replicas"]
    assert [len(source) for source, _ in spy.calls] == [10]


def test_one_replica_means_one_copy_of_the_model(with_model):
    model = engine.TranslationModel(with_model.path, inter_threads=1, intra_threads=2)
    assert model.solo is model.translator
    assert model.translate_sentences(["駅はどこですか？"])[0]


def test_paragraphs_come_back_where_they_were(echo):
    result = services.translate("今日はいい天気ですね。配信を始めます。\n\nありがとうございます。\n駅はどこですか。")
    assert result.text == "今日はいい天気ですね。 配信を始めます。\n\nありがとうございます。\n駅はどこですか。"


def test_repeated_sentences_come_from_the_cache(with_model, spy):
    first = services.translate("また明日会いましょう。")
    calls = len(spy.calls)
    again = services.translate("また明日会いましょう。")
    assert len(spy.calls) == calls, "no model call for a cached sentence"
    assert again.text == first.text


def test_a_sentence_repeated_in_one_request_is_translated_once(with_model, spy):
    result = services.translate("はい、わかりました。\nはい、わかりました。\nコーヒーを一杯ください。")
    assert len(spy.pieces()) == 2
    first, second, _ = result.text.split("\n")
    assert first == second


def test_a_long_sentence_is_cut_not_truncated(with_model, monkeypatch, spy):
    monkeypatch.setattr(with_model, "max_input_tokens", 8)
    sentence = "、".join(["新しいコンピューターを買いました"] * 6) + "。"
    chunks = with_model.chunks(sentence)
    assert len(chunks) > 1 and all(len(c) <= 8 for c in chunks)
    assert sum(chunks, []) == with_model.source.encode(sentence, out_type=str), "nothing is dropped"
    assert services.translate(sentence).text
    assert sorted(spy.pieces()) == sorted(chunks), "every piece goes to the model"


def test_the_pieces_of_a_cut_sentence_are_put_back_in_order(echo, with_model, monkeypatch):
    monkeypatch.setattr(with_model, "max_input_tokens", 8)
    sentence = "、".join(["新しいコンピューターを買いました"] * 6) + "。"
    assert services.translate(sentence).text.replace(" ", "") == sentence


def test_decoding_leaves_room_for_english_longer_than_the_japanese(with_model, spy):
    services.translate("新しいコンピューターを買いました、週末は映画を見に行きます。")
    source, options = spy.calls[0]
    assert options["max_decoding_length"] >= engine.LENGTH_FACTOR * max(len(piece) for piece in source)


def test_concurrent_requests_share_one_model(with_model, spy):
    texts = [f"日本語を勉強しています。{i}回目です。" for i in range(8)]
    run_in_threads(services.translate, texts)
    assert services.get_model() is with_model
    assert 1 <= len(spy.calls) <= len(texts), "no request needs more than one call"


def test_concurrent_requests_each_get_their_own_answer(echo):
    texts = [f"{'日本語を勉強しています。' * (i % 3 + 1)}{i}回目です。" for i in range(16)]
    results = run_in_threads(services.translate, texts)
    assert {text: result.text.replace(" ", "") for text, result in results.items()} == {t: t for t in texts}


def test_status_names_the_installed_model(with_model):
    assert services.status() == {"available": True, "model": "opus-mt-tiny", "version": ""}


def test_the_decoding_bound_is_a_setting(tiny_model_dir):
    """Operators (and the bench, whose random weights never stop) can bound decoding tighter."""
    model = engine.TranslationModel(tiny_model_dir, length_factor=1.5, cache_size=0)
    pieces = model.chunks("新しいコンピューターを買いました、週末は映画を見に行きます。")
    options = model.decoding_options(pieces)
    assert options["max_decoding_length"] == max(engine.MIN_DECODING_LENGTH_CAP, math.ceil(1.5 * len(pieces[0])))
    outputs = model.translator.translate_batch(pieces, **options)
    assert len(outputs[0].hypotheses[0]) <= options["max_decoding_length"]


def test_each_sentence_stops_at_its_own_bound(tiny_model_dir):
    """A short sentence batched with a long one is not decoded as long as the long one."""
    model = engine.TranslationModel(tiny_model_dir, length_factor=1.5, cache_size=0)
    short, long = (model.chunks("週末は映画を見に行きます。" * n)[0] for n in (2, 8))
    assert len(long) > 2 * len(short) and model.decoding_cap(len(short)) > engine.MIN_DECODING_LENGTH_CAP
    outputs = model.translator.translate_batch([short, long, short], **model.decoding_options([short, long, short]))
    lengths = [len(output.hypotheses[0]) for output in outputs]
    assert lengths[0] == lengths[2] <= model.decoding_cap(len(short)) < lengths[1] <= model.decoding_cap(len(long))


def test_a_process_that_translated_exits_cleanly(tiny_model_dir):
    """CTranslate2 keeps the last call's Python callback in its threads; left to interpreter
    shutdown, that aborted about one exit in five."""
    code = (f"import threading; from translation.engine import TranslationModel\n"
            f"model = TranslationModel({str(tiny_model_dir)!r}, cache_size=0)\n"
            f"worker = threading.Thread(target=model.translate_sentences, args=(['週末は映画を見に行きます。'] * 3,))\n"
            f"worker.start(); worker.join()")
    runs = [subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                             stderr=subprocess.PIPE) for _ in range(10)]
    assert [(run.wait(120), run.stderr.read().decode()[-300:]) for run in runs] == [(0, "")] * 10
