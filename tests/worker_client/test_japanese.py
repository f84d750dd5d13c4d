"""Vosk output made to read as Japanese."""
from worker_client.japanese import Word, join_words, sentences_from_words


def test_japanese_words_are_joined_without_spaces():
    assert join_words(["今日", "は", "いい", "天気", "です"]) == "今日はいい天気です"


def test_a_space_stays_only_between_latin_words():
    assert join_words(["今日", "は", "Hello", "World", "です", "OK"]) == "今日はHello WorldですOK"


def test_a_pause_ends_a_sentence_with_a_full_stop():
    words = [Word("今日", 0.0, 0.3), Word("は", 0.3, 0.4), Word("晴れ", 0.45, 0.8), Word("です", 0.8, 1.0),
             Word("明日", 1.8, 2.1), Word("も", 2.1, 2.2), Word("晴れ", 2.2, 2.5)]
    assert sentences_from_words(words) == [(0.0, 1.0, "今日は晴れです。"), (1.8, 2.5, "明日も晴れ。")]


def test_a_question_particle_gets_a_question_mark():
    words = [Word("元気", 0.0, 0.4), Word("です", 0.4, 0.6), Word("か", 0.6, 0.7)]
    assert sentences_from_words(words)[0][2] == "元気ですか？"


def test_no_words_no_sentences():
    assert sentences_from_words([]) == []
