"""The OpenAPI description of the API (drf-spectacular): response shapes, the error
envelope and the bearer-key scheme. Views name these in `extend_schema`."""
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiResponse
from rest_framework import serializers


class BearerKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.auth.BearerKeyAuthentication"
    name = "bearerKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer", "bearerFormat": "jpt_…",
                "description": "An API key from POST /v1/keys, as `Authorization: Bearer jpt_…`."}


class ErrorBody(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class Error(serializers.Serializer):
    error = ErrorBody()


def errors(*statuses):
    """The error envelope for each listed status."""
    meaning = {400: "Bad request (invalid_request, invalid_audio)", 401: "Missing or invalid API key",
               403: "worker_required or worker_banned", 404: "Not found", 409: "worker_not_registered or lease_lost",
               413: "file_too_large or text_too_long", 429: "rate_limited (see Retry-After)",
               500: "internal_error: retry", 503: "translation_unavailable"}
    return {status: OpenApiResponse(Error, description=meaning[status]) for status in statuses}


class KeyCreated(serializers.Serializer):
    key = serializers.CharField(help_text="Shown once; only its hash is stored.")
    key_prefix = serializers.CharField()
    created_at = serializers.DateTimeField()


class PoolFigures(serializers.Serializer):
    workers_online = serializers.IntegerField()
    jobs_queued = serializers.IntegerField()


class Account(serializers.Serializer):
    key_prefix = serializers.CharField()
    worker_online = serializers.BooleanField()
    workers_online = serializers.IntegerField()
    credits_seconds = serializers.FloatField()
    demos_left_today = serializers.IntegerField()
    pool = PoolFigures()


class Backend(serializers.Serializer):
    mode = serializers.CharField()
    pool = PoolFigures()


class TranslationStatus(serializers.Serializer):
    available = serializers.BooleanField()
    model = serializers.CharField(allow_null=True)
    version = serializers.CharField(required=False)


class Health(serializers.Serializer):
    status = serializers.CharField()
    version = serializers.CharField()
    backend = Backend()
    translation = TranslationStatus()


class TranscribeRequest(serializers.Serializer):
    file = serializers.FileField(required=False, help_text="WAV, MP3, M4A, FLAC or OGG; up to 10 MB and 90 s")
    url = serializers.CharField(required=False, help_text="a public https URL to the audio, instead of file")
    language = serializers.CharField(required=False, default="ja")
    translate = serializers.BooleanField(required=False, default=False)


class Segment(serializers.Serializer):
    start = serializers.FloatField()
    end = serializers.FloatField()
    text = serializers.CharField()


class Warning(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class _TranscriptionBasics(serializers.Serializer):
    """What every answer about a transcription carries."""

    id = serializers.CharField()
    duration_seconds = serializers.FloatField()
    processed_by = serializers.ChoiceField(["self", "server_demo", "pool"])
    route_reason = serializers.CharField()
    created_at = serializers.DateTimeField()


class Transcription(_TranscriptionBasics):
    status = serializers.ChoiceField(["queued", "processing", "completed", "failed", "cancelled"])
    language = serializers.CharField()
    text = serializers.CharField()
    translation = serializers.CharField(allow_null=True)
    model = serializers.CharField()
    segments = Segment(many=True)
    warnings = Warning(many=True)
    completed_at = serializers.DateTimeField(allow_null=True)
    error = ErrorBody(required=False, help_text="only when status is failed or cancelled")


class Pending(_TranscriptionBasics):
    status = serializers.ChoiceField(["queued", "processing"])
    status_url = serializers.URLField()


class TranslateResult(serializers.Serializer):
    text = serializers.CharField()
    source = serializers.CharField()
    target = serializers.CharField()
    model = serializers.CharField()


class HeartbeatResult(serializers.Serializer):
    worker_id = serializers.CharField()
    accepted = serializers.BooleanField()
    online = serializers.BooleanField()
    ttl_seconds = serializers.IntegerField()
    heartbeat_interval_seconds = serializers.FloatField()
    online_window_seconds = serializers.IntegerField()


class ClaimedJob(serializers.Serializer):
    id = serializers.CharField()
    lease_id = serializers.CharField()
    lease_seconds = serializers.IntegerField()
    lease_expires_at = serializers.DateTimeField()
    audio_url = serializers.CharField()
    audio_base64 = serializers.CharField(
        allow_null=True, help_text="The audio itself when the claim asked for inline_audio and it is at most "
                                   "1 MiB (server setting); null means: fetch audio_url.")
    duration_seconds = serializers.FloatField()
    language = serializers.CharField()
    route = serializers.ChoiceField(["pool_self", "pool_credit", "server_demo"])


class ClaimResult(serializers.Serializer):
    job = ClaimedJob(allow_null=True)


class CompleteResult(serializers.Serializer):
    status = serializers.CharField()
    credited_seconds = serializers.FloatField()


class FailResult(serializers.Serializer):
    status = serializers.ChoiceField(["queued", "failed"])


def public_api_only(endpoints):
    """The contract describes /v1; the browser proxy under /api mirrors it."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith("/v1/")]
