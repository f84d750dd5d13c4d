"""Every error under /v1/ is the spec's envelope (with OpenAI's `type` and `param` beside its
`code` and `message`), never an HTML page."""
import pytest

pytestmark = pytest.mark.django_db


def envelope(response, status, code, error_type="invalid_request_error", param=None):
    assert response.status_code == status, response.content
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "type", "param"}
    assert body["error"]["code"] == code and body["error"]["message"]
    assert (body["error"]["type"], body["error"]["param"]) == (error_type, param)
    return body["error"]["message"]


def test_an_unknown_path_is_a_json_404(anonymous):
    envelope(anonymous.get("/v1/nothing-here"), 404, "not_found", "not_found_error")


def test_a_wrong_method_is_a_json_405(alice):
    envelope(alice.client.delete("/v1/account"), 405, "method_not_allowed")
    envelope(alice.client.get("/v1/transcribe"), 405, "method_not_allowed")


def test_malformed_json_is_invalid_request(alice):
    response = alice.client.post("/v1/worker/heartbeat", "{not json", content_type="application/json")
    envelope(response, 400, "invalid_request")


@pytest.mark.parametrize("path", ["/v1/worker/heartbeat", "/v1/translate", "/v1/transcribe", "/v1/keys"])
def test_json_nested_too_deeply_to_decode_is_invalid_request_not_a_500(alice, path):
    body = "[" * 5000 + "]" * 5000  # 10 kB: past Python's recursion limit
    alice.client.raise_request_exception = False
    message = envelope(alice.client.post(path, body, content_type="application/json"), 400, "invalid_request")
    assert "nested" in message


def test_an_unsupported_content_type_is_invalid_request(alice):
    response = alice.client.post("/v1/worker/heartbeat", "x", content_type="text/csv")
    envelope(response, 415, "invalid_request")


def test_a_missing_field_names_the_field(alice):
    message = envelope(alice.post("/v1/worker/heartbeat", {}), 400, "invalid_request", param="worker_id")
    assert "worker_id" in message


def test_an_unexpected_exception_is_a_json_500(alice, monkeypatch):
    from transcription import views

    def explode(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(views, "pool_stats", explode)
    alice.client.raise_request_exception = False
    message = envelope(alice.get("/v1/account"), 500, "internal_error", "server_error")
    assert "retry" in message and "boom" not in message


def test_each_kind_of_refusal_has_openais_type_for_it(anonymous, alice):
    envelope(anonymous.get("/v1/account"), 401, "unauthorized", "authentication_error")
    response = alice.post("/v1/transcribe", {"url": "https://example.com/a.wav", "language": "en"})
    envelope(response, 400, "invalid_request", param="language")
