import math

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from accounts.api import WorkerView
from jptranscribe import schema, waiting
from jptranscribe.errors import InvalidRequest
from jptranscribe.serializing import rendered, validated
from pool import services, workers
from pool.serializers import (
    JOB_ID,
    SEGMENT_TEXT_CHARS,
    TOKENS_PER_SEGMENT,
    WORD_CHARS,
    WORDS_PER_SEGMENT,
    ClaimInput,
    ClaimResult,
    CompleteInput,
    CompleteResult,
    FailInput,
    FailResult,
    HeartbeatInput,
    HeartbeatResult,
    LeaseInput,
)

JOB_ID_PARAMETER = OpenApiParameter(
    "job_id", str, OpenApiParameter.PATH, pattern=JOB_ID, description="as in the claim's `job.id`"
)


class HeartbeatView(WorkerView):
    @extend_schema(
        request={"application/json": HeartbeatInput},
        responses={200: HeartbeatResult, **schema.errors(400, 401, 403, 429)},
        summary="Register or refresh a worker",
        tags=["worker"],
    )
    def post(self, request):
        data = validated(HeartbeatInput, request.data)
        beat = services.worker_heartbeat(
            key=request.user,
            client_id=data["worker_id"],
            name=data["name"],
            engine=data["engine"],
            model=data["model"],
            version=data["version"],
            going_offline=data["status"] == "offline",
            session_id=data.get("session_id"),
            holding=data["leases"],
            max_jobs=data["max_jobs"],
        )
        return Response(rendered(HeartbeatResult, beat))


class ClaimView(WorkerView):
    @extend_schema(
        request={"application/json": ClaimInput},
        responses={200: ClaimResult, **schema.errors(400, 401, 403, 409, 429)},
        summary="Claim the next job (long-poll)",
        description="409 `worker_busy` when the worker already holds `max_jobs` jobs; 429 when the key "
        "has JPT_CLAIMS_WAITING_PER_KEY claims waiting already.",
        tags=["worker"],
    )
    def post(self, request):
        data = validated(ClaimInput, request.data)
        worker = workers.worker_for_request(key=request.user, client_id=data["worker_id"])
        steps = services.job_claim_steps(
            worker=worker,
            wait_seconds=data["wait_seconds"],
            inline_audio_up_to=settings.JPT_CLAIM_INLINE_AUDIO_BYTES if data["inline_audio"] else 0,
            queued_seconds=waiting.queued_seconds(request),
        )
        return waiting.answer(request, steps, lambda job: Response(rendered(ClaimResult, {"job": job})))


class JobAudioView(WorkerView):
    @extend_schema(
        parameters=[JOB_ID_PARAMETER, LeaseInput],
        responses={
            (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="the uploaded audio"),
            **schema.errors(400, 401, 404, 409, 429),
        },
        summary="Download a held job's audio",
        tags=["worker"],
    )
    def get(self, request, job_id):
        data = validated(LeaseInput, request.query_params)
        audio = services.job_audio(
            key=request.user, client_id=data["worker_id"], job_id=job_id, lease_id=data["lease_id"]
        )
        response = HttpResponse(bytes(audio.data), content_type=audio.content_type)
        response["Cache-Control"] = "no-store"
        return response


def held_job_call(body, answer, summary: str):
    """The description of a call about a job the worker holds (by id in the path, with its lease)."""
    return extend_schema(
        request={"application/json": body},
        parameters=[JOB_ID_PARAMETER],
        summary=summary,
        responses={200: answer, **schema.errors(400, 401, 404, 409, 429)},
        tags=["worker"],
    )


class JobCompleteView(WorkerView):
    @held_job_call(CompleteInput, CompleteResult, "Submit a job's result (idempotent)")
    def post(self, request, job_id):
        data = validated(CompleteInput, request.data)
        worker = workers.worker_for_request(key=request.user, client_id=data["worker_id"])
        _job, credited = services.job_complete(
            worker=worker,
            job_id=job_id,
            lease_id=data["lease_id"],
            text=data["text"].strip(),
            segments=clean_segments(data["segments"]),
            model=data["model"],
            processing_seconds=data.get("processing_seconds"),
            warnings=[w.strip() for w in data["warnings"] if w.strip()],
        )

        def answer(next_job):
            return Response(rendered(CompleteResult, {"credited_seconds": credited, "next_job": next_job}))

        if not data["claim_next"]:
            return answer(None)
        steps = services.job_claim_next_steps(
            worker=worker,
            wait_seconds=data["wait_seconds"],
            inline_audio_up_to=settings.JPT_CLAIM_INLINE_AUDIO_BYTES if data["inline_audio"] else 0,
            queued_seconds=waiting.queued_seconds(request),
        )
        return waiting.answer(request, steps, answer)


class JobFailView(WorkerView):
    @held_job_call(FailInput, FailResult, "Report a job failed (idempotent)")
    def post(self, request, job_id):
        data = validated(FailInput, request.data)
        worker = workers.worker_for_request(key=request.user, client_id=data["worker_id"])
        job = services.job_fail(
            worker=worker, job_id=job_id, lease_id=data["lease_id"], error=data["error"] or "no reason given"
        )
        return Response(rendered(FailResult, job))


def clean_segments(segments):
    """Keep what a segment may carry (`SubmittedSegment`) as numbers, integers and strings, and drop
    the rest: the result is shown to other people. A malformed value is refused, named."""
    return [_clean_segment(seg, f"segments.{i}") for i, seg in enumerate(segments)]


STATISTICS = ("temperature", "avg_logprob", "compression_ratio", "no_speech_prob")


def _clean_segment(seg, at):
    start, end = _seconds(seg, "start", at), _seconds(seg, "end", at)
    text = seg.get("text")
    if not isinstance(text, str):  # required: a segment is a piece of the text ("" for one with no words)
        _refuse(f"{at}.text", "a string (required; empty for a segment without words)")
    cleaned = {"start": start, "end": end, "text": text[:SEGMENT_TEXT_CHARS]}
    if "seek" in seg:
        cleaned["seek"] = _integer(seg["seek"], f"{at}.seek")
    if "tokens" in seg:
        tokens = seg["tokens"]
        if not isinstance(tokens, list) or len(tokens) > TOKENS_PER_SEGMENT:
            _refuse(f"{at}.tokens", f"a list of at most {TOKENS_PER_SEGMENT:,} integers")
        cleaned["tokens"] = [_integer(token, f"{at}.tokens.{i}") for i, token in enumerate(tokens)]
    for name in STATISTICS:
        if name in seg:
            cleaned[name] = None if seg[name] is None else _number(seg[name], f"{at}.{name}")
    if "words" in seg:
        cleaned["words"] = _clean_words(seg["words"], f"{at}.words")
    return cleaned


def _clean_words(words, at):
    if not isinstance(words, list) or len(words) > WORDS_PER_SEGMENT:
        _refuse(at, f"a list of at most {WORDS_PER_SEGMENT:,} words")
    cleaned = []
    for i, word in enumerate(words):
        if not isinstance(word, dict) or not isinstance(word.get("word"), str):
            _refuse(f"{at}.{i}", 'an object with a string "word" and numbers "start" and "end"')
        text = word["word"].strip()[:WORD_CHARS]
        start, end = _seconds(word, "start", f"{at}.{i}"), _seconds(word, "end", f"{at}.{i}")
        if text:  # a word of white space only is no word
            cleaned.append({"word": text, "start": start, "end": end})
    return cleaned


def _seconds(obj, name, at):
    return round(_number(obj.get(name), f"{at}.{name}"), 3)


def _number(value, param):
    """A JSON number, finite (one too big for a float reads as infinity, which JSON cannot store)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _refuse(param, "a number")
    return float(value)


def _integer(value, param):
    """A JSON integer, of the size a token id or a frame count has."""
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
        _refuse(param, "an integer from 0 to 2³¹ − 1")
    return value


def _refuse(param, wanted):
    raise InvalidRequest(f"{param}: must be {wanted}.", param=param)
