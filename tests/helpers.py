"""What tests do as a client of the API: callers bound to a key, a worker's protocol calls,
uploads, credits. Test audio is in `tests.clips`; fixtures are in `conftest.py`."""
import io

from rest_framework.test import APIClient

from accounts.models import ApiKey
from tests.clips import wav_bytes


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

    def claim(self, worker_id="w1", wait_seconds=0, inline_audio=True):
        """A worker gets its clip in the claim's answer (or fetches it): one that did neither
        would be striking an implausible result."""
        return self.post("/v1/pool/claim", {"worker_id": worker_id, "wait_seconds": wait_seconds,
                                            "inline_audio": inline_audio})

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


def online_worker(caller, worker_id="w1", max_jobs=1, trusted=True):
    """A worker of the caller's key, online. Its key is trusted unless asked otherwise, so its pool
    results are delivered at once (the tests of checking results say trusted=False)."""
    assert caller.heartbeat(worker_id, max_jobs=max_jobs).status_code == 200
    if trusted:
        make_trusted(caller)
    return caller


def make_trusted(caller):
    """Trusted, with a record so long that a spot check of its results never comes up by chance."""
    from pool.models import KeyTrust
    from pool.verification import trust_grant

    trust_grant(key_id=caller.key.pk)
    KeyTrust.objects.filter(key_id=caller.key.pk).update(consecutive_agreements=10**6)


def claim_job(caller, worker_id="w1"):
    response = caller.claim(worker_id)
    assert response.status_code == 200, response.json()
    return response.json()["job"]


def grant(caller, seconds):
    from accounts.credits import credits_grant

    credits_grant(key=caller.key, amount=seconds, reason="test")


def in_threads(target, count: int) -> None:
    """Run `target` in `count` threads at once and wait for them all (each closes its own
    database connection, as a request thread would)."""
    import threading

    from django.db import connection

    def run():
        try:
            target()
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
