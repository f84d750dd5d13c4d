"""Idempotency-Key on POST /v1/keys and /v1/translate: a retry gets the stored answer, runs
nothing again; another request with the key is 422; a malformed key is 400.
(Transcriptions attach to their job instead: tests/transcription/test_idempotent_submits.py.)"""
import re
from datetime import timedelta
from io import StringIO
from types import SimpleNamespace

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.idempotency import parse_key
from accounts.models import ApiKey, IdempotentRequest
from jptranscribe.errors import InvalidRequest
from jptranscribe.schema import IDEMPOTENCY_KEY
from tests.helpers import Caller

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def with_key(key):
    return {"HTTP_IDEMPOTENCY_KEY": key}


@pytest.fixture
def translations(monkeypatch):
    """The translation engine replaced by one that counts its calls."""
    from translation import services

    calls = []

    def translate(text):
        calls.append(text)
        return SimpleNamespace(text=f"English #{len(calls)}", model="stand-in")

    monkeypatch.setattr(services, "translate", translate)
    return calls


def translate(caller, text="こんにちは。", key="k-1", **headers):
    return caller.post("/v1/translate", {"text": text}, **with_key(key), **headers)


class TestTheHeader:
    @pytest.mark.parametrize(
        ("value", "key"),
        [
            ('"8e03978e-40d5-43e8-bc93-6894a57f9324"', "8e03978e-40d5-43e8-bc93-6894a57f9324"),
            ("8e03978e-40d5-43e8-bc93-6894a57f9324", "8e03978e-40d5-43e8-bc93-6894a57f9324"),
            (r'"a \"quoted\" key\\"', 'a "quoted" key\\'),
            ("  padded\t", "padded"),
            ("x" * 255, "x" * 255),
        ],
    )
    def test_it_takes_a_structured_field_string_or_a_bare_value(self, value, key):
        assert parse_key(value) == key
        assert re.match(IDEMPOTENCY_KEY, value), "the schema's pattern says so too"

    @pytest.mark.parametrize(
        "value", ["", '""', '"unterminated', '"bad \\x escape"', '"a" "b"', '"a";p=1', "x" * 256, "キー", "tab\tinside"]
    )
    def test_it_refuses_anything_else(self, value):
        with pytest.raises(InvalidRequest) as refused:
            parse_key(value)
        assert refused.value.param == "Idempotency-Key"
        assert not re.match(IDEMPOTENCY_KEY, value), "the schema's pattern says so too"

    def test_a_malformed_key_is_400_naming_the_header(self, alice, translations):
        response = translate(alice, key="x" * 256)
        assert response.status_code == 400
        error = response.json()["error"]
        assert (error["code"], error["param"]) == ("invalid_request", "Idempotency-Key")
        assert "255 printable ASCII" in error["message"]
        assert translations == [] and not IdempotentRequest.objects.exists()

    def test_the_quoted_and_the_bare_form_are_one_key(self, alice, translations):
        first = translate(alice, key='"abc"')
        again = translate(alice, key="abc")
        assert again["Idempotent-Replayed"] == "true" and again.json() == first.json()
        assert len(translations) == 1

    def test_without_the_header_nothing_changes(self, alice, translations):
        assert alice.post("/v1/translate", {"text": "こんにちは。"}).json()["text"] == "English #1"
        assert alice.post("/v1/translate", {"text": "こんにちは。"}).json()["text"] == "English #2"
        assert not IdempotentRequest.objects.exists()


class TestTranslate:
    def test_a_retry_with_the_same_key_returns_the_first_answer_and_translates_nothing(self, alice, translations):
        first = translate(alice)
        again = translate(alice)
        assert first.status_code == again.status_code == 200
        assert again.json() == first.json() == {"text": "English #1", "source": "ja", "target": "en",
                                                 "model": "stand-in"}
        assert again["Idempotent-Replayed"] == "true" and "Idempotent-Replayed" not in first
        assert translations == ["こんにちは。"]

    def test_the_same_key_with_another_text_is_422(self, alice, translations):
        translate(alice, text="こんにちは。")
        response = translate(alice, text="さようなら。")
        assert response.status_code == 422
        error = response.json()["error"]
        assert (error["code"], error["type"], error["param"]) == (
            "idempotency_key_reused", "invalid_request_error", "Idempotency-Key")
        assert "different request" in error["message"]
        assert len(translations) == 1

    def test_the_same_key_on_another_endpoint_is_422(self, alice, translations):
        translate(alice, key="shared")
        response = alice.post("/v1/transcribe", {"url": "https://example.com/a.wav"}, **with_key("shared"))
        assert response.status_code == 422 and response.json()["error"]["code"] == "idempotency_key_reused"

    def test_keys_are_per_api_key(self, alice, bob, translations):
        translate(alice, key="same")
        response = translate(bob, key="same", text="さようなら。")
        assert response.status_code == 200 and "Idempotent-Replayed" not in response
        assert len(translations) == 2

    def test_a_retry_while_the_first_is_still_running_is_409(self, alice, monkeypatch):
        from translation import services

        during = {}

        def slow_translate(text):
            during["retry"] = translate(alice)  # arrives while this one runs
            return SimpleNamespace(text="Hello.", model="stand-in")

        monkeypatch.setattr(services, "translate", slow_translate)
        assert translate(alice).status_code == 200
        retry = during["retry"]
        assert retry.status_code == 409
        assert retry.json()["error"]["code"] == "idempotency_conflict"
        assert "still being processed; retry" in retry.json()["error"]["message"]
        assert translate(alice).json()["text"] == "Hello.", "after it ends, the retry gets its answer"

    def test_a_refused_translation_gives_its_key_back(self, alice, settings, tmp_path, monkeypatch):
        """A refusal changes nothing, so a retry after fixing the cause runs anew."""
        from translation import services

        def unavailable(text):
            raise services.TranslationUnavailable("No translation model yet.")

        monkeypatch.setattr(services, "translate", unavailable)
        assert translate(alice).status_code == 503
        assert not IdempotentRequest.objects.exists()
        monkeypatch.setattr(services, "translate", lambda text: SimpleNamespace(text="Hello.", model="stand-in"))
        response = translate(alice)
        assert response.status_code == 200 and "Idempotent-Replayed" not in response


class TestKeys:
    def test_a_retried_minting_returns_the_same_key_and_mints_no_second(self, anonymous):
        first = anonymous.post("/v1/keys", {}, **with_key("mint-1"))
        again = anonymous.post("/v1/keys", {}, **with_key("mint-1"))
        assert first.status_code == again.status_code == 201
        assert again.json() == first.json() and again["Idempotent-Replayed"] == "true"
        assert ApiKey.objects.count() == 1
        for _ in range(4):  # the retry took none of the address's 5 keys a day
            assert anonymous.post("/v1/keys", {}).status_code == 201
        assert anonymous.post("/v1/keys", {}).status_code == 429

    def test_a_minted_key_cannot_be_read_from_the_database(self, anonymous):
        key = "a guessable key"
        raw = anonymous.post("/v1/keys", {}, **with_key(key)).json()["key"]
        stored = IdempotentRequest.objects.get()
        everything = str(IdempotentRequest.objects.values().get()) + bytes(stored.answer).decode("latin-1")
        assert raw not in everything and raw[4:] not in everything
        assert key not in everything
        assert stored.scope == "ip:198.51.100.50"

    def test_minting_keys_are_per_address(self, anonymous):
        first = anonymous.post("/v1/keys", {}, **with_key("mint-1")).json()["key"]
        elsewhere = Caller(None, ip="192.0.2.44").post("/v1/keys", {}, **with_key("mint-1"))
        assert elsewhere.status_code == 201 and elsewhere.json()["key"] != first
        assert "Idempotent-Replayed" not in elsewhere

    def test_an_ipv6_network_is_one_scope(self, db):
        first = Caller(None, ip="2001:db8:1:2::1").post("/v1/keys", {}, **with_key("mint-1"))
        again = Caller(None, ip="2001:db8:1:2::99").post("/v1/keys", {}, **with_key("mint-1"))
        assert again.json() == first.json() and ApiKey.objects.count() == 1

    def test_a_refused_minting_gives_its_key_back(self, anonymous, settings):
        settings.JPT_KEYS_PER_IP_PER_DAY = 0
        assert anonymous.post("/v1/keys", {}, **with_key("mint-1")).status_code == 429
        settings.JPT_KEYS_PER_IP_PER_DAY = 5
        response = anonymous.post("/v1/keys", {}, **with_key("mint-1"))
        assert response.status_code == 201 and "Idempotent-Replayed" not in response


class TestKeeping:
    def age(self, hours):
        IdempotentRequest.objects.update(created_at=timezone.now() - timedelta(hours=hours))

    def test_a_key_is_forgotten_after_24_hours(self, alice, translations):
        translate(alice)
        self.age(24.1)
        again = translate(alice, text="別の文。")
        assert again.status_code == 200 and "Idempotent-Replayed" not in again
        assert len(translations) == 2 and IdempotentRequest.objects.count() == 1

    def test_within_24_hours_it_is_remembered(self, alice, translations):
        translate(alice)
        self.age(23.9)
        assert translate(alice)["Idempotent-Replayed"] == "true"

    def test_sweep_deletes_the_keys_past_their_time(self, alice, bob, translations):
        translate(alice)
        self.age(25)
        translate(bob)
        out = StringIO()
        call_command("sweep", stdout=out)
        assert "idempotency keys forgotten: 1" in out.getvalue()
        assert IdempotentRequest.objects.get().scope == f"key:{bob.key.pk}"

    def test_a_request_that_died_without_answering_is_taken_over(self, alice, translations):
        """Its process was killed mid-request: after 10 minutes a retry runs anew instead of 409."""
        from accounts.idempotency import IdempotentCall, claim, fingerprint

        call = IdempotentCall(
            scope=f"key:{alice.key.pk}",
            key="k-1",
            fingerprint=fingerprint(method="POST", path="/v1/translate",
                                    fields={"text": "こんにちは。", "source": "ja", "target": "en"}),
        )
        assert claim(call) is None
        assert translate(alice).status_code == 409
        self.age(0.2)
        response = translate(alice)
        assert response.status_code == 200 and "Idempotent-Replayed" not in response
