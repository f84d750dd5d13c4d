from django.conf import settings
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from jptranscribe import schema
from jptranscribe.api import KeyedView, validated
from jptranscribe.errors import InvalidRequest, NotFound
from jptranscribe.net import client_ip
from transcription import intake, routing, services

SUPPORTED_LANGUAGES = ("ja",)


class TranscribeView(KeyedView):
    """POST /v1/transcribe — route a clip, then wait for its text (or answer 202)."""

    class Input(serializers.Serializer):
        file = serializers.FileField(required=False, allow_empty_file=True)
        url = serializers.CharField(required=False, allow_blank=False, max_length=2048)
        language = serializers.CharField(required=False, default="ja")
        translate = serializers.BooleanField(required=False, default=False)

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            raise InvalidRequest("Chunked uploads are not supported: send the body with a Content-Length.")
        # Before the body is parsed: an oversized upload is refused while it streams in.
        request._request.upload_handlers = [intake.SizeLimitedUploadHandler(request._request)]

    @extend_schema(
        request={"multipart/form-data": schema.TranscribeRequest, "application/json": schema.TranscribeRequest},
        parameters=[OpenApiParameter("Prefer", str, OpenApiParameter.HEADER, required=False,
                                     description="respond-async: answer 202 at once")],
        responses={200: schema.Transcription, 202: schema.Pending,
                   **schema.errors(400, 401, 403, 413, 429, 500)},
        summary="Transcribe audio",
    )
    def post(self, request):
        data = validated(self.Input, request.data)
        if ("file" in data) == ("url" in data):
            raise InvalidRequest("Send exactly one of 'file' (an upload) or 'url'.")
        if data["language"] not in SUPPORTED_LANGUAGES:
            raise InvalidRequest(f"Unsupported language {data['language']!r}; only 'ja' is supported.")

        raw = intake.read_upload(data["file"]) if "file" in data else intake.read_url(data["url"])
        audio = intake.check_audio(raw)
        wants_async = "respond-async" in request.headers.get("Prefer", "").lower()
        if wants_async:
            job = routing.transcription_submit(key=request.user, audio=audio, translate=data["translate"],
                                               ip=client_ip(request))
        else:
            job = services.transcription_submit_and_wait(key=request.user, audio=audio, translate=data["translate"],
                                                         ip=client_ip(request),
                                                         timeout=settings.JPT_TRANSCRIBE_WAIT_SECONDS)
        return job_response(request, job, accepted_headers={"Preference-Applied": "respond-async"}
                            if wants_async else {})


class TranscriptionView(KeyedView):
    """GET /v1/transcriptions/{id} — status and result, for the key that sent the clip only."""

    @extend_schema(responses={200: schema.Transcription, **schema.errors(401, 404, 429)},
                   summary="A transcription's status and result")
    def get(self, request, job_id):
        job = services.transcription_for_owner(key=request.user, job_id=job_id)
        if job is None:
            raise NotFound("No transcription with this id for your key.")
        if job.is_finished and job.status != "completed":
            return Response({**services.pending_body(job, status_url(request, job)),
                             **services.failure_body(job)})
        return job_response(request, job, accepted_status=200)


def status_url(request, job):
    return request.build_absolute_uri(f"/v1/transcriptions/{job.id}")


def job_response(request, job, *, accepted_status=202, accepted_headers=None):
    if job.status == "completed":
        return Response(services.result_body(services.ensure_translation(job)))
    if job.is_finished:
        return Response(services.failure_body(job), status=services.failure_status(job))
    url = status_url(request, job)
    return Response(services.pending_body(job, url), status=accepted_status,
                    headers={"Location": url, **(accepted_headers or {})} if accepted_status == 202 else None)
