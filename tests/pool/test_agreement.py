"""When two workers' transcripts of one clip agree (`pool/agreement.py`): no database, no server.

The transcripts below are Whisper base's own, on the project's corpus (`bench/agreement.py`)."""
import random

import pytest

from pool.agreement import AGREEMENT_MAX_CER, agree, cer, normalise

ECONOMY = "円安の影響で輸入品の価格が上がっています。"
LONG40 = (
    "日本の四季はそれぞれ美しいです。春には桜が咲き、多くの人が公園でお花見を楽しみます。"
    "夏は暑くて湿気が多いですが、花火大会やお祭りがたくさんあります。"
)
LONG40_NOISY = (
    "日本の式はそれぞれ美しいです。春には桜が先、多くの人が公園でお花見を楽しみます。"
    "夏は熱くて敷けが多いですが、花び大会やお祭りがたくさんあります。"
)


class TestWhatEnginesWriteDifferentlyWithoutMishearing:
    def test_punctuation_and_spaces_do_not_count(self):
        assert cer("こんにちは、今日は配信を始めます。", "こんにちは 今日は配信を始めます") == 0
        assert cer("このシャツのもう少し大きいサイズはありますか？", "このシャツのもう少し大きいサイズはありますか?") == 0

    def test_full_and_half_width_are_the_same_characters(self):
        assert cer("電話番号は０３の１２３４です", "電話番号は03の1234です") == 0
        assert cer("ＰＣでプログラミング", "PCでプログラミング") == 0

    def test_the_long_vowel_mark_is_part_of_a_word(self):
        assert normalise("ラーメン") == "ラーメン"
        assert cer("コーヒー", "コヒー") > 0


class TestHonestTranscriptsAgree:
    @pytest.mark.parametrize(
        "reference, heard",
        [
            (ECONOMY, "円安の影響で、輸入、火の価格が上がっています。"),  # one character misheard
            ("このコーヒーは一杯450円です。", "このコーヒーは、いっぱい450円です。"),  # kana for a kanji word
            ("お昼ご飯はラーメンと餃子を食べました。", "お昼ごはんは、ラーメンとギョザを食べました。"),
            ("次の電車は10時15分に東京駅を出発します。", "次の電車は10時15分に高強液を出発します。"),  # in noise
            (ECONOMY, "エンディアスの影響で輸入金の形が上がっています"),  # beam 5 at 10 dB SNR
            (LONG40, LONG40_NOISY),
        ],
    )
    def test_a_word_or_two_misheard_still_agrees(self, reference, heard):
        assert agree(reference, heard)

    def test_two_settings_of_one_engine_on_a_noisy_short_clip_agree(self):
        assert agree("円安の影響で輪流、キムの片付が上がっています", "円安の影響で、ユニュー日の価格が上がっています")

    def test_two_empty_transcripts_agree(self):
        assert cer("", "") == 0
        assert agree("", "")
        assert agree("。", ""), "punctuation alone is no text"


class TestJunkDisagrees:
    @pytest.mark.parametrize(
        "junk",
        [
            "ハッキング",
            "",
            "お昼ご飯はラーメンと餃子を食べました。",  # another clip's transcript
            "円安の影響で輸入",  # its own first half
            "이화스너의키워드。뉴뉴히노카크가아카페이머스。",  # a Korean model's output on this Japanese clip
        ],
    )
    def test_a_short_clips_junk_disagrees(self, junk):
        assert not agree(ECONOMY, junk)

    def test_random_kana_of_the_same_length_disagrees(self):
        rng = random.Random(1)
        kana = "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
        for _ in range(20):
            assert not agree(ECONOMY, "".join(rng.choices(kana, k=len(normalise(ECONOMY)))))

    def test_its_own_characters_shuffled_disagree(self):
        chars = list(normalise(LONG40))
        random.Random(2).shuffle(chars)
        assert not agree(LONG40, "".join(chars))

    def test_half_of_a_long_transcript_disagrees(self):
        text = normalise(LONG40)
        assert not agree(LONG40, text[: len(text) // 2])
        assert not agree(LONG40, text[len(text) // 2 :])

    def test_a_text_against_nothing_is_all_wrong(self):
        assert cer(ECONOMY, "") == 1
        assert cer("", "ハッキング") == 1


class TestTheMeasure:
    @pytest.mark.parametrize(
        "first, second",
        [(ECONOMY, "ハッキング"), (ECONOMY, "円安の影響で、輸入、火の価格が上がっています。"), (LONG40, LONG40_NOISY), ("", "天気")],
    )
    def test_it_is_symmetric(self, first, second):
        assert cer(first, second) == cer(second, first)
        assert agree(first, second) == agree(second, first)

    def test_edits_are_counted_over_the_longer_text(self):
        assert cer("一二三四五六七八九十", "一二三四五六七八九千") == pytest.approx(0.1)
        assert cer("一二三四五六七八九十", "一二三四五") == pytest.approx(0.5)

    def test_the_threshold_stays_under_half_a_text_missing(self):
        assert AGREEMENT_MAX_CER < 0.5
