"""Transcription requests and answers, and the account answer (routing's inputs for a key).

Each class both reads (or renders) its body and documents it in openapi.yaml.
"""

from django.conf import settings
from drf_spectacular.utils import PolymorphicProxySerializer, extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from jptranscribe.errors import error_type, limit_bytes, limit_seconds
from jptranscribe.fields import StrictCharField, UtcDateTimeField
from jptranscribe.schema import ErrorBody
from jptranscribe.serializing import rendered
from pool.serializers import PoolFigures
from transcription.webhooks import webhook_state

SUPPORTED_LANGUAGES = ("ja",)
# The job's status as the API names it: a leased job is "processing".
PUBLIC_STATUS = {
    "queued": "queued",
    "leased": "processing",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "cancelled",
    "checking": "processing",  # its result is held until another worker's agrees
}


# --- requests ---------------------------------------------------------------

FILE_HELP = (
    f"WAV, MP3, M4A, FLAC or OGG; up to {limit_bytes(settings.JPT_MAX_UPLOAD_BYTES)} "
    f"and {limit_seconds(settings.JPT_MAX_CLIP_SECONDS)}"
)


WEBHOOK_URL_HELP = (
    "a public https URL that gets the transcription's end as a signed event (Standard Webhooks: "
    "transcription.completed, .failed or .cancelled, and .corrected if a later check replaces its text); make the "
    "key's signing secret first with "
    "POST /v1/webhook-secret"
)


class TranscribeInput(serializers.Serializer):
    """Reads both content types. The view checks "exactly one of file or url" and the language
    with its own messages. The description names one body per content type (below), so that
    a generated client sends each under its own Content-Type."""

    file = serializers.FileField(required=False, allow_empty_file=True, help_text=FILE_HELP)
    url = StrictCharField(
        required=False, allow_blank=False, max_length=2048, help_text="a public https URL to the audio"
    )
    language = StrictCharField(required=False, default="ja", schema={"enum": list(SUPPORTED_LANGUAGES)})
    translate = serializers.BooleanField(required=False, default=False)
    words = serializers.BooleanField(
        required=False,
        default=False,
        help_text="ask the worker for word timings: each segment of the result then carries `words` "
        "(Vosk always sends them; Whisper takes a little longer)",
    )
    webhook_url = StrictCharField(required=False, allow_blank=False, max_length=2048, help_text=WEBHOOK_URL_HELP)


@extend_schema_serializer(component_name="TranscribeUpload")
class TranscribeUpload(TranscribeInput):
    """multipart/form-data: the audio itself, as `file`. (To name a URL instead, send JSON.)"""

    file = serializers.FileField(allow_empty_file=True, help_text=FILE_HELP)
    url = None  # type: ignore[assignment]  # DRF's way to drop an inherited field; the stubs don't know it


@extend_schema_serializer(component_name="TranscribeUrl")
class TranscribeUrl(TranscribeInput):
    """application/json: a `url` to fetch the audio from (a JSON body carries no upload)."""

    file = None  # type: ignore[assignment]  # DRF's way to drop an inherited field
    url = StrictCharField(allow_blank=False, max_length=2048, help_text="a public https URL to the audio")


# --- answers ----------------------------------------------------------------


class StatusField(serializers.ChoiceField):
    """The job's status as the API names it."""

    def to_representation(self, value):
        return PUBLIC_STATUS[value]


class TimedWord(serializers.Serializer):
    word = serializers.CharField()
    start = serializers.FloatField()
    end = serializers.FloatField()


class Segment(serializers.Serializer):
    """A timed piece of the text. The rest is there when the worker's engine gave it: `words` (the
    segment's timed words; joined without spaces, except between two Latin words, they read as its
    text) and Whisper's statistics for the segment (null where an engine has none)."""

    start = serializers.FloatField()
    end = serializers.FloatField()
    text = serializers.CharField()
    words = TimedWord(many=True, required=False)
    seek = serializers.IntegerField(required=False)
    tokens = serializers.ListField(child=serializers.IntegerField(), required=False)
    temperature = serializers.FloatField(required=False, allow_null=True)
    avg_logprob = serializers.FloatField(required=False, allow_null=True)
    compression_ratio = serializers.FloatField(required=False, allow_null=True)
    no_speech_prob = serializers.FloatField(required=False, allow_null=True)


class Warning(serializers.Serializer):
    code = serializers.CharField(
        help_text="translation_unavailable; engine_warning (the worker's engine did not do all the options asked)"
    )
    message = serializers.CharField()


# Segments and warnings are stored in the shape they are documented in (pool.views.clean_segments
# writes segments, services.ensure_translation warnings) and passed through as stored: a nested
# serializer per item cost about 15 µs an item on every read.
@extend_schema_field(Segment(many=True))
class StoredSegments(serializers.JSONField):
    pass


@extend_schema_field(Warning(many=True))
class StoredWarnings(serializers.JSONField):
    pass


PROCESSED_BY = ["self", "server_demo", "pool"]


class VerificationState(serializers.Serializer):
    """Whether the text was checked against another worker's transcript of the same clip."""

    status = serializers.ChoiceField(
        ["unchecked", "checked", "corrected"],
        source="verification",
        help_text="unchecked: one worker's text (your own worker's, the server's demo, or a trusted "
        "volunteer's not picked for a spot check); checked: workers of different keys agreed; corrected: a "
        "check after delivery outvoted the first text, which was replaced (and your credits refunded)",
    )
    agreeing_workers = serializers.IntegerField(help_text="workers whose transcripts agree with the text")


class WebhookState(serializers.Serializer):
    """How the delivery of this transcription's event to its `webhook_url` stands."""

    status = serializers.ChoiceField(
        ["waiting", "pending", "delivered", "failed", "disabled"],
        help_text="waiting: for the transcription to end; pending: to be sent (again) at next_attempt_at; "
        "delivered: the receiver answered 2xx; failed: every attempt failed (about three days); "
        "disabled: the URL answered 410 Gone",
    )
    attempts = serializers.IntegerField()
    last_status_code = serializers.IntegerField(allow_null=True, help_text="the receiver's last answer")
    next_attempt_at = UtcDateTimeField(allow_null=True)


def _webhook(job) -> dict | None:
    return webhook_state(job.webhook_delivery)


# Rendered from the Job.
class Transcription(serializers.Serializer):
    """A completed transcription."""

    id = serializers.CharField()
    status = StatusField(["completed"])
    language = serializers.CharField()
    text = serializers.CharField()
    translation = serializers.SerializerMethodField()
    duration_seconds = serializers.FloatField()
    processed_by = serializers.ChoiceField(PROCESSED_BY)
    route_reason = serializers.CharField()
    model = serializers.CharField()
    segments = StoredSegments()
    warnings = StoredWarnings()
    created_at = UtcDateTimeField()
    completed_at = UtcDateTimeField(source="finished_at", allow_null=True)
    verification = VerificationState(source="*")
    webhook = serializers.SerializerMethodField()

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_translation(self, job):
        return job.translation if job.translate else None

    @extend_schema_field(WebhookState(allow_null=True, help_text="null: no webhook_url was given"))
    def get_webhook(self, job):
        return _webhook(job)


# Rendered from {"job": Job, "status_url": str}.
class _WithoutText(serializers.Serializer):
    """What an answer about a transcription that has no text (yet) carries."""

    id = serializers.CharField(source="job.id")
    status_url = serializers.URLField()
    duration_seconds = serializers.FloatField(source="job.duration_seconds")
    processed_by = serializers.ChoiceField(PROCESSED_BY, source="job.processed_by")
    route_reason = serializers.CharField(source="job.route_reason")
    created_at = UtcDateTimeField(source="job.created_at")
    webhook = serializers.SerializerMethodField()

    @extend_schema_field(WebhookState(allow_null=True, help_text="null: no webhook_url was given"))
    def get_webhook(self, answer):
        return _webhook(answer["job"])


class Pending(_WithoutText):
    """A transcription still queued or processing: poll `status_url`."""

    status = StatusField(["queued", "processing"], source="job.status")


def job_error(job) -> dict:
    """Why a transcription ended without text, in the error envelope's shape."""
    code = job.error_code or "internal_error"
    message = job.error or "Transcription failed."
    if code == "internal_error" and "retry" not in message.lower():
        message += " Please retry."
    return {"code": code, "message": message, "type": error_type(code), "param": None}


class TranscriptionFailed(_WithoutText):
    """A transcription that failed or was cancelled, and why."""

    status = StatusField(["failed", "cancelled"], source="job.status")
    error = serializers.SerializerMethodField()
    erased_at = UtcDateTimeField(
        source="job.erased_at", allow_null=True, help_text="when what it held of the request was erased (null: not)"
    )

    @extend_schema_field(ErrorBody)
    def get_error(self, answer):
        return job_error(answer["job"])


class TranscriptionErased(_WithoutText):
    """A completed transcription whose results were erased, by its owner (DELETE) or after the
    server's retention period: no text, segments or translation any more, only what it was."""

    status = StatusField(["completed"], source="job.status")
    model = serializers.CharField(source="job.model")
    completed_at = UtcDateTimeField(source="job.finished_at", allow_null=True)
    erased_at = UtcDateTimeField(source="job.erased_at")


class ListInput(serializers.Serializer):
    limit = serializers.IntegerField(required=False, default=20, min_value=1, max_value=100)
    after = serializers.RegexField(
        r"^tx_[0-9a-f]{20}$",
        required=False,
        help_text="the last `id` of the page before: the next page starts after it",
    )
    status = serializers.ChoiceField(list(dict.fromkeys(PUBLIC_STATUS.values())), required=False)
    include_text = serializers.BooleanField(
        required=False,
        default=False,
        help_text="add each completed one's `text` and stored `translation` (unless they were erased)",
    )


# Rendered from a Job, with `status_url` and `include_text` in the context.
class ListedTranscription(serializers.Serializer):
    """One of the key's transcriptions, without its text unless asked (`include_text=true`)."""

    id = serializers.CharField()
    status = StatusField(list(dict.fromkeys(PUBLIC_STATUS.values())))
    duration_seconds = serializers.FloatField()
    processed_by = serializers.ChoiceField(PROCESSED_BY)
    model = serializers.CharField()
    created_at = UtcDateTimeField()
    completed_at = UtcDateTimeField(source="finished_at", allow_null=True)
    status_url = serializers.URLField()
    erased_at = UtcDateTimeField(
        allow_null=True, help_text="when its results were erased (then it has no `text` even when asked)"
    )
    text = serializers.CharField(required=False)
    translation = serializers.CharField(required=False, allow_null=True)
    webhook = WebhookState(allow_null=True, help_text="null: no webhook_url was given")

    def to_representation(self, instance):
        answer = super().to_representation(instance)
        if "text" not in instance:  # DRF renders a missing nullable field as null: not asked, not there
            answer.pop("translation", None)
        return answer


class TranscriptionList(serializers.Serializer):
    data = ListedTranscription(many=True)  # type: ignore[assignment]  # a field: DRF takes it off the class
    has_more = serializers.BooleanField()
    next_after = serializers.CharField(allow_null=True, help_text="pass as `after` for the next page (null: none)")


def transcription_answer(job, status_url: str) -> dict:
    """A transcription as GET /v1/transcriptions/{id} answers it in JSON (a completed one as
    stored: translate it first, if asked, with services.ensure_translation)."""
    if job.status == "completed" and job.erased_at is not None:
        return rendered(TranscriptionErased, {"job": job, "status_url": status_url})
    if job.status == "completed":
        return rendered(Transcription, job)
    if job.is_finished:
        return rendered(TranscriptionFailed, {"job": job, "status_url": status_url})
    return rendered(Pending, {"job": job, "status_url": status_url})


TranscriptionState = PolymorphicProxySerializer(
    component_name="TranscriptionState",
    serializers=[Transcription, Pending, TranscriptionFailed, TranscriptionErased],
    resource_type_field_name=None,
)


# Routing's inputs for this key, rendered from {"key", "workers_online", "credits_seconds",
# "demos_left_today", "pool"}.
class Account(serializers.Serializer):
    key_prefix = serializers.CharField(source="key.prefix")
    worker_online = serializers.SerializerMethodField()
    workers_online = serializers.IntegerField()
    credits_seconds = serializers.FloatField(help_text="spendable pool credits")
    credits_pending_seconds = serializers.FloatField(
        help_text="earned by your workers and not spendable yet: a result counts once another key's worker "
        "agreed with it, or 24 h after it with no failed check"
    )
    demos_left_today = serializers.IntegerField()
    pool = PoolFigures()

    def get_worker_online(self, account) -> bool:
        return account["workers_online"] > 0
