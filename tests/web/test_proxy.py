"""The browser proxy /api: the same API for the pages' own calls, safe from other sites."""
import pytest
from django.test import Client

from accounts import services as accounts
from accounts.models import ApiKey
from tests.clips import wav_bytes
from tests.helpers import claim_job, upload

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]  # routing and limits: both databases

PAGE_IP = "198.51.100.80"


class Browser:
    """A visitor of the pages: it has the CSRF cookie the pages set and sends the token back."""

    def __init__(self, ip=PAGE_IP):
        self.client = Client(enforce_csrf_checks=True, REMOTE_ADDR=ip)
        self.client.get("/get-key/")
        self.token = self.client.cookies["csrftoken"].value

    def post(self, path, data=None, fmt="json", **headers):
        headers.setdefault("HTTP_X_CSRFTOKEN", self.token)
        if fmt == "json":
            return self.client.post(path, data or {}, content_type="application/json", **headers)
        return self.client.post(path, data, **headers)

    def get(self, path, **headers):
        return self.client.get(path, **headers)

    def transcribe(self, data=None, **headers):
        return self.post("/api/v1/transcribe", {"file": upload(data or wav_bytes(3.0)), "translate": "true"},
                         fmt="multipart", HTTP_PREFER="respond-async", **headers)


@pytest.fixture
def browser(db):
    return Browser()


def test_it_mints_a_key_for_a_page(browser):
    response = browser.post("/api/v1/keys")
    assert response.status_code == 201
    assert ApiKey.objects.for_bearer(response.json()["key"]) is not None


def test_it_refuses_a_call_without_the_csrf_token(browser):
    response = browser.post("/api/v1/keys", HTTP_X_CSRFTOKEN="")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"
    assert ApiKey.objects.count() == 0


def test_it_refuses_a_call_from_another_site(browser):
    response = browser.post("/api/v1/keys", HTTP_ORIGIN="https://evil.example")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "csrf_failed"


def test_it_refuses_a_caller_that_never_loaded_a_page(db):
    response = Client(enforce_csrf_checks=True).post("/api/v1/keys", {}, content_type="application/json",
                                                     HTTP_X_CSRFTOKEN="x" * 32)
    assert response.status_code == 403
    assert "cookie" in response.json()["error"]["message"]


def test_a_visitor_without_a_key_runs_on_the_demo_route(browser, demo_worker):
    response = browser.transcribe()
    assert response.status_code == 202
    assert response.json()["processed_by"] == "server_demo"
    assert response.json()["status_url"].endswith(f"/api/v1/transcriptions/{response.json()['id']}")
    assert response["Location"].endswith(f"/api/v1/transcriptions/{response.json()['id']}")

    job = claim_job(demo_worker, "demo")
    assert demo_worker.complete(job, "demo", text="こんにちは").status_code == 200
    result = browser.get(f"/api/v1/transcriptions/{job['id']}")
    assert result.status_code == 200 and result.json()["text"] == "こんにちは"


def test_a_visitor_downloads_its_clips_subtitles(browser, demo_worker):
    """The try-it page links the result's .srt and .vtt through the proxy."""
    job_id = browser.transcribe().json()["id"]
    job = claim_job(demo_worker, "demo")
    segments = [{"start": 0.1, "end": 0.9, "text": "こんにちは。"}]
    assert demo_worker.complete(job, "demo", text="こんにちは。", segments=segments).status_code == 200
    for fmt, content_type in [("srt", "application/x-subrip"), ("vtt", "text/vtt")]:
        response = browser.get(f"/api/v1/transcriptions/{job_id}?format={fmt}")
        assert response.status_code == 200 and response["Content-Type"].startswith(content_type)
        assert response["Content-Disposition"] == f'inline; filename="{job_id}.{fmt}"'
        assert "こんにちは。" in response.content.decode()
    assert Browser(ip="198.51.100.81").get(f"/api/v1/transcriptions/{job_id}?format=vtt").status_code == 404


def test_a_visitor_sees_only_the_clips_of_its_own_browser(browser, demo_worker):
    job_id = browser.transcribe().json()["id"]
    stranger = Browser(ip="203.0.113.50")
    response = stranger.get(f"/api/v1/transcriptions/{job_id}")
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_visitors_share_the_servers_demo_quota_per_ip_not_per_browser(browser, demo_worker):
    for _ in range(3):
        assert browser.transcribe().status_code == 202
    same_ip = Browser()
    refused = same_ip.transcribe()
    assert refused.status_code == 403
    assert refused.json()["error"]["code"] == "worker_required"
    message = refused.json()["error"]["message"]
    assert "3 free server demos for today are used" in message and "Mint a free key" in message
    assert "credit" not in message, "a visitor has no credits to earn"
    assert Browser(ip="203.0.113.51").transcribe().status_code == 202


def test_a_visitor_never_gets_pool_routes(browser, demo_worker):
    long_clip = wav_bytes(40.0, rate=8000)
    response = browser.transcribe(long_clip)
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "worker_required"


def test_an_oversized_upload_is_refused_while_streaming(browser, settings):
    settings.JPT_MAX_UPLOAD_BYTES = 50_000
    response = browser.transcribe(wav_bytes(10.0))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"


def test_limits_count_per_visitor_ip(browser, settings):
    settings.JPT_RATE_USER = "2/m"
    assert [browser.get("/api/v1/account").status_code for _ in range(3)] == [200, 200, 429]
    assert Browser(ip="203.0.113.52").get("/api/v1/account").status_code == 200


def test_the_worker_protocol_is_not_proxied(browser):
    response = browser.post("/api/v1/worker/heartbeat", {"worker_id": "w1"})
    assert response.status_code == 404
    assert response.json()["error"]["code"] == "not_found"


def test_the_browser_key_only_works_through_the_proxy(anonymous, browser):
    assert browser.get("/api/v1/account").json()["key_prefix"] == "jpt_browser"
    response = anonymous.get("/v1/account")
    assert response.status_code == 401


def test_a_key_holder_can_use_the_proxy_with_its_own_key(browser, alice):
    response = browser.get("/api/v1/account", HTTP_AUTHORIZATION=f"Bearer {alice.raw_key}")
    assert response.status_code == 200
    assert response.json()["key_prefix"] == alice.raw_key[:12]


def test_staff_switch_the_web_demo_off_by_revoking_the_browser_key(browser):
    accounts.key_revoke(key=accounts.browser_key())
    response = browser.get("/api/v1/account")
    assert response.status_code == 401
    assert "switched off" in response.json()["error"]["message"]


def test_behind_an_https_proxy_the_pages_own_calls_pass_and_others_do_not(browser, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    https = {"HTTP_X_FORWARDED_PROTO": "https", "HTTP_HOST": "testserver", "HTTP_REFERER": "https://testserver/get-key/"}
    assert browser.post("/api/v1/keys", HTTP_ORIGIN="https://testserver", **https).status_code == 201
    refused = browser.post("/api/v1/keys", HTTP_ORIGIN="http://testserver", **https)
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "csrf_failed"
    no_origin = browser.post("/api/v1/keys", HTTP_X_FORWARDED_PROTO="https", HTTP_HOST="testserver",
                             HTTP_REFERER="https://evil.example/")
    assert no_origin.status_code == 403
