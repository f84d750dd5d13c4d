"""The pool's rules on their own: no database, no server."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from pool import policy
from pool.policy import AfterFailure

NOON = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


class TestLeases:
    def test_a_lease_runs_for_the_lease_setting(self, settings):
        settings.JPT_LEASE_SECONDS = 120
        assert policy.lease_expires_at(NOON) == NOON + timedelta(seconds=120)

    def test_a_lease_has_expired_only_once_its_time_has_passed(self):
        assert not policy.lease_has_expired(NOON, NOON)
        assert policy.lease_has_expired(NOON, NOON + timedelta(microseconds=1))
        assert not policy.lease_has_expired(None, NOON), "a job without a lease has nothing to expire"

    def test_a_registration_outlives_the_online_window(self, settings):
        settings.JPT_WORKER_TTL_SECONDS = 900
        assert policy.registration_expires_at(NOON) == NOON + timedelta(minutes=15)


class TestRetries:
    def test_a_job_is_retried_until_its_last_attempt(self, settings):
        settings.JPT_MAX_ATTEMPTS = 3
        assert [policy.after_failure(n) for n in (1, 2, 3, 4)] == [
            AfterFailure.RETRY, AfterFailure.RETRY, AfterFailure.GIVE_UP, AfterFailure.GIVE_UP]

    def test_one_attempt_means_no_retry(self, settings):
        settings.JPT_MAX_ATTEMPTS = 1
        assert policy.after_failure(1) is AfterFailure.GIVE_UP

    def test_a_job_queued_longer_than_the_timeout_is_past_the_cutoff(self, settings):
        settings.JPT_QUEUE_TIMEOUT_SECONDS = 3600
        assert policy.queued_since_cutoff(NOON) == NOON - timedelta(hours=1)


class TestEarnings:
    def test_a_volunteer_earns_the_clips_seconds_for_someone_elses_audio(self):
        assert policy.credited_seconds(duration=Decimal("2.5"), owner_key_id=1, worker_key_id=2,
                                       worker_is_server=False) == 2.5

    def test_nobody_earns_for_their_own_audio(self):
        assert policy.credited_seconds(duration=10, owner_key_id=7, worker_key_id=7, worker_is_server=False) == 0

    def test_the_server_demo_worker_earns_nothing(self):
        assert policy.credited_seconds(duration=10, owner_key_id=1, worker_key_id=2, worker_is_server=True) == 0


class TestResults:
    def test_a_result_may_hold_five_times_the_speech_rate_and_a_little(self):
        assert policy.max_result_chars(60) == 60 * 40 + 200
        assert policy.max_result_chars(Decimal("0.5")) == 220

    def test_segment_times_are_kept_inside_the_clip(self):
        segments = [{"start": -1.0, "end": 2.0, "text": "a"}, {"start": 2.0, "end": 9.5, "text": "b"},
                    {"start": 12.0, "end": 11.0, "text": "c"}]
        assert policy.segments_within(segments, Decimal("3.000")) == [
            {"start": 0.0, "end": 2.0, "text": "a"}, {"start": 2.0, "end": 3.0, "text": "b"},
            {"start": 3.0, "end": 3.0, "text": "c"}]

    def test_segments_inside_the_clip_are_left_as_they_are(self):
        segments = [{"start": 0.0, "end": 1.5, "text": "a"}]
        assert policy.segments_within(segments, 1.5) == segments

    def test_word_times_are_kept_inside_their_segment(self):
        words = [{"word": "a", "start": -0.5, "end": 0.2}, {"word": "b", "start": 0.9, "end": 0.8},
                 {"word": "c", "start": 1.2, "end": 4.0}]
        segment = {"start": 0.0, "end": 9.0, "text": "abc", "words": words, "avg_logprob": -0.2}
        assert policy.segments_within([segment], 1.5) == [{
            "start": 0.0, "end": 1.5, "text": "abc", "avg_logprob": -0.2,
            "words": [{"word": "a", "start": 0.0, "end": 0.2}, {"word": "b", "start": 0.9, "end": 0.9},
                      {"word": "c", "start": 1.2, "end": 1.5}]}]

    def test_words_count_against_the_clips_limit_like_the_text(self):
        segments = [{"words": [{"word": "今日は"}, {"word": "OK"}]}, {"text": "no words"}]
        assert policy.words_chars(segments) == 5

    def test_segment_texts_count_together_against_the_clips_limit_like_the_text(self):
        segments = [{"text": "今日は", "words": [{"word": "今日は"}]}, {"text": "いい天気"}]
        assert policy.segment_texts_chars(segments) == 7
        assert policy.segments_chars(segments) == 7, "the larger of the texts and the words"


class TestJobOptions:
    def test_every_option_is_there_even_when_none_was_asked(self):
        nothing = {"prompt": None, "temperature": None, "word_timestamps": False}
        assert policy.job_options(None) == policy.job_options({}) == nothing
        assert policy.job_options({"prompt": "", "word_timestamps": 0}) == nothing

    def test_the_callers_options_are_kept(self):
        asked = {"prompt": "配信", "temperature": 0, "word_timestamps": True}
        assert policy.job_options(asked) == {"prompt": "配信", "temperature": 0.0, "word_timestamps": True}

    def test_an_option_nobody_knows_is_a_mistake(self):
        with pytest.raises(ValueError, match="beam_size"):
            policy.job_options({"beam_size": 5})


class TestClaimWait:
    def test_a_claim_waits_what_it_asked_up_to_the_maximum(self, settings):
        settings.JPT_CLAIM_WAIT_MAX_SECONDS = 25
        assert policy.claim_wait_seconds(10) == 10
        assert policy.claim_wait_seconds(60) == 25
        assert policy.claim_wait_seconds(-1) == 0

    def test_the_server_waits_as_long_as_the_worker_client_asks(self):
        """Capped below the client's ask, every idle volunteer would claim again twice as often."""
        from worker_client.worker import CLAIM_WAIT_SECONDS

        assert policy.claim_wait_seconds(CLAIM_WAIT_SECONDS) == CLAIM_WAIT_SECONDS == 50

    def test_claims_that_queued_in_a_burst_end_spread_over_the_second_half_of_their_wait(self, settings):
        settings.JPT_CLAIM_WAIT_MAX_SECONDS = 25
        waits = [policy.claim_wait_seconds(20, queued=3) for _ in range(200)]
        assert all(10 <= wait <= 20 for wait in waits)
        assert max(waits) - min(waits) > 5, "spread, so they do not all come back at once"
        assert policy.claim_wait_seconds(20, queued=0.2) == 20, "a claim served at once waits what it asked"
