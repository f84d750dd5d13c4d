"""The pages a person reads: each says what it should, and stays true to the running API."""
import json
import os
import re
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.test import Client
from django.utils import timezone

from accounts.models import ApiKey
from jptranscribe.errors import error_table
from pool.models import Job
from tests.helpers import claim_job, online_worker
from web import docs
from worker_client.models import CATALOGUE

pytestmark = pytest.mark.django_db

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture
def visitor():
    return Client(REMOTE_ADDR="198.51.100.90")


@pytest.mark.parametrize("path, says", [
    ("/", "Japanese speech in"),
    ("/get-key/", "Mint a key"),
    ("/worker/", "Run a worker on your PC"),
    ("/status/", "Pool status"),
    ("/docs/", "API reference"),
])
def test_every_page_renders_for_anyone(visitor, path, says):
    response = visitor.get(path)
    assert response.status_code == 200
    assert says in response.content.decode()
    assert response["Content-Type"].startswith("text/html")


def test_examples_name_this_server_so_they_paste_as_they_are(visitor):
    page = visitor.get("/", HTTP_HOST="localhost").content.decode()
    assert "curl -X POST http://localhost/v1/transcribe" in page


def test_no_page_ever_carries_a_key(visitor, alice):
    ApiKey.mint(note="someone else's")
    for path in ["/", "/get-key/", "/worker/", "/status/", "/docs/"]:
        assert not re.search(r"jpt_[A-Za-z0-9]{40}", visitor.get(path).content.decode()), path


def test_the_key_form_works_without_javascript_and_shows_the_key_once(visitor):
    response = visitor.post("/get-key/")
    page = response.content.decode()
    raw_key = re.search(r"jpt_[A-Za-z0-9]{40}", page).group(0)
    assert ApiKey.objects.for_bearer(raw_key) is not None
    assert "no-store" in response["Cache-Control"]
    assert raw_key not in visitor.get("/get-key/").content.decode()


def test_the_key_form_explains_the_daily_limit(visitor):
    for _ in range(5):
        assert visitor.post("/get-key/").status_code == 200
    refused = visitor.post("/get-key/")
    assert refused.status_code == 429
    assert "5 new keys per IP per day" in refused.content.decode()
    assert ApiKey.objects.count() == 5


def test_the_docs_describe_every_endpoint_of_the_api(visitor):
    page = visitor.get("/docs/").content.decode()
    operations = [(method.upper(), path) for path, ops in docs.api_schema()["paths"].items() for method in ops]
    assert len(operations) == 16
    for method, path in operations:
        assert f'<span class="method {method}">{method}</span> <code>{path}</code>' in page
        assert (method, path) in docs.EXAMPLES, f"{method} {path} has no example on /docs/"


def test_the_docs_list_every_error_code(visitor):
    page = visitor.get("/docs/").content.decode()
    for status, code, _ in error_table():
        assert f'id="error-{code}-{status}"' in page


def error_table_with_default_settings():
    """The table as a server started with no JPT_ variables renders it."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("JPT_")}
    out = subprocess.run(
        [sys.executable, "-c", "import django, json; django.setup(); from jptranscribe.errors import error_table; "
                               "print(json.dumps(error_table()))"],
        cwd=README.parent, env={**env, "DJANGO_SETTINGS_MODULE": "jptranscribe.settings"},
        capture_output=True, text=True, check=True,
    )
    return [tuple(row) for row in json.loads(out.stdout.splitlines()[-1])]


def test_the_readme_error_table_is_the_one_the_api_uses():
    rows = re.findall(r"^\| (\d{3}) \| `([a-z_]+)` \| (.+?) \|$", README.read_text(), re.M)
    assert [(int(status), code, when) for status, code, when in rows] == error_table_with_default_settings()


def test_the_error_table_names_this_servers_limits(settings):
    settings.JPT_MAX_CLIP_SECONDS = 60
    settings.JPT_MAX_UPLOAD_BYTES = 5 * 1_048_576
    settings.JPT_TRANSLATION_MAX_CHARS = 12_000
    settings.JPT_MAX_ATTEMPTS = 4
    table = "\n".join(when for _, _, when in error_table())
    for says in ["clip over 60 s", "over 5 MB", "over 12,000 characters", "after 4 attempts"]:
        assert says in table


def test_the_worker_page_lists_every_model_with_its_size(visitor):
    page = visitor.get("/worker/").content.decode()
    for model in CATALOGUE.values():
        assert f"<code>{model.name}</code>" in page and f"{model.size_mb} MB" in page


def test_the_docs_examples_run_against_the_api(alice):
    """The curl examples' JSON bodies are accepted by the endpoints they document."""
    import json

    body = re.search(r"-d '(\{.*\})'", docs.EXAMPLES[("POST", "/v1/worker/heartbeat")][1]).group(1)
    response = alice.post("/v1/worker/heartbeat", json.loads(body.replace("{{", "{").replace("}}", "}")))
    assert response.status_code == 200, response.json()
    body = re.search(r"-d '(\{.*\})'", docs.EXAMPLES[("POST", "/v1/translate")][1]).group(1)
    assert json.loads(body.replace("{{", "{").replace("}}", "}"))["source"] == "ja"


@pytest.mark.postgres  # hour buckets and aggregates differ between the databases
class TestStatusFigures:
    def test_an_empty_pool_reads_as_zero(self, visitor):
        figures = visitor.get("/status.json").json()
        assert figures["pool"] == {"workers_online": 0, "jobs_queued": 0}
        assert figures["last_24h"] == {"jobs_done": 0, "audio_hours": 0.0, "median_wait_seconds": None,
                                       "checks_share_of_pool_work": None}
        assert len(figures["hours"]) == 24 and all(h["jobs_done"] == 0 for h in figures["hours"])

    def test_they_count_workers_queue_and_finished_work(self, visitor, alice, bob, settings):
        online_worker(alice)
        for _ in range(3):
            assert alice.transcribe().status_code == 202
        for _ in range(2):
            job = claim_job(alice)
            assert alice.complete(job).status_code == 200
        Job.objects.update(created_at=timezone.now() - timedelta(seconds=4))

        figures = visitor.get("/status.json").json()
        assert figures["pool"] == {"workers_online": 1, "jobs_queued": 1}
        assert figures["last_24h"]["jobs_done"] == 2
        assert figures["last_24h"]["audio_hours"] == pytest.approx(6 / 3600, abs=1e-3)
        assert figures["last_24h"]["median_wait_seconds"] == pytest.approx(4, abs=1.5)
        assert figures["hours"][-1]["jobs_done"] == 2
        assert figures["hours"][-1]["audio_minutes"] == pytest.approx(0.1)

    def test_finished_work_older_than_a_day_drops_out(self, visitor, alice):
        online_worker(alice)
        alice.transcribe()
        assert alice.complete(claim_job(alice)).status_code == 200
        Job.objects.update(finished_at=timezone.now() - timedelta(hours=25),
                           created_at=timezone.now() - timedelta(hours=25))
        assert visitor.get("/status.json").json()["last_24h"]["jobs_done"] == 0

    def test_the_page_shows_the_same_figures_without_javascript(self, visitor, alice):
        online_worker(alice)
        page = visitor.get("/status/").content.decode()
        assert re.search(r'data-figure="pool.workers_online">1<', page)
        assert page.count("<rect ") == 24


def test_an_unknown_page_is_a_404_page_and_an_unknown_api_path_is_json(visitor):
    page = visitor.get("/no-such-page/")
    assert page.status_code == 404 and "Nothing here" in page.content.decode()
    api = visitor.get("/v1/no-such-endpoint")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"
    proxied = visitor.get("/api/v1/no-such-endpoint")
    assert proxied.status_code == 404 and proxied.json()["error"]["code"] == "not_found"


def test_the_server_error_page_renders_without_a_request_context(rf):
    from jptranscribe.errors import json_500

    page = json_500(rf.get("/status/"))
    assert page.status_code == 500 and b"Something broke on our side" in page.content


def test_the_limits_shown_are_the_ones_in_force(visitor, settings):
    settings.JPT_RATE_USER = "50/m"
    settings.JPT_DEMOS_PER_IP_PER_DAY = 4
    page = visitor.get("/docs/").content.decode()
    assert "50 per minute per API key" in page and "4 clips / IP / day" in page


@pytest.mark.parametrize("path", ["/", "/get-key/", "/worker/", "/status/", "/docs/"])
def test_pages_run_no_inline_code(visitor, path):
    response = visitor.get(path)
    assert "script-src 'self'" in response["Content-Security-Policy"]
    page = response.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", page), "inline <script> would be blocked"
    assert " style=" not in page and " onclick=" not in page


def test_the_status_figures_refuse_other_methods_in_the_api_envelope(visitor):
    response = visitor.post("/status.json")
    assert response.status_code == 405 and response["Allow"] == "GET, HEAD"
    assert response.json()["error"]["code"] == "method_not_allowed"
