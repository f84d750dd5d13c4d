"""POST /v1/translate, and translate=true on transcriptions."""
import pytest

from tests.helpers import claim_job, online_worker

pytestmark = pytest.mark.django_db


def test_it_translates_japanese_to_english(alice, with_model):
    response = alice.post("/v1/translate", {"text": "今日はいい天気ですね。", "source": "ja", "target": "en"})
    assert response.status_code == 200
    body = response.json()
    assert body["source"] == "ja" and body["target"] == "en" and body["text"]
    assert body["model"] == "opus-mt-tiny"
    assert response["X-RateLimit-Limit"] == "30"


def test_source_and_target_default_to_ja_and_en(alice, with_model):
    body = alice.post("/v1/translate", {"text": "こんにちは。"}).json()
    assert (body["source"], body["target"]) == ("ja", "en")


@pytest.mark.parametrize(
    ("pair", "param"), [({"source": "en", "target": "ja"}, "source"), ({"target": "fr"}, "target"), ({"source": "zh"}, "source")]
)
def test_other_language_pairs_are_refused_naming_the_field_at_fault(alice, with_model, pair, param):
    response = alice.post("/v1/translate", {"text": "こんにちは。", **pair})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
    assert response.json()["error"]["param"] == param
    assert "'ja'" in response.json()["error"]["message"] and "'en'" in response.json()["error"]["message"]


@pytest.mark.parametrize("text", ["", "   \n "])
def test_empty_text_is_refused(alice, with_model, text):
    response = alice.post("/v1/translate", {"text": text})
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"


def test_missing_text_is_refused(alice, with_model):
    assert alice.post("/v1/translate", {}).json()["error"]["code"] == "invalid_request"


def test_text_over_5000_characters_is_413(alice, with_model):
    response = alice.post("/v1/translate", {"text": "あ" * 5001})
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "text_too_long"
    assert "5,000" in response.json()["error"]["message"]


def test_without_a_model_it_is_503_naming_the_command(alice, settings, tmp_path):
    settings.JPT_TRANSLATION_MODEL = str(tmp_path / "none")
    response = alice.post("/v1/translate", {"text": "こんにちは。"})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "translation_unavailable"
    assert "python manage.py translation_model fetch" in response.json()["error"]["message"]


def test_health_reports_translation(anonymous, with_model, settings, tmp_path):
    assert anonymous.get("/v1/health").json()["translation"]["available"] is True
    settings.JPT_TRANSLATION_MODEL = str(tmp_path / "none")
    assert anonymous.get("/v1/health").json()["translation"]["available"] is False


def test_a_transcription_asked_to_translate_gets_its_translation(alice, with_model):
    online_worker(alice)
    job_id = alice.transcribe(translate="true").json()["id"]
    alice.complete(claim_job(alice), text="今日はいい天気ですね。")
    body = alice.get(f"/v1/transcriptions/{job_id}").json()
    assert body["translation"] and body["warnings"] == []


def test_a_transcription_not_asked_to_translate_has_none(alice, with_model):
    online_worker(alice)
    job_id = alice.transcribe().json()["id"]
    alice.complete(claim_job(alice), text="今日はいい天気ですね。")
    assert alice.get(f"/v1/transcriptions/{job_id}").json()["translation"] is None
