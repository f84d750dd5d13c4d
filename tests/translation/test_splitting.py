from translation.splitting import join_text, split_sentences, split_text


def test_it_splits_on_japanese_sentence_ends():
    assert split_sentences("今日はいい天気ですね。明日も晴れるでしょう！本当？") == [
        "今日はいい天気ですね。", "明日も晴れるでしょう！", "本当？"]


def test_it_keeps_a_quote_with_its_sentence():
    assert split_sentences("彼は「行くよ。待ってて！」と言った。それから出かけた。") == [
        "彼は「行くよ。待ってて！」と言った。", "それから出かけた。"]


def test_quoted_sentences_side_by_side_are_separate():
    assert split_sentences("「はい。」「いいえ。」") == ["「はい。」", "「いいえ。」"]


def test_doubled_marks_end_once():
    assert split_sentences("えっ！？本当に？") == ["えっ！？", "本当に？"]


def test_text_without_a_final_mark_is_still_a_sentence():
    assert split_sentences("こんにちは。元気") == ["こんにちは。", "元気"]


def test_line_and_paragraph_breaks_survive_the_round_trip():
    parts = split_text("一行目です。二文目。\n\n二段落目です。\n三行目")
    assert parts == [["一行目です。", "二文目。"], "\n\n", ["二段落目です。"], "\n", ["三行目"]]
    assert join_text(parts) == "一行目です。 二文目。\n\n二段落目です。\n三行目"


def test_a_quote_left_open_does_not_swallow_the_line():
    assert split_sentences("前の文。「閉じない引用。次の文。最後！") == ["前の文。", "「閉じない引用。", "次の文。", "最後！"]


def test_a_stray_closing_quote_after_a_sentence_end_ends_it():
    assert split_sentences("そうだ。」次に行こう。") == ["そうだ。」", "次に行こう。"]
