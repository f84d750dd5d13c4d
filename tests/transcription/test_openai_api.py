"""OpenAI's audio calls on this server: what they take, what they refuse, what they answer
(the SDK itself drives them against the live server in tests/test_openai_sdk.py)."""
import threading
from pathlib import Path

import pytest
import yaml
from django.db import connection

from accounts.credits import credits_balance
from pool.models import Job
from tests.clips import wav_bytes
from tests.helpers import grant, online_worker, upload

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.postgres]

WORDS = [{"word": "こんにちは", "start": 0.2, "end": 0.9}, {"word": "。", "start": 0.9, "end": 1.0}]
FIGURES = {"seek": 0, "tokens": [50364, 3203], "temperature": 0.0, "avg_logprob": -0.3, "compression_ratio": 0.9,
           "no_speech_prob": 0.02}


def call(caller, path="/v1/audio/transcriptions", **fields):
    fields.setdefault("file", upload(wav_bytes(2)))
    fields.setdefault("model", "whisper-1")
    return caller.client.post(path, fields, format="multipart")


def worker_answering(caller, segments):
    """A worker in another thread that completes the next job with `segments`."""
    def run():
        try:
            job = caller.claim("w1", wait_seconds=10).json()["job"]
            caller.complete(job, "w1", text="こんにちは。", segments=segments)
        finally:
            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    return thread


def test_json_answers_the_text_and_the_seconds_used(alice, settings):
    settings.JPT_TRANSCRIBE_WAIT_SECONDS = 10
    online_worker(alice)
    worker = worker_answering(alice, [{"start": 0, "end": 1, "text": "こんにちは。", "words": WORDS, **FIGURES}])
    response = call(alice)
    worker.join()
    assert response.status_code == 200, response.content
    assert response.json() == {"text": "こんにちは。", "usage": {"type": "duration", "seconds": 2}, "model": "test-model"}


def test_verbose_json_has_whispers_figures_and_the_words_asked_for(alice, settings):
    settings.JPT_TRANSCRIBE_WAIT_SECONDS = 10
    online_worker(alice)
    worker = worker_answering(alice, [{"start": 0, "end": 1, "text": "こんにちは。", "words": WORDS, **FIGURES}])
    response = call(alice, response_format="verbose_json", **{"timestamp_granularities[]": ["word", "segment"]})
    worker.join()
    body = response.json()
    assert (body["task"], body["language"], body["duration"]) == ("transcribe", "japanese", 2.0)
    assert body["segments"] == [{"id": 0, "start": 0.0, "end": 1.0, "text": "こんにちは。", **FIGURES}]
    assert body["words"] == WORDS
    assert Job.objects.get().options["word_timestamps"] is True


def test_srt_is_plain_subtitles(alice, settings):
    settings.JPT_TRANSCRIBE_WAIT_SECONDS = 10
    online_worker(alice)
    worker = worker_answering(alice, [{"start": 0, "end": 1, "text": "こんにちは。", "words": WORDS}])
    response = call(alice, response_format="srt")
    worker.join()
    assert response["Content-Type"].startswith("application/x-subrip")
    assert response.content.decode().startswith("1\n00:00:00,200 --> ")


def test_when_the_pool_is_slower_than_the_wait_it_answers_202_with_a_status_url(alice):
    online_worker(alice)  # which never claims: the wait (0 s in tests) runs out
    response = call(alice)
    assert response.status_code == 202
    assert response.json()["status_url"].endswith(f"/v1/transcriptions/{Job.objects.get().id}")


@pytest.mark.parametrize(("fields", "param"), [
    ({"language": "en"}, "language"),
    ({"response_format": "docx"}, "response_format"),
    ({"timestamp_granularities[]": ["word"]}, "timestamp_granularities"),
    ({"temperature": "2"}, "temperature"),
    ({"model": ""}, "model"),
])
def test_what_it_cannot_do_is_400_naming_the_field(alice, fields, param):
    response = call(online_worker(alice), **fields)
    assert response.status_code == 400
    assert response.json()["error"]["param"] == param and response.json()["error"]["type"] == "invalid_request_error"
    assert not Job.objects.exists()


def test_a_translation_without_a_model_is_503_and_costs_nothing(alice, settings):
    settings.JPT_TRANSLATION_MODEL = "/nonexistent/model"
    grant(alice, 100)
    response = call(alice, "/v1/audio/translations")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "translation_unavailable"
    assert not Job.objects.exists() and credits_balance(alice.key) == 100


def test_the_native_api_asks_for_word_timings_too(alice):
    online_worker(alice)
    job_id = alice.transcribe(words="true").json()["id"]
    job = alice.claim("w1").json()["job"]
    assert job["options"]["word_timestamps"] is True
    alice.complete(job, text="こんにちは。", segments=[{"start": 0, "end": 1, "text": "こんにちは。", "words": WORDS}])
    assert alice.get(f"/v1/transcriptions/{job_id}").json()["segments"][0]["words"] == WORDS


def test_a_call_whose_transcription_was_cancelled_tells_openais_sdks_not_to_send_it_again(alice):
    """OpenAI's SDKs send a request answered 409 again (twice, by default) unless the answer says
    `x-should-retry: false`: each time the cancelled clip would be queued, run and paid for anew."""
    online_worker(alice)

    def send():
        return alice.client.post("/v1/audio/transcriptions", {"file": upload(wav_bytes(2)), "model": "whisper-1"},
                                 format="multipart", HTTP_IDEMPOTENCY_KEY="retry-1")

    job_id = send().json()["id"]
    assert alice.client.delete(f"/v1/transcriptions/{job_id}").status_code == 200
    answer = send()  # the same call again: it attaches to the cancelled transcription
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "cancelled"
    assert answer["X-Should-Retry"] == "false"
    assert Job.objects.count() == 1


def described(path: str) -> dict:
    """The schema openapi.yaml gives a 200 JSON answer of `path`, its references resolved."""
    spec = yaml.safe_load((Path(__file__).resolve().parent.parent.parent / "openapi.yaml").read_text())

    def resolved(schema):
        if isinstance(schema, dict) and "$ref" in schema:
            return resolved(spec["components"]["schemas"][schema["$ref"].rsplit("/", 1)[1]])
        if isinstance(schema, dict):
            return {name: resolved(value) for name, value in schema.items()}
        if isinstance(schema, list):
            return [resolved(value) for value in schema]
        return schema

    return resolved(spec["paths"][path]["post"]["responses"]["200"]["content"]["application/json"]["schema"])


def test_openapi_yaml_describes_every_field_of_a_json_and_a_verbose_json_answer(alice, settings):
    settings.JPT_TRANSCRIBE_WAIT_SECONDS = 10
    online_worker(alice)
    answers = {}
    for fmt, fields in [("json", {}), ("verbose_json", {"timestamp_granularities[]": ["word"]})]:
        worker = worker_answering(alice, [{"start": 0, "end": 1, "text": "こんにちは。", "words": WORDS, **FIGURES}])
        answers[fmt] = call(alice, response_format=fmt, **fields).json()
        worker.join()
    schema, verbose = described("/v1/audio/transcriptions"), answers["verbose_json"]
    assert set(schema["required"]) <= set(answers["json"]) <= set(schema["properties"])
    assert set(schema["required"]) <= set(verbose) <= set(schema["properties"])
    assert set(verbose["segments"][0]) == set(schema["properties"]["segments"]["items"]["properties"])
    assert set(verbose["words"][0]) == set(schema["properties"]["words"]["items"]["properties"])


@pytest.mark.parametrize("granularities", [["word"], ["word", "segment"]])
def test_timestamp_granularities_sent_as_openapi_yaml_names_them_are_taken_too(alice, settings, granularities):
    """openapi.yaml declares the multipart array `timestamp_granularities`; a client generated from it
    sends one part of that name per item, where OpenAI's SDKs send `timestamp_granularities[]`."""
    settings.JPT_TRANSCRIBE_WAIT_SECONDS = 10
    online_worker(alice)
    worker = worker_answering(alice, [{"start": 0, "end": 1, "text": "こんにちは。", "words": WORDS, **FIGURES}])
    response = call(alice, response_format="verbose_json", timestamp_granularities=granularities)
    worker.join()
    assert response.status_code == 200, response.json()
    assert response.json()["words"] == WORDS
