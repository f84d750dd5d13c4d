"""One error shape for the whole API: {"error": {"code", "message", "type", "param"}}.

`code` and `message` are the v1.3 contract; `type` and `param` make the same envelope the one
OpenAI's SDKs read (`type` from the code, `param` the request field at fault, or null)."""

import logging

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.db import InterfaceError, OperationalError
from django.http import Http404, JsonResponse
from rest_framework import exceptions as drf
from rest_framework.response import Response

from jptranscribe.cache import UNREACHABLE
from jptranscribe.schema import Error
from jptranscribe.serializing import rendered

log = logging.getLogger(__name__)

# A database or cache connection lost (a restart, a failover): 503, retried by clients as a 500 is,
# but saying what happened and when to try again.
OUTAGES: tuple[type[Exception], ...] = (OperationalError, InterfaceError, *UNREACHABLE)
OUTAGE_RETRY_AFTER_SECONDS = 5


class ServiceError(Exception):
    """A refusal a caller can act on. Services raise these; views stay thin.

    A kind of refusal is declared in one line: `class LeaseLost(ServiceError, status=409, code="lease_lost")`."""

    status = 400
    code = "invalid_request"
    param: str | None = None
    headers: dict = {}

    def __init_subclass__(cls, *, status: int | None = None, code: str | None = None, **kwargs):
        super().__init_subclass__(**kwargs)
        if status is not None:
            cls.status = status
        if code is not None:
            cls.code = code

    def __init__(self, message, *, code=None, status=None, headers=None, param=None):
        super().__init__(message)
        self.message = message
        if param:
            self.param = param
        if code:
            self.code = code
        if status:
            self.status = status
        if headers:
            self.headers = headers


class InvalidRequest(ServiceError):
    pass


class InvalidAudio(ServiceError, code="invalid_audio"):
    pass


class FileTooLarge(ServiceError, status=413, code="file_too_large"):
    pass


class NotFound(ServiceError, status=404, code="not_found"):
    pass


class RateLimited(ServiceError, status=429, code="rate_limited"):
    def __init__(self, message, *, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(max(1, int(retry_after)))})


def limit_bytes(n: int) -> str:
    """A size limit as people read it: 10485760 is "10 MB"."""
    return f"{n / 1_048_576:g} MB"


def limit_seconds(seconds: float) -> str:
    return f"{seconds:g} s"


def error_table() -> list[tuple[int, str, str]]:
    """Every error a caller can get, with this server's limits: the /docs/ page shows exactly
    these, and the README's table is this with the default settings (a test compares them)."""
    return [
        (
            400,
            "invalid_request",
            "bad or missing fields, both or neither of `file`/`url`, `language` other than `ja`, "
            f"clip over {limit_seconds(settings.JPT_MAX_CLIP_SECONDS)}, a URL that is not "
            "public https or cannot be fetched, chunked uploads, a malformed `Idempotency-Key`",
        ),
        (
            400,
            "invalid_audio",
            "empty, not WAV/MP3/M4A/FLAC/OGG, or no decodable audio (a corrupt MP3 is this, not an empty transcript); "
            "more audio than its header declares, over 8 channels, or a sample rate outside 8-192 kHz",
        ),
        (401, "unauthorized", "missing, malformed, unknown or revoked key"),
        (
            403,
            "worker_required",
            "no route fits; the message says what to do (run a worker, wait for tomorrow's demos, "
            "or how many seconds of credit are missing)",
        ),
        (403, "worker_banned", "an operator stopped this key from running workers"),
        (
            403,
            "csrf_failed",
            "a call to the browser proxy /api that did not come from this site's pages (programs call /v1 with a key)",
        ),
        (
            404,
            "not_found",
            "unknown path, or a transcription/job that is not yours (others' ids are indistinguishable "
            "from missing ones)",
        ),
        (405, "method_not_allowed", "wrong HTTP method"),
        (
            409,
            "worker_not_registered",
            "a pool call from a worker that has not sent a heartbeat (or whose registration "
            "expired): heartbeat, then retry",
        ),
        (
            409,
            "lease_lost",
            "a worker touches a job it no longer holds (lease expired, re-assigned, cancelled, or already "
            "finished; the message says when it was cancelled)",
        ),
        (
            409,
            "cancelled",
            "a `transcribe` call (or OpenAI-style audio call) whose transcription was cancelled while it waited, "
            "by its owner (`DELETE /v1/transcriptions/{id}`) or by an operator; polling shows `status: cancelled` "
            "with this error",
        ),
        (
            409,
            "worker_busy",
            "a claim from a worker that holds as many jobs as it runs at once (its heartbeat's `max_jobs`, "
            f"at most {settings.JPT_WORKER_MAX_JOBS}): complete or fail one first",
        ),
        (
            409,
            "idempotency_conflict",
            "a retry with an `Idempotency-Key` whose first request is still running (and has no job yet to "
            "attach to): retry",
        ),
        (
            413,
            "file_too_large",
            f"upload or fetched URL over {limit_bytes(settings.JPT_MAX_UPLOAD_BYTES)}; "
            "refused while streaming, before the body is read",
        ),
        (413, "text_too_long", f"`POST /v1/translate` text over {settings.JPT_TRANSLATION_MAX_CHARS:,} characters"),
        (415, "invalid_request", "unsupported Content-Type"),
        (
            422,
            "idempotency_key_reused",
            f"an `Idempotency-Key` sent in the last {settings.JPT_IDEMPOTENCY_KEEP_HOURS:g} h with a different "
            "request (method, path, fields or file)",
        ),
        (429, "rate_limited", "over a limit; `Retry-After` says when to retry"),
        (
            500,
            "internal_error",
            f"a server error, or a transcription that failed after {settings.JPT_MAX_ATTEMPTS} attempts: retry",
        ),
        (
            503,
            "service_unavailable",
            "the server could not reach its database or shared cache (PostgreSQL or Redis restarting, a failover); "
            f"`Retry-After: {OUTAGE_RETRY_AFTER_SECONDS}`. Retry as after a 500",
        ),
        (
            503,
            "translation_unavailable",
            "`POST /v1/translate` or `POST /v1/audio/translations` with no translation model installed (yet: the "
            "message says how far its preparation is, or names the install command)",
        ),
    ]


# OpenAI's error types, by our codes; any other code is an invalid request. (The SDKs choose
# their exception class by the HTTP status; `type` is for people and for logs.)
ERROR_TYPES = {
    "unauthorized": "authentication_error",
    "worker_required": "permission_error",
    "worker_banned": "permission_error",
    "csrf_failed": "permission_error",
    "forbidden": "permission_error",
    "not_found": "not_found_error",
    "rate_limited": "rate_limit_error",
    "internal_error": "server_error",
    "translation_unavailable": "service_unavailable_error",
    "service_unavailable": "service_unavailable_error",
}


def error_type(code: str) -> str:
    return ERROR_TYPES.get(code, "invalid_request_error")


def error_body(code, message, param=None) -> dict:
    """{"error": {"code", "message", "type", "param"}}, rendered by the serializer that documents it."""
    return rendered(Error, {"code": code, "message": message, "type": error_type(code), "param": param})


def _first_message(detail):
    if isinstance(detail, dict):
        field, value = next(iter(detail.items()))
        inner = _first_message(value)
        return inner if field == "non_field_errors" else f"{field}: {inner}"
    if isinstance(detail, list) and detail:
        return _first_message(detail[0])
    return str(detail)


def _first_field(detail) -> str | None:
    """The request field a validation error names first (dotted for nested ones), if any."""
    if isinstance(detail, dict) and detail:
        field, value = next(iter(detail.items()))
        if field == "non_field_errors":
            return None
        inner = _first_field(value)
        return f"{field}.{inner}" if inner else str(field)
    if isinstance(detail, list) and detail:
        return _first_field(detail[0])
    return None


def exception_handler(exc, context):
    if isinstance(exc, ServiceError):
        return Response(error_body(exc.code, exc.message, exc.param), status=exc.status, headers=exc.headers)
    if isinstance(exc, (drf.NotAuthenticated, drf.AuthenticationFailed)):
        message = (
            exc.detail
            if isinstance(exc, drf.AuthenticationFailed)
            else ("Missing API key: send 'Authorization: Bearer jpt_…'.")
        )
        return Response(
            error_body("unauthorized", str(message)), status=401, headers={"WWW-Authenticate": 'Bearer realm="api"'}
        )
    if isinstance(exc, drf.Throttled):
        wait = exc.wait  # type: ignore[attr-defined]  # set by Throttled.__init__; missing from the stubs
        return Response(
            error_body("rate_limited", str(exc.detail)),
            status=429,
            headers={"Retry-After": str(max(1, int(wait or 1)))},
        )
    if isinstance(exc, drf.MethodNotAllowed):
        return Response(error_body("method_not_allowed", str(exc.detail)), status=405)
    if isinstance(exc, (drf.NotFound, Http404)):
        return Response(error_body("not_found", "Not found."), status=404)
    if isinstance(exc, (drf.PermissionDenied, DjangoPermissionDenied)):
        return Response(error_body("forbidden", "You may not do that."), status=403)
    if isinstance(exc, RequestDataTooBig):
        return Response(error_body("file_too_large", "The request body is too large."), status=413)
    if isinstance(exc, drf.UnsupportedMediaType):
        return Response(error_body("invalid_request", str(exc.detail)), status=415)
    if isinstance(exc, drf.NotAcceptable):
        return Response(error_body("invalid_request", str(exc.detail)), status=406)
    if isinstance(exc, drf.ValidationError):
        return Response(error_body("invalid_request", _first_message(exc.detail), _first_field(exc.detail)), status=400)
    if isinstance(exc, drf.APIException):
        code = "invalid_request" if exc.status_code < 500 else "internal_error"
        return Response(error_body(code, str(exc.detail)), status=exc.status_code)
    if isinstance(exc, OUTAGES):  # not a bug: the database or the cache is restarting, or away
        log.warning("%s: %s: %s", context.get("view").__class__.__name__, exc.__class__.__name__, exc)
        return Response(
            error_body(
                "service_unavailable", "The server could not reach its database or cache just now; retry shortly."
            ),
            status=503,
            headers={"Retry-After": str(OUTAGE_RETRY_AFTER_SECONDS)},
        )
    log.exception("unhandled error in %s", context.get("view").__class__.__name__)
    return Response(error_body("internal_error", "Server error — please retry."), status=500)


def _is_api(request):
    return request.path.startswith(("/v1/", "/api/"))


def json_404(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body("not_found", f"No endpoint at {request.path}."), status=404)
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


def json_500(request):
    if _is_api(request):
        return JsonResponse(error_body("internal_error", "Server error — please retry."), status=500)
    from django.views.defaults import server_error

    return server_error(request)


def json_400(request, exception=None):
    if _is_api(request):
        return JsonResponse(error_body("invalid_request", "Bad request."), status=400)
    from django.views.defaults import bad_request

    return bad_request(request, exception)
