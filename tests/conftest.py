"""A shared cast: alice and bob hold keys, the server runs a demo worker."""
import io

import pytest
from django.core.cache import cache
from rest_framework.test import APIClient

from accounts.models import ApiKey
from tests.clips import encode, wav_bytes  # noqa: F401 - shared with the tests


def upload(data, name="clip.wav"):
    f = io.BytesIO(data)
    f.name = name
    return f


class Caller:
    """An API client bound to one key (and one IP)."""

    def __init__(self, raw_key=None, ip="198.51.100.7"):
        self.raw_key = raw_key
        self.ip = ip
        self.client = APIClient(REMOTE_ADDR=ip)
        if raw_key:
            self.client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")

    @property
    def key(self):
        return ApiKey.objects.for_bearer(self.raw_key)

    def get(self, path, **kw):
        return self.client.get(path, **kw)

    def post(self, path, data=None, fmt="json", **kw):
        return self.client.post(path, data or {}, format=fmt, **kw)

    def transcribe(self, data=None, wait=False, **fields):
        fields.setdefault("file", upload(data if data is not None else wav_bytes()))
        headers = {} if wait else {"HTTP_PREFER": "respond-async"}
        return self.client.post("/v1/transcribe", fields, format="multipart", **headers)

    # The worker protocol, for a worker of this key.
    def heartbeat(self, worker_id="w1", **fields):
        return self.post("/v1/worker/heartbeat", {"worker_id": worker_id, "engine": "test", **fields})

    def claim(self, worker_id="w1", wait_seconds=0):
        return self.post("/v1/pool/claim", {"worker_id": worker_id, "wait_seconds": wait_seconds})

    def complete(self, job, worker_id="w1", text="こんにちは", **fields):
        body = {"worker_id": worker_id, "lease_id": job["lease_id"], "text": text, "model": "test-model", **fields}
        return self.post(f"/v1/pool/jobs/{job['id']}/complete", body)

    def fail(self, job, worker_id="w1", error="boom"):
        return self.post(f"/v1/pool/jobs/{job['id']}/fail",
                         {"worker_id": worker_id, "lease_id": job["lease_id"], "error": error})

    def audio(self, job, worker_id="w1", lease_id=None):
        return self.get(f"/v1/pool/jobs/{job['id']}/audio",
                        data={"worker_id": worker_id, "lease_id": lease_id or job["lease_id"]})


def mint_caller(ip="198.51.100.7", **kw):
    _, raw = ApiKey.mint(**kw)
    return Caller(raw, ip=ip)


@pytest.fixture(scope="session")
def _pool_listener_guard(django_db_setup):
    """The PostgreSQL listener thread holds a connection that would block dropping the test
    database, so it is stopped before the database goes."""
    yield
    from pool import wakeup

    wakeup.stop_listener()


@pytest.fixture(autouse=True)
def _clean_cache(request, settings):
    uses_db = "django_db" in request.keywords or {"db", "transactional_db"} & set(request.fixturenames)
    if not uses_db:  # no database here: nothing to reset
        yield
        return
    request.getfixturevalue("_pool_listener_guard")
    settings.JPT_TRANSCRIBE_WAIT_SECONDS = 0
    settings.JPT_WAKEUP_POLL_SECONDS = 0.2
    settings.JPT_MAINTENANCE_INTERVAL_SECONDS = 0
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _one_rate_limit_window(monkeypatch):
    """Limits count in fixed one-minute windows, so a test's requests could straddle a window's
    end and see the count start afresh. For the limiter, time stands still within one test."""
    import time
    from types import SimpleNamespace

    import django_ratelimit.core

    now = time.time()
    monkeypatch.setattr(django_ratelimit.core, "time", SimpleNamespace(time=lambda: now))


@pytest.fixture
def alice(db):
    return mint_caller(ip="198.51.100.7")


@pytest.fixture
def bob(db):
    return mint_caller(ip="203.0.113.9")


@pytest.fixture
def anonymous(db):
    return Caller(None, ip="198.51.100.50")


@pytest.fixture
def demo_worker(db):
    """The server's own demo worker, online."""
    caller = mint_caller(ip="127.0.0.1", is_server=True)
    assert caller.heartbeat("demo").status_code == 200
    return caller


def online_worker(caller, worker_id="w1"):
    assert caller.heartbeat(worker_id).status_code == 200
    return caller


def claim_job(caller, worker_id="w1"):
    response = caller.claim(worker_id)
    assert response.status_code == 200, response.json()
    return response.json()["job"]


def grant(caller, seconds):
    from accounts.credits import credits_grant

    credits_grant(key=caller.key, amount=seconds, reason="test")

