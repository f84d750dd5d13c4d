"""The worker protocol's requests and answers, and the pool's public figures.

Each class both reads (or renders) its body and documents it in openapi.yaml. Requests are
JSON (the worker client sends JSON); the server also takes form bodies, as DRF does, but the
description names one content type per body so that generated clients send it.
"""

import base64

from django.conf import settings
from drf_spectacular.utils import extend_schema_field, extend_schema_serializer
from rest_framework import serializers

from jptranscribe.fields import (
    AnswerValue,
    StrictBooleanField,
    StrictCharField,
    StrictFloatField,
    StrictIntegerField,
    StrictRegexField,
    UtcDateTimeField,
)
from pool import policy
from pool.models import JOB_ID_PATTERN, Job

# Chosen by the worker, unique within its key.
WORKER_ID = r"^[A-Za-z0-9_.-]{1,64}\Z"
# Made by the server: job ids by pool.models.new_job_id, lease ids by new_lease_id (token_urlsafe(16)).
# An id of another shape names nothing: the lookup answers 404 or 409 lease_lost, as for any unknown id.
JOB_ID = JOB_ID_PATTERN
LEASE_ID = r"^[A-Za-z0-9_-]{22}$"
# Chosen by the worker process when it starts (a random UUID's hex, say).
SESSION_ID = r"^[A-Za-z0-9_-]{8,64}\Z"
SESSION_ID_RULE = "8 to 64 letters, digits, '_' or '-'"


class PoolFigures(serializers.Serializer):
    workers_online = serializers.IntegerField()
    jobs_queued = serializers.IntegerField()


# --- requests ---------------------------------------------------------------


class WorkerIdInput(serializers.Serializer):
    worker_id = StrictRegexField(WORKER_ID, trim_whitespace=False)


class LeaseInput(WorkerIdInput):
    lease_id = StrictCharField(max_length=32, schema={"pattern": LEASE_ID})


@extend_schema_serializer(component_name="Heartbeat")
class HeartbeatInput(WorkerIdInput):
    name = StrictCharField(max_length=100, required=False, default="", allow_blank=True)
    engine = StrictCharField(max_length=40, required=False, default="", allow_blank=True)
    model = StrictCharField(max_length=100, required=False, default="", allow_blank=True)
    version = StrictCharField(max_length=40, required=False, default="", allow_blank=True)
    status = serializers.ChoiceField(["online", "offline"], required=False, default="online")
    session_id = StrictRegexField(
        SESSION_ID,
        required=False,
        help_text=f"{SESSION_ID_RULE} (a random UUID's hex, as the worker client sends), new each time the "
        "worker process starts: jobs held under an earlier session of this worker_id go back to the queue at "
        "once (that process is gone).",
        min_length=8,
        max_length=64,
        error_messages=dict.fromkeys(
            ("invalid", "min_length", "max_length", "blank"),
            f"must be {SESSION_ID_RULE}, new each time the worker process starts.",
        ),
    )
    leases = serializers.ListField(
        child=StrictRegexField(LEASE_ID),
        required=False,
        default=list,
        max_length=64,
        help_text="The lease_id of every job this worker is still working on: only these are renewed; "
        "a lease not named here runs out.",
    )
    max_jobs = StrictIntegerField(
        required=False,
        default=1,
        min_value=1,
        max_value=64,
        help_text="How many jobs this worker runs at once; the server allows at most "
        "JPT_WORKER_MAX_JOBS (4 unless its operator changed it), and a claim beyond it is refused.",
    )


@extend_schema_serializer(component_name="Claim")
class ClaimInput(WorkerIdInput):
    wait_seconds = StrictFloatField(
        required=False,
        default=25,
        min_value=0,
        help_text="How long to wait for a job before answering none; the server waits at most 55 s "
        "(JPT_CLAIM_WAIT_MAX_SECONDS). The worker client asks 50.",
    )
    inline_audio = StrictBooleanField(
        required=False,
        default=False,
        help_text="Put the audio in the answer (audio_base64) when it is small enough, saving a request.",
    )


# What a completion's segment may carry (pool.views.clean_segments keeps to these).
SEGMENT_TEXT_CHARS = 5_000  # longer is cut
WORD_CHARS = 100  # longer is cut
WORDS_PER_SEGMENT = 2_000
TOKENS_PER_SEGMENT = 1_000  # Whisper decodes at most 448 tokens a window


class SubmittedWord(serializers.Serializer):
    """One timed word of its segment: a segment's words, joined without spaces (except between two
    Latin words), read as its text. Times are kept inside the segment's."""

    word = serializers.CharField(
        allow_blank=True, help_text="trimmed and cut to 100 characters; a blank one is dropped"
    )
    start = serializers.FloatField()
    end = serializers.FloatField()


class SubmittedSegment(serializers.Serializer):
    """One timed piece of the text: `start` and `end` in seconds, and optionally its timed words and
    Whisper's statistics for it (an engine without one sends null, or leaves it out). Other keys
    are dropped."""

    start = serializers.FloatField()
    end = serializers.FloatField()
    text = serializers.CharField(
        allow_blank=True,
        help_text='"" for a segment without words; cut to 5,000 characters. The segments\' texts together hold '
        "no more than the completion's text may (40 characters per second of the clip plus 200).",
    )
    words = serializers.ListField(child=SubmittedWord(), required=False, max_length=WORDS_PER_SEGMENT)
    seek = serializers.IntegerField(
        required=False, min_value=0, max_value=2**31 - 1, help_text="Whisper: where its window began, in 10 ms frames"
    )
    tokens = serializers.ListField(
        child=serializers.IntegerField(min_value=0, max_value=2**31 - 1), required=False, max_length=TOKENS_PER_SEGMENT
    )
    temperature = serializers.FloatField(required=False, allow_null=True, help_text="the temperature it was decoded at")
    avg_logprob = serializers.FloatField(required=False, allow_null=True)
    compression_ratio = serializers.FloatField(required=False, allow_null=True)
    no_speech_prob = serializers.FloatField(required=False, allow_null=True)


@extend_schema_field(SubmittedSegment(many=True))
class SegmentsField(serializers.ListField):
    """Checked by pool.views.clean_segments, which is cheaper per segment than a nested serializer."""


@extend_schema_serializer(component_name="Complete")
class CompleteInput(LeaseInput):
    text = StrictCharField(allow_blank=True, max_length=100_000, trim_whitespace=False)
    segments = SegmentsField(child=serializers.DictField(), required=False, default=list, max_length=10_000)
    model = StrictCharField(max_length=100, required=False, default="", allow_blank=True)
    processing_seconds = StrictFloatField(required=False, min_value=0, allow_null=True)
    warnings = serializers.ListField(
        child=StrictCharField(max_length=500, allow_blank=True),
        required=False,
        default=list,
        max_length=10,
        help_text='What the engine did not do of what the job\'s options asked ("prompt ignored: …"): kept on '
        "the transcription as warnings with code engine_warning.",
    )
    claim_next = StrictBooleanField(
        required=False,
        default=False,
        help_text="Also hand this worker its next job in the answer (next_job), if one is waiting now (or, with "
        "wait_seconds, arrives within them): a busy worker saves a claim per job, an idle one the claim after its "
        "last job. Never refuses; with none, next_job is null and the worker claims as usual. The worker client "
        "asks it on a result's first delivery, not on a retry.",
    )
    wait_seconds = StrictFloatField(
        required=False,
        default=0,
        min_value=0,
        help_text="With claim_next: how long to wait for a next job when none is waiting, as a claim's "
        "wait_seconds (at most 55 s, JPT_CLAIM_WAIT_MAX_SECONDS); the result is stored before the wait. "
        "0: answer at once.",
    )
    inline_audio = StrictBooleanField(
        required=False, default=False, help_text="As in the claim, for next_job: its audio in the answer when small."
    )


@extend_schema_serializer(component_name="Fail")
class FailInput(LeaseInput):
    error = StrictCharField(max_length=2000, required=False, default="", allow_blank=True)


# --- answers ----------------------------------------------------------------


# Rendered from pool.services.Heartbeat; the timings are the server's settings.
class HeartbeatResult(serializers.Serializer):
    worker_id = serializers.CharField(source="worker.client_id")
    accepted = AnswerValue(True, of_type=bool)
    online = serializers.BooleanField(source="worker.is_online")
    max_jobs = serializers.IntegerField(source="worker.max_jobs", help_text="as many jobs as it may hold at once")
    leases_renewed = serializers.ListField(child=serializers.CharField(), source="renewed")
    leases_lost = serializers.ListField(
        child=serializers.CharField(),
        source="lost",
        help_text="leases named in the heartbeat that this worker no longer holds: stop working on those jobs",
    )
    lease_max_seconds = AnswerValue(
        lambda: int(settings.JPT_LEASE_MAX_SECONDS), of_type=int, help_text="no lease lasts longer than this"
    )
    ttl_seconds = AnswerValue(lambda: int(settings.JPT_WORKER_TTL_SECONDS), of_type=int)
    heartbeat_interval_seconds = AnswerValue(lambda: settings.JPT_HEARTBEAT_INTERVAL_SECONDS, of_type=float)
    online_window_seconds = AnswerValue(lambda: int(settings.JPT_WORKER_ONLINE_SECONDS), of_type=int)
    claims_renew_registration = AnswerValue(
        True,
        of_type=bool,
        help_text="every pool call (a claim too) keeps the worker registered and online as a heartbeat does: "
        "a worker holding no job, whose claims follow each other, need not send heartbeats",
    )


class JobOptions(serializers.Serializer):
    prompt = serializers.CharField(allow_null=True)
    temperature = serializers.FloatField(allow_null=True)
    word_timestamps = serializers.BooleanField()


@extend_schema_field(JobOptions)
class StoredOptions(serializers.Field):
    """The job's options with every key present (pool.policy.job_options): no nested serializer
    on the claim's hot path."""

    def to_representation(self, value: dict) -> dict:
        return policy.job_options(value)


# Rendered from the claimed Job.
class ClaimedJob(serializers.Serializer):
    id = serializers.CharField()
    lease_id = serializers.CharField()
    lease_seconds = AnswerValue(lambda: int(settings.JPT_LEASE_SECONDS), of_type=int)
    lease_expires_at = UtcDateTimeField()
    lease_hard_expires_at = UtcDateTimeField(help_text="heartbeats renew the lease up to this time, no later")
    audio_url = serializers.SerializerMethodField(
        help_text="The clip's path on this server: GET it with the worker's key and the query parameters "
        "worker_id and lease_id (the lease in this answer), e.g. /v1/pool/jobs/{id}/audio?worker_id=w1&lease_id=…"
    )
    audio_base64 = serializers.SerializerMethodField(
        help_text="The audio itself when the claim asked for inline_audio and it is at most "
        "1 MiB (server setting); null means: fetch audio_url."
    )
    duration_seconds = serializers.FloatField()
    language = serializers.CharField()
    route = serializers.ChoiceField(["pool_self", "pool_credit", "server_demo"])
    options = StoredOptions(
        help_text="The caller's transcription options, for the engine: a prompt (text the speech is likely "
        "to resemble), a temperature instead of the engine's default (null: the default), and whether to "
        "time each word. An engine that cannot do one says so in the completion's warnings.",
    )

    def to_representation(self, instance: Job) -> dict:
        answer = super().to_representation(instance)
        # A check copy looks like any pool job: a worker that could tell would answer checks honestly
        # and the jobs it is paid for with junk.
        if answer["route"] == Job.Route.POOL_CHECK:
            answer["route"] = Job.Route.POOL_CREDIT
        return answer

    def get_audio_url(self, job: Job) -> str:
        return f"/v1/pool/jobs/{job.id}/audio"

    @extend_schema_field(serializers.CharField(allow_null=True))
    def get_audio_base64(self, job: Job) -> str | None:
        return base64.b64encode(job.inline_audio).decode() if job.inline_audio is not None else None


# Rendered from {"job": the claimed Job, or None}.
class ClaimResult(serializers.Serializer):
    job = ClaimedJob(allow_null=True)


# Rendered from {"credited_seconds": …, "next_job": …}.
class CompleteResult(serializers.Serializer):
    status = AnswerValue("completed", of_type=str)
    credited_seconds = serializers.FloatField()
    next_job = ClaimedJob(
        allow_null=True, help_text="The worker's next job when the completion asked claim_next and one was waiting."
    )


# Rendered from the Job after the failure: back in the queue, or failed for good.
class FailResult(serializers.Serializer):
    status = serializers.ChoiceField(["queued", "failed"])
