from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.response import Response

from accounts import credits
from accounts import services as accounts
from accounts.api import KeyedView
from jptranscribe import schema
from jptranscribe.errors import InvalidRequest, NotFound, error_body
from jptranscribe.net import client_ip
from jptranscribe.serializing import rendered, validated
from pool.models import Worker
from pool.serializers import JOB_ID
from pool.workers import pool_stats
from transcription import intake, routing, services
from transcription.serializers import (
    SUPPORTED_LANGUAGES,
    Account,
    Pending,
    TranscribeInput,
    TranscribeUpload,
    TranscribeUrl,
    Transcription,
    TranscriptionFailed,
    TranscriptionState,
    job_error,
)


class AccountView(KeyedView):
    """GET /v1/account — what routing would see for this key: own workers, credits, demos left."""

    @extend_schema(responses={200: Account, **schema.errors(401, 429)}, summary="Account and balance")
    def get(self, request):
        key = request.user
        return Response(
            rendered(
                Account,
                {
                    "key": key,
                    "workers_online": Worker.objects.online().filter(key=key).count(),
                    "credits_seconds": credits.credits_balance(key),
                    "demos_left_today": accounts.demos_left_today(client_ip(request)),
                    "pool": pool_stats(),
                },
            )
        )


class TranscribeView(KeyedView):
    """POST /v1/transcribe — route a clip, then wait for its text (or answer 202)."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            raise InvalidRequest("Chunked uploads are not supported: send the body with a Content-Length.")
        # Before the body is parsed: an oversized upload is refused while it streams in.
        request._request.upload_handlers = [intake.SizeLimitedUploadHandler(request._request)]

    @extend_schema(
        # Exactly one of an upload or a URL: each content type carries one.
        request={"multipart/form-data": TranscribeUpload, "application/json": TranscribeUrl},
        parameters=[
            OpenApiParameter(
                "Prefer", str, OpenApiParameter.HEADER, required=False, description="respond-async: answer 202 at once"
            )
        ],
        responses={200: Transcription, 202: Pending, **schema.errors(400, 401, 403, 413, 429, 500)},
        summary="Transcribe audio",
    )
    def post(self, request):
        data = validated(TranscribeInput, request.data)
        if ("file" in data) == ("url" in data):
            raise InvalidRequest("Send exactly one of 'file' (an upload) or 'url'.")
        if data["language"] not in SUPPORTED_LANGUAGES:
            raise InvalidRequest(f"Unsupported language {data['language']!r}; only 'ja' is supported.")

        raw = intake.read_upload(data["file"]) if "file" in data else intake.read_url(data["url"])
        audio = intake.check_audio(raw)
        wants_async = "respond-async" in request.headers.get("Prefer", "").lower()
        if wants_async:
            job = routing.transcription_submit(
                key=request.user, audio=audio, translate=data["translate"], ip=client_ip(request)
            )
        else:
            job = services.transcription_submit_and_wait(
                key=request.user,
                audio=audio,
                translate=data["translate"],
                ip=client_ip(request),
                timeout=settings.JPT_TRANSCRIBE_WAIT_SECONDS,
            )
        return job_response(
            request, job, accepted_headers={"Preference-Applied": "respond-async"} if wants_async else {}
        )


class TranscriptionView(KeyedView):
    """GET /v1/transcriptions/{id} — status and result, for the key that sent the clip only."""

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "job_id",
                str,
                OpenApiParameter.PATH,
                pattern=JOB_ID,
                description="the `id` POST /v1/transcribe answered",
            )
        ],
        responses={200: TranscriptionState, **schema.errors(401, 404, 429)},
        summary="A transcription's status and result",
    )
    def get(self, request, job_id):
        job = services.transcription_for_owner(key=request.user, job_id=job_id)
        if job is None:
            raise NotFound("No transcription with this id for your key.")
        if job.is_finished and job.status != "completed":
            return Response(rendered(TranscriptionFailed, {"job": job, "status_url": status_url(request, job)}))
        return job_response(request, job, accepted_status=200)


def status_url(request, job):
    return request.build_absolute_uri(f"/v1/transcriptions/{job.id}")


def job_response(request, job, *, accepted_status=202, accepted_headers=None):
    if job.status == "completed":
        return Response(rendered(Transcription, services.ensure_translation(job)))
    if job.is_finished:
        error = job_error(job)
        return Response(error_body(error["code"], error["message"]), status=failure_status(job))
    url = status_url(request, job)
    return Response(
        rendered(Pending, {"job": job, "status_url": url}),
        status=accepted_status,
        headers={"Location": url, **(accepted_headers or {})} if accepted_status == 202 else None,
    )


def failure_status(job) -> int:
    return {"worker_required": 403}.get(job.error_code, 500)
