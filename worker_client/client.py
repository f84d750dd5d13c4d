"""The worker protocol over HTTP, with the retry rules a volunteer's flaky network needs."""

from __future__ import annotations

import base64
import random
import time
import uuid
from collections.abc import Iterable

import requests

# The worker's own version, sent in its heartbeats. This package imports no Django, so it does not
# read the server's (JPT_VERSION in jptranscribe/settings.py); the two are released together.
VERSION = "1.3.0"


class Unauthorized(Exception):
    """The key is wrong or revoked: no retry can help."""


class Banned(Exception):
    """The operators stopped this key from running workers."""


class JobGone(Exception):
    """The server no longer knows this job for us (lease lost, finished, re-assigned)."""


class Retryable(Exception):
    """Network trouble, a 5xx or a 429: try again after a pause."""

    def __init__(self, message, retry_after=None, answered=False):
        super().__init__(message)
        self.retry_after = retry_after
        self.answered = answered  # the server answered (5xx, 429), rather than not being reached


class Busy(Retryable):
    """The server says this worker already holds as many jobs as it runs at once."""


class Refused(Exception):
    """The server refused the call as it stands (a 400, say): sending it again cannot help."""


class NotRegistered(Exception):
    """The server does not know this worker (its registration ran out): heartbeat, then retry."""


class Backoff:
    """Capped exponential backoff with full jitter: never a tight loop, never a thundering herd."""

    def __init__(self, base=1.0, cap=60.0, rng=random.random):
        self.base, self.cap, self.rng, self.failures = base, cap, rng, 0

    def next_delay(self, retry_after=None) -> float:
        self.failures += 1
        ceiling = min(self.cap, self.base * 2 ** (self.failures - 1))
        delay = ceiling * (0.5 + self.rng() / 2)
        return max(delay, float(retry_after or 0))

    def reset(self):
        self.failures = 0


def _error(response):
    try:
        err = response.json()["error"]
        return err.get("code", ""), err.get("message", "")
    except (ValueError, KeyError, TypeError):
        return "", response.text[:200]


class ServerClient:
    def __init__(self, server: str, key: str, worker_id: str, *, timeout=30, max_jobs=1):
        self.server = server.rstrip("/")
        self.key_prefix = key[:12]
        self.worker_id = worker_id
        # New for every process: the server hands back at once what an earlier process of this
        # worker id held when it died.
        self.session_id = uuid.uuid4().hex
        self.max_jobs = max_jobs
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {key}", "User-Agent": f"jptranscribe-worker/{VERSION}"})

    def _call(self, method, path, *, timeout=None, **kwargs):
        try:
            response = self.session.request(method, self.server + path, timeout=timeout or self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise Retryable(f"cannot reach {self.server} ({exc.__class__.__name__})") from exc
        if response.ok:
            return response
        code, message = _error(response)
        if response.status_code == 401:
            raise Unauthorized(message or "unauthorized")
        if code == "worker_banned":
            raise Banned(message)
        if code == "worker_not_registered":
            raise NotRegistered(message)
        if code == "worker_busy":
            raise Busy(message)
        if response.status_code in (404, 409):
            raise JobGone(message or code)
        if response.status_code in (408, 429) or response.status_code >= 500:
            said = f": {message}" if message and code else ""  # a 5xx page's text says nothing to a volunteer
            raise Retryable(
                f"the server answered {response.status_code} {code}{said}".rstrip(),
                retry_after=response.headers.get("Retry-After"),
                answered=True,
            )
        raise Refused(f"{response.status_code} {code}: {message}")

    def heartbeat(self, *, name, engine, model, online=True, leases: Iterable[str] = ()) -> dict:
        return self._call(
            "POST",
            "/v1/worker/heartbeat",
            json={
                "worker_id": self.worker_id,
                "name": name,
                "engine": engine,
                "model": model,
                "version": VERSION,
                "status": "online" if online else "offline",
                "session_id": self.session_id,
                "leases": list(leases),
                "max_jobs": self.max_jobs,
            },
        ).json()

    def claim(self, wait_seconds: float) -> dict | None:
        response = self._call(
            "POST",
            "/v1/pool/claim",
            json={"worker_id": self.worker_id, "wait_seconds": wait_seconds, "inline_audio": True},
            timeout=wait_seconds + 15,
        )
        return response.json()["job"]

    def audio(self, job) -> bytes:
        """The job's audio: from the claim's answer when the server put it there (small clips)."""
        if job.get("audio_base64"):
            return base64.b64decode(job["audio_base64"])
        return self._call(
            "GET", job["audio_url"], params={"worker_id": self.worker_id, "lease_id": job["lease_id"]}
        ).content

    def complete(self, job, result, processing_seconds, *, claim_next=False, wait_seconds=0.0) -> dict:
        """Hand a result in. With `claim_next`, the answer's `next_job` is this worker's next job
        when one is waiting, or arrives within `wait_seconds` (then held like a claimed one),
        saving the claim's request."""
        return self._held_job_call(
            job,
            "complete",
            timeout=wait_seconds + 15 if wait_seconds else None,
            text=result.text,
            segments=result.segments,
            model=result.model,
            processing_seconds=processing_seconds,
            # As many as the server keeps, each as long (an engine of one's own may have none).
            warnings=[str(warning)[:500] for warning in getattr(result, "warnings", ())][:10],
            claim_next=claim_next,
            inline_audio=claim_next,
            **({"wait_seconds": wait_seconds} if wait_seconds else {}),
        )

    def fail(self, job, error: str) -> dict:
        return self._held_job_call(job, "fail", error=error[:1900])

    def _held_job_call(self, job, action: str, *, timeout=None, **fields) -> dict:
        """A call about a job this worker holds: it names the worker and the lease."""
        body = {"worker_id": self.worker_id, "lease_id": job["lease_id"], **fields}
        return self._call("POST", f"/v1/pool/jobs/{job['id']}/{action}", json=body, timeout=timeout).json()

    def with_retries(self, call, *, attempts=6, backoff=None, stop=None, until=None):
        """Retry an idempotent call through network trouble (complete and fail are idempotent):
        `attempts` times, or until the monotonic time `until` when given."""
        backoff = backoff or Backoff(base=0.5, cap=15)
        attempt = 0
        while True:
            attempt += 1
            try:
                return call()
            except Retryable as exc:
                delay = backoff.next_delay(exc.retry_after)
                out_of_time = until is not None and time.monotonic() + delay > until
                out_of_tries = until is None and attempt >= attempts
                if out_of_time or out_of_tries or (stop is not None and stop()):
                    raise
                time.sleep(delay)
