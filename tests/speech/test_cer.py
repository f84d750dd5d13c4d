from tests.speech.cer import character_error_rate


def test_identical_text_has_no_error():
    assert character_error_rate("今日はいい天気ですね。", "今日はいい天気ですね") == 0


def test_punctuation_and_spaces_do_not_count():
    assert character_error_rate("こんにちは、今日は。", "こんにちは 今日は!") == 0


def test_one_wrong_character_in_ten():
    assert character_error_rate("一二三四五六七八九十", "一二三四五六七八九千") == 0.1


def test_missing_text_is_all_errors():
    assert character_error_rate("天気", "") == 1.0
