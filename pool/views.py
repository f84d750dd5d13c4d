from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from accounts.api import WorkerView
from jptranscribe import schema
from jptranscribe.errors import InvalidRequest
from jptranscribe.serializing import rendered, validated
from pool import services, workers
from pool.serializers import (
    JOB_ID,
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
        job = services.job_claim(
            worker=worker,
            wait_seconds=data["wait_seconds"],
            inline_audio_up_to=settings.JPT_CLAIM_INLINE_AUDIO_BYTES if data["inline_audio"] else 0,
        )
        return Response(rendered(ClaimResult, {"job": job}))


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
        )
        return Response(rendered(CompleteResult, credited))


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
    """Keep only start/end/text, as numbers and a string: the result is shown to other people."""
    cleaned = []
    for seg in segments:
        try:
            cleaned.append(
                {
                    "start": round(float(seg["start"]), 3),
                    "end": round(float(seg["end"]), 3),
                    "text": str(seg.get("text", ""))[:5000],
                }
            )
        except (KeyError, TypeError, ValueError):
            raise InvalidRequest("Each segment needs numeric 'start' and 'end' and a 'text'.")
    return cleaned
