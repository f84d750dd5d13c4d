"""Framework-level pieces of the OpenAPI description (drf-spectacular): the error envelope
every endpoint shares, and which endpoints the contract covers. Each app's serializers.py
renders and documents its own answers; the bearer-key scheme is accounts.schema."""

from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse
from rest_framework import serializers


class ErrorBody(serializers.Serializer):
    code = serializers.CharField(help_text="what went wrong, as a stable word (the table in the README)")
    message = serializers.CharField(help_text="what to do about it, for people")
    type = serializers.CharField(
        help_text="the kind of error as OpenAI's API names it: invalid_request_error, authentication_error, "
        "permission_error, not_found_error, rate_limit_error, server_error or service_unavailable_error"
    )
    param = serializers.CharField(allow_null=True, help_text="the request field at fault, when one is")


# The envelope of every error, rendered from {"code", "message", "type", "param"}.
class Error(serializers.Serializer):
    error = ErrorBody(source="*")


def errors(*statuses):
    """The error envelope for each listed status."""
    meaning = {
        400: "Bad request (invalid_request, invalid_audio)",
        401: "Missing or invalid API key",
        403: "worker_required or worker_banned",
        404: "Not found",
        409: "worker_not_registered or lease_lost",
        413: "file_too_large or text_too_long",
        429: "rate_limited (see Retry-After)",
        500: "internal_error: retry",
        503: "translation_unavailable, or service_unavailable (see Retry-After)",
    }
    return {status: OpenApiResponse(Error, description=meaning[status]) for status in statuses}


# The Idempotency-Key's value, as accounts.idempotency.parse_key takes it: a Structured Field
# string ("…", with \" and \\ escaped) or a bare value, 1 to 255 printable ASCII characters;
# space or tab around it is not part of it.
IDEMPOTENCY_KEY = r'^[ \t]*(?:"(?:[ !#-\[\]-~]|\\["\\]){1,255}"|[!#-~](?:[ -~]{0,253}[!-~])?)[ \t]*$'


def idempotency_headers(*answered: int) -> list[OpenApiParameter]:
    """The Idempotency-Key request header (accounts.idempotency), and the mark a replayed answer carries."""
    return [
        OpenApiParameter(
            "Idempotency-Key",
            str,
            OpenApiParameter.HEADER,
            required=False,
            pattern=IDEMPOTENCY_KEY,
            description="Makes a retry safe: the same key with the same request within "
            f"{settings.JPT_IDEMPOTENCY_KEEP_HOURS:g} h returns the first "
            "answer (or, for a transcription, attaches to its job) and runs, charges and spends nothing again. "
            'A Structured Field string ("…") or the bare value, 1 to 255 printable ASCII characters (a UUID is '
            "best); per API key (per address for key minting).",
        ),
        OpenApiParameter(
            "Idempotent-Replayed",
            str,
            OpenApiParameter.HEADER,
            response=list(answered),
            required=False,
            enum=["true"],
            description="`true` on an answer to a retry with an earlier request's Idempotency-Key",
        ),
    ]


def idempotency_errors() -> dict:
    """What a request with an Idempotency-Key may be refused with, beyond the endpoint's own refusals."""
    return {
        409: OpenApiResponse(
            Error, description="idempotency_conflict: the first request with this Idempotency-Key is still running"
        ),
        422: OpenApiResponse(
            Error, description="idempotency_key_reused: this Idempotency-Key was sent with a different request"
        ),
    }


def public_api_only(endpoints):
    """The contract describes /v1; the browser proxy under /api mirrors it."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/v1/")]
