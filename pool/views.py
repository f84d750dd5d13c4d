import base64

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response

from jptranscribe import schema
from jptranscribe.api import WorkerView, validated
from jptranscribe.errors import InvalidRequest
from pool import services

WORKER_ID = r"^[A-Za-z0-9_.-]{1,64}$"


class WorkerIdInput(serializers.Serializer):
    worker_id = serializers.RegexField(WORKER_ID)


class LeaseInput(WorkerIdInput):
    lease_id = serializers.CharField(max_length=32)


class HeartbeatView(WorkerView):
    @extend_schema_serializer(component_name="Heartbeat")
    class Input(WorkerIdInput):
        name = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
        engine = serializers.CharField(max_length=40, required=False, default="", allow_blank=True)
        model = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
        version = serializers.CharField(max_length=40, required=False, default="", allow_blank=True)
        status = serializers.ChoiceField(["online", "offline"], required=False, default="online")

    @extend_schema(request=Input, responses={200: schema.HeartbeatResult, **schema.errors(400, 401, 403, 429)},
                   summary="Register or refresh a worker", tags=["worker"])
    def post(self, request):
        data = validated(self.Input, request.data)
        worker = services.worker_heartbeat(
            key=request.user, client_id=data["worker_id"], name=data["name"], engine=data["engine"],
            model=data["model"], version=data["version"], going_offline=data["status"] == "offline",
        )
        return Response({
            "worker_id": worker.client_id,
            "accepted": True,
            "online": worker.is_online,
            "ttl_seconds": int(settings.JPT_WORKER_TTL_SECONDS),
            "heartbeat_interval_seconds": settings.JPT_HEARTBEAT_INTERVAL_SECONDS,
            "online_window_seconds": int(settings.JPT_WORKER_ONLINE_SECONDS),
        })


class ClaimView(WorkerView):
    @extend_schema_serializer(component_name="Claim")
    class Input(WorkerIdInput):
        wait_seconds = serializers.FloatField(required=False, default=25, min_value=0)
        inline_audio = serializers.BooleanField(
            required=False, default=False,
            help_text="Put the audio in the answer (audio_base64) when it is small enough, saving a request.")

    @extend_schema(request=Input, responses={200: schema.ClaimResult, **schema.errors(400, 401, 403, 409, 429)},
                   summary="Claim the next job (long-poll)", tags=["worker"])
    def post(self, request):
        data = validated(self.Input, request.data)
        worker = services.worker_for_request(key=request.user, client_id=data["worker_id"])
        job = services.job_claim(worker=worker, wait_seconds=data["wait_seconds"],
                                 inline_audio_up_to=settings.JPT_CLAIM_INLINE_AUDIO_BYTES if data["inline_audio"] else 0)
        if job is None:
            return Response({"job": None})
        return Response({"job": {
            "id": job.id,
            "lease_id": job.lease_id,
            "lease_seconds": int(settings.JPT_LEASE_SECONDS),
            "lease_expires_at": job.lease_expires_at,
            "audio_url": f"/v1/pool/jobs/{job.id}/audio",
            "audio_base64": base64.b64encode(job.inline_audio).decode() if job.inline_audio is not None else None,
            "duration_seconds": float(job.duration_seconds),
            "language": job.language,
            "route": job.route,
        }})


class JobAudioView(WorkerView):
    @extend_schema(parameters=[LeaseInput], responses={
        (200, "application/octet-stream"): OpenApiResponse(OpenApiTypes.BINARY, description="the uploaded audio"),
        **schema.errors(400, 401, 404, 409, 429)}, summary="Download a held job's audio", tags=["worker"])
    def get(self, request, job_id):
        data = validated(LeaseInput, request.query_params)
        audio = services.job_audio(key=request.user, client_id=data["worker_id"], job_id=job_id,
                                   lease_id=data["lease_id"])
        response = HttpResponse(bytes(audio.data), content_type=audio.content_type)
        response["Cache-Control"] = "no-store"
        return response


class JobCompleteView(WorkerView):
    @extend_schema_serializer(component_name="Complete")
    class Input(LeaseInput):
        text = serializers.CharField(allow_blank=True, max_length=100_000, trim_whitespace=False)
        segments = serializers.ListField(child=serializers.DictField(), required=False, default=list,
                                         max_length=10_000)
        model = serializers.CharField(max_length=100, required=False, default="", allow_blank=True)
        processing_seconds = serializers.FloatField(required=False, min_value=0, allow_null=True)

    @extend_schema(request=Input, responses={200: schema.CompleteResult, **schema.errors(400, 401, 404, 409, 429)},
                   summary="Submit a job's result (idempotent)", tags=["worker"])
    def post(self, request, job_id):
        data = validated(self.Input, request.data)
        worker = services.worker_for_request(key=request.user, client_id=data["worker_id"])
        job, credited = services.job_complete(
            worker=worker, job_id=job_id, lease_id=data["lease_id"], text=data["text"].strip(),
            segments=clean_segments(data["segments"]), model=data["model"],
            processing_seconds=data.get("processing_seconds"),
        )
        return Response({"status": "completed", "credited_seconds": credited})


class JobFailView(WorkerView):
    @extend_schema_serializer(component_name="Fail")
    class Input(LeaseInput):
        error = serializers.CharField(max_length=2000, required=False, default="", allow_blank=True)

    @extend_schema(request=Input, responses={200: schema.FailResult, **schema.errors(400, 401, 404, 409, 429)},
                   summary="Report a job failed (idempotent)", tags=["worker"])
    def post(self, request, job_id):
        data = validated(self.Input, request.data)
        worker = services.worker_for_request(key=request.user, client_id=data["worker_id"])
        job = services.job_fail(worker=worker, job_id=job_id, lease_id=data["lease_id"],
                                error=data["error"] or "no reason given")
        return Response({"status": job.status})


def clean_segments(segments):
    """Keep only start/end/text, as numbers and a string: the result is shown to other people."""
    cleaned = []
    for seg in segments:
        try:
            cleaned.append({"start": round(float(seg["start"]), 3), "end": round(float(seg["end"]), 3),
                            "text": str(seg.get("text", ""))[:5000]})
        except (KeyError, TypeError, ValueError):
            raise InvalidRequest("Each segment needs numeric 'start' and 'end' and a 'text'.")
    return cleaned
