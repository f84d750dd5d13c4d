"""Idempotent requests: the `Idempotency-Key` header (IETF httpapi draft "The Idempotency-Key HTTP
Header Field").

A POST sent with a key is recorded with a fingerprint of what it asked for (method, path, fields,
the SHA-256 of each uploaded file) for JPT_IDEMPOTENCY_KEEP_HOURS. A retry with the same key and
the same request gets the first answer and runs nothing; with another request it is refused (422);
while the first still runs (and has nothing to attach to) it is told to retry (409). Keys are per
scope: the API key, or the address for key minting and web visitors. The unique index on (scope,
key hash) decides which of concurrent requests runs: the others read its record.

Translations and minted keys are stored answers, encrypted under a key derived from the client's
Idempotency-Key and SECRET_KEY (neither is stored), so the database alone reveals no minted API
key. Transcriptions store no answer but the job's id (`transcription.services` attaches retries
to the job). A request refused before it changed anything gives its key back, so a retry after
fixing the cause runs anew."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from django.conf import settings
from django.core.files import File
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, transaction
from django.utils import timezone
from rest_framework.response import Response

from accounts.models import ApiKey, IdempotentRequest
from jptranscribe.errors import InvalidRequest, ServiceError
from jptranscribe.net import address_block, client_ip

HEADER = "Idempotency-Key"
REPLAYED_HEADER = "Idempotent-Replayed"
MAX_LENGTH = 255
# A record whose first request neither answered nor gave its key back in this long died with its
# process: a retry takes it over. (Far beyond the longest a request runs before its answer or job.)
ABANDONED_SECONDS = 600


class IdempotencyKeyReused(ServiceError, status=422, code="idempotency_key_reused"):
    """The key was sent before with another request: keys name one request each."""


class IdempotencyConflict(ServiceError, status=409, code="idempotency_conflict"):
    """The first request with this key is still running."""


def still_running() -> IdempotencyConflict:
    return IdempotencyConflict("A request with this Idempotency-Key is still being processed; retry.")


@dataclass(frozen=True)
class IdempotentCall:
    """One request's key, where it counts, and what it asked for. `key` stays in memory: it
    derives the stored answer's encryption key."""

    scope: str
    key: str
    fingerprint: str

    @property
    def key_hash(self) -> str:
        # Keyed, and apart from the encryption key: a guessable client key reveals nothing either.
        secret = settings.SECRET_KEY.encode()
        return hmac.new(secret, b"jpt idempotency lookup\0" + self.key.encode(), hashlib.sha256).hexdigest()

    def records(self):
        return IdempotentRequest.objects.filter(scope=self.scope, key_hash=self.key_hash)

    def fernet(self) -> Fernet:
        derived = HKDF(
            algorithm=hashes.SHA256(), length=32, salt=settings.SECRET_KEY.encode(), info=b"jpt idempotent answer"
        ).derive(self.key.encode())
        return Fernet(base64.urlsafe_b64encode(derived))


def parse_key(value: str) -> str:
    """The header's key: a Structured Field string (`"…"`, as the draft has it) or, as Stripe's
    clients send it, the bare value; 1 to 255 printable ASCII characters either way."""
    value = value.strip(" \t")
    if value.startswith('"'):
        key, rest, escaped = [], None, False
        for index, char in enumerate(value[1:], start=1):
            if escaped:
                if char not in '"\\':
                    break
                key.append(char)
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                rest = value[index + 1 :]
                break
            else:
                key.append(char)
        if rest != "":  # unterminated, a bad escape, or something after the string
            raise _malformed()
        value = "".join(key)
    if not 1 <= len(value) <= MAX_LENGTH or any(not " " <= char <= "~" for char in value):
        raise _malformed()
    return value


def _malformed() -> InvalidRequest:
    return InvalidRequest(
        f'Malformed {HEADER}: send 1 to {MAX_LENGTH} printable ASCII characters, e.g. a UUID, bare or quoted ("…").',
        param=HEADER,
    )


def scope_of(request) -> str:
    """Keys count per API key; web visitors share the browser key, and key minting has none, so
    theirs count per address (an IPv6 address as its /64)."""
    user = getattr(request, "user", None)
    if isinstance(user, ApiKey) and not user.is_browser:
        return f"key:{user.pk}"
    block = address_block(client_ip(request))
    return f"browser:{block}" if isinstance(user, ApiKey) else f"ip:{block}"


def fingerprint(*, method: str, path: str, fields: Mapping[str, Any]) -> str:
    """SHA-256 over the method, the path, the fields (sorted by name, as checked) and the SHA-256
    of each uploaded file's bytes."""
    plain = {
        name: {"sha256": _file_sha256(value)} if isinstance(value, File) else value for name, value in fields.items()
    }
    canonical = json.dumps([method, path, plain], sort_keys=True, cls=DjangoJSONEncoder, ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def _file_sha256(upload: File) -> str:
    digest = hashlib.sha256()
    for chunk in upload.chunks():  # from the start
        digest.update(chunk)
    upload.seek(0)  # read again by the intake
    return digest.hexdigest()


def idempotent_call(request, *, fields: Mapping[str, Any]) -> IdempotentCall | None:
    """The request's Idempotency-Key with its scope and fingerprint; None without the header."""
    value = request.headers.get(HEADER)
    if value is None:
        return None
    return IdempotentCall(
        scope=scope_of(request),
        key=parse_key(value),
        fingerprint=fingerprint(method=request.method, path=request.path, fields=fields),
    )


def _kept_since() -> datetime:
    return timezone.now() - timedelta(hours=settings.JPT_IDEMPOTENCY_KEEP_HOURS)


def is_abandoned(record: IdempotentRequest) -> bool:
    return record.created_at < timezone.now() - timedelta(seconds=ABANDONED_SECONDS)


def claim(call: IdempotentCall, *, job_ref: str = "") -> IdempotentRequest | None:
    """Record `call` as running, or find the earlier request with its key.

    None: this request is the first; run it, then `store_answer` (or, if it changed nothing,
    `release`). Else the earlier record, for the same request (another request is refused with
    422). A record past its keeping time, or one whose first request died answering nothing
    (`job_ref` records: the caller judges, see `take_over`), is replaced."""
    for _ in range(3):
        try:
            with transaction.atomic():  # a savepoint: a lost race must not spoil an outer transaction
                IdempotentRequest.objects.create(
                    scope=call.scope, key_hash=call.key_hash, fingerprint=call.fingerprint, job_ref=job_ref
                )
            return None
        except IntegrityError:
            pass
        earlier = call.records().first()
        if earlier is None:  # given back meanwhile
            continue
        stale = earlier.created_at < _kept_since()
        if stale or (earlier.status is None and not earlier.job_ref and is_abandoned(earlier)):
            take_over(earlier)
            continue
        if earlier.fingerprint != call.fingerprint:
            raise IdempotencyKeyReused(
                f"This {HEADER} was used for a different request (method, path, fields or file); "
                "send a new key for a new request.",
                param=HEADER,
            )
        return earlier
    raise still_running()


def take_over(record: IdempotentRequest) -> None:
    """Forget a record that is past its time or whose first request died, so a retry runs anew."""
    IdempotentRequest.objects.filter(pk=record.pk, created_at=record.created_at).delete()


def is_recorded(record: IdempotentRequest) -> bool:
    return IdempotentRequest.objects.filter(pk=record.pk).exists()


def release(call: IdempotentCall, *, job_ref: str = "") -> None:
    """Give the key back: the first request was refused before it changed anything."""
    call.records().filter(fingerprint=call.fingerprint, job_ref=job_ref, status__isnull=True).delete()


def store_answer(call: IdempotentCall, *, status: int, body: Any) -> None:
    token = call.fernet().encrypt(json.dumps(body, cls=DjangoJSONEncoder).encode())
    call.records().filter(fingerprint=call.fingerprint).update(status=status, answer=token)


def stored_answer(call: IdempotentCall, record: IdempotentRequest) -> tuple[int, Any]:
    assert record.status is not None and record.answer is not None
    return record.status, json.loads(call.fernet().decrypt(bytes(record.answer)))


def mark_replayed(response):
    response[REPLAYED_HEADER] = "true"
    return response


def respond_once(request, *, fields: Mapping[str, Any], respond: Callable[[], Response]) -> Response:
    """`respond()` once per Idempotency-Key: a retry gets the stored status and body (marked
    `Idempotent-Replayed: true`), 409 while the first still runs. A refusal (an error status, a
    ServiceError or any exception) stores nothing, so a retry runs anew. Without the header, just
    `respond()`."""
    call = idempotent_call(request, fields=fields)
    if call is None:
        return respond()
    earlier = claim(call)
    if earlier is not None:
        if earlier.status is None:
            raise still_running()
        status, body = stored_answer(call, earlier)
        return mark_replayed(Response(body, status=status))
    try:
        response = respond()
    except BaseException:
        release(call)
        raise
    if response.status_code >= 400:  # a refusal answered rather than raised: it changed nothing either
        release(call)
    else:
        store_answer(call, status=response.status_code, body=response.data)
    return response


def forget_expired() -> int:
    """Delete the records past their keeping time (the `sweep` command); lookups ignore them already."""
    deleted, _ = IdempotentRequest.objects.filter(created_at__lt=_kept_since()).delete()
    return deleted
