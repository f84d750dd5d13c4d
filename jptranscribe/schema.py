"""Framework-level pieces of the OpenAPI description (drf-spectacular): the error envelope
every endpoint shares, and which endpoints the contract covers. Each app's serializers.py
renders and documents its own answers; the bearer-key scheme is accounts.schema."""

from drf_spectacular.utils import OpenApiResponse
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
        503: "translation_unavailable",
    }
    return {status: OpenApiResponse(Error, description=meaning[status]) for status in statuses}


def public_api_only(endpoints):
    """The contract describes /v1; the browser proxy under /api mirrors it."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/v1/")]
