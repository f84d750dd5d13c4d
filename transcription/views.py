from django.conf import settings
from django.http import HttpResponse
from django.utils.cache import patch_vary_headers
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema
from rest_framework.response import Response

from accounts import idempotency
from accounts import services as accounts
from accounts.api import KeyedView
from jptranscribe import schema, waiting
from jptranscribe.errors import InvalidRequest, NotFound, error_body
from jptranscribe.net import client_ip
from jptranscribe.schema import Error
from jptranscribe.serializing import rendered, validated
from pool.serializers import JOB_ID
from pool.workers import key_workers_online, pool_stats
from transcription import intake, services, subtitles, webhooks
from transcription.serializers import (
    PUBLIC_STATUS,
    SUPPORTED_LANGUAGES,
    Account,
    ListInput,
    Pending,
    TranscribeInput,
    TranscribeUpload,
    TranscribeUrl,
    Transcription,
    TranscriptionErased,
    TranscriptionFailed,
    TranscriptionList,
    TranscriptionState,
    job_error,
)


class AccountView(KeyedView):
    """GET /v1/account — what routing would see for this key: own workers, credits, demos left."""

    @extend_schema(responses={200: Account, **schema.errors(401, 429)}, summary="Account and balance")
    def get(self, request):
        key = request.user
        figures = accounts.account_figures(key=key, ip=client_ip(request))
        return Response(
            rendered(
                Account,
                {
                    "key": key,
                    "workers_online": key_workers_online(key),
                    "credits_seconds": figures.credits_seconds,
                    "credits_pending_seconds": figures.credits_pending_seconds,
                    "demos_left_today": figures.demos_left_today,
                    "pool": pool_stats(),
                },
            )
        )


# A waiting call whose transcription was cancelled meanwhile (its owner's DELETE, an operator) answers this.
CANCELLED_WHILE_WAITING = {
    409: OpenApiResponse(
        Error,
        description="cancelled: its owner (DELETE /v1/transcriptions/{id}) or an operator cancelled it while this "
        "call waited",
    )
}


class UploadView(KeyedView):
    """An endpoint that takes an audio upload: an oversized one is refused while it streams in."""

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        if "chunked" in request.headers.get("Transfer-Encoding", "").lower():
            raise InvalidRequest("Chunked uploads are not supported: send the body with a Content-Length.")
        # Before the body is parsed: an oversized upload is refused while it streams in.
        request._request.upload_handlers = [intake.SizeLimitedUploadHandler(request._request)]


class TranscribeView(UploadView):
    """POST /v1/transcribe — route a clip, then wait for its text (or answer 202)."""

    @extend_schema(
        # Exactly one of an upload or a URL: each content type carries one.
        request={"multipart/form-data": TranscribeUpload, "application/json": TranscribeUrl},
        parameters=[
            OpenApiParameter(
                "Prefer", str, OpenApiParameter.HEADER, required=False, description="respond-async: answer 202 at once"
            ),
            *schema.idempotency_headers(200, 202),
        ],
        responses={
            200: Transcription,
            202: Pending,
            **schema.errors(400, 401, 403, 413, 429, 500),
            **schema.idempotency_errors(),
            **CANCELLED_WHILE_WAITING,
        },
        summary="Transcribe audio",
    )
    def post(self, request):
        data = validated(TranscribeInput, request.data)
        if ("file" in data) == ("url" in data):
            raise InvalidRequest("Send exactly one of 'file' (an upload) or 'url'.", param="file")
        if data["language"] not in SUPPORTED_LANGUAGES:
            raise InvalidRequest(
                f"Unsupported language {data['language']!r}; only 'ja' is supported.", param="language"
            )

        wants_async = "respond-async" in request.headers.get("Prefer", "").lower()
        webhook = webhook_request(request, data)

        def answer(outcome):
            job, replayed = outcome
            if webhook is not None:
                webhooks.with_webhook_state([job])
            response = job_response(
                request, job, accepted_headers={"Preference-Applied": "respond-async"} if wants_async else {}
            )
            return idempotency.mark_replayed(response) if replayed else response

        steps = services.transcription_submit_once(
            call=idempotency.idempotent_call(request, fields=data),
            key=request.user,
            ip=client_ip(request),
            read_audio=lambda: intake.read_checked(data),
            translate=data["translate"],
            options={"word_timestamps": True} if data["words"] else None,
            timeout=None if wants_async else settings.JPT_TRANSCRIBE_WAIT_SECONDS,
            webhook=webhook,
        )
        return waiting.answer(request, steps, answer)


# What GET /v1/transcriptions/{id} answers in: `?format=` or the Accept header's media type.
RESULT_FORMATS = {
    "json": "application/json",
    "srt": "application/x-subrip",
    "vtt": "text/vtt",
    "txt": "text/plain",
}


class TranscriptionListView(KeyedView):
    """GET /v1/transcriptions — the key's transcriptions, newest first, a page at a time."""

    @extend_schema(
        parameters=[ListInput],
        responses={200: TranscriptionList, **schema.errors(400, 401, 404, 429)},
        summary="Your transcriptions",
        operation_id="transcriptions_list",
    )
    def get(self, request):
        for name in ListInput().fields:  # a form reader takes `?status=` for no status at all
            if request.query_params.get(name) == "":
                raise InvalidRequest(f"'{name}' is empty: leave it out, or give it a value.", param=name)
        data = validated(ListInput, request.query_params)
        jobs, has_more = services.transcriptions_of(
            key=request.user,
            limit=data["limit"],
            after=data.get("after"),
            statuses=[i for i, public in PUBLIC_STATUS.items() if public == data["status"]]
            if "status" in data
            else None,
        )
        listed = []
        for job in jobs:
            item = {
                "id": job.id,
                "status": job.status,
                "duration_seconds": job.duration_seconds,
                "processed_by": job.processed_by,
                "model": job.model,
                "created_at": job.created_at,
                "finished_at": job.finished_at,
                "status_url": status_url(request, job),
                "erased_at": job.erased_at,
                "webhook": webhooks.webhook_state(job.webhook_delivery),
            }
            if data["include_text"] and job.status == "completed" and job.erased_at is None:
                item.update(text=job.text, translation=job.translation if job.translate else None)
            listed.append(item)
        next_after = jobs[-1].id if has_more else None
        return Response(rendered(TranscriptionList, {"data": listed, "has_more": has_more, "next_after": next_after}))


JOB_ID_PARAMETER = OpenApiParameter(
    "job_id", str, OpenApiParameter.PATH, pattern=JOB_ID, description="the `id` POST /v1/transcribe answered"
)


class TranscriptionView(KeyedView):
    """GET /v1/transcriptions/{id} — status and result, for the key that sent the clip only."""

    def perform_content_negotiation(self, request, force=False):
        # The JSON renderer for everything, errors included: the subtitle formats are answered
        # as plain HttpResponses by get(), so `Accept: text/vtt` (or DRF's own `?format=`) must
        # not be refused with a 406 before the view runs.
        return super().perform_content_negotiation(request, force=True)

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        patch_vary_headers(response, ["Accept"])
        return response

    @extend_schema(
        parameters=[
            JOB_ID_PARAMETER,
            OpenApiParameter(
                "format",
                str,
                OpenApiParameter.QUERY,
                required=False,
                enum=list(RESULT_FORMATS),
                description="json (the default): the status and result; srt, vtt: Japanese subtitles of a "
                "completed transcription; txt: its text. Instead of this, the Accept header may name the "
                "media type (application/x-subrip, text/vtt, text/plain); `format` wins.",
            ),
            OpenApiParameter(
                "Content-Disposition",
                str,
                OpenApiParameter.HEADER,
                response=[200],
                required=False,
                description='srt, vtt and txt only: inline; filename="<id>.<format>"',
            ),
        ],
        responses={
            (200, "application/json"): OpenApiResponse(
                TranscriptionState,
                description="The status and, once completed, the result (json); or, for format srt, vtt or "
                "txt, the completed transcription's subtitles or text",
            ),
            (200, "application/x-subrip", "text/vtt", "text/plain"): OpenApiTypes.STR,
            **schema.errors(400, 401, 404, 429),
        },
        summary="A transcription's status and result",
    )
    def get(self, request, job_id):
        fmt = requested_format(request)
        job = services.transcription_for_owner(key=request.user, job_id=job_id)
        if job is None:
            raise NotFound("No transcription with this id for your key.")
        if fmt != "json":
            return text_response(job, fmt)
        if job.is_finished and job.status != "completed":
            return Response(rendered(TranscriptionFailed, {"job": job, "status_url": status_url(request, job)}))
        return job_response(request, job, accepted_status=200)

    @extend_schema(
        parameters=[JOB_ID_PARAMETER],
        responses={
            200: OpenApiResponse(
                TranscriptionFailed,
                description="It was queued or processing: now cancelled (its credits refunded or its demo given "
                "back), and erased",
            ),
            204: OpenApiResponse(
                description="It had already ended: its text, segments and translation are erased (again: "
                "nothing changes)"
            ),
            **schema.errors(401, 404, 429),
        },
        summary="Cancel a transcription, or erase its result",
        description="DELETE /v1/transcriptions/{id}, for the key that sent the clip only: one still queued or "
        "processing is cancelled (200); one that has ended has its text, segments, translation and prompt "
        "erased (204). The row stays for billing; GET then shows its status and `erased_at`.",
        operation_id="transcriptions_destroy",
    )
    def delete(self, request, job_id):
        job, cancelled = services.transcription_erase(key=request.user, job_id=job_id)
        if cancelled:
            return Response(rendered(TranscriptionFailed, {"job": job, "status_url": status_url(request, job)}))
        return Response(status=204)


def requested_format(request) -> str:
    """`?format=` if given (an unknown one is refused), else the Accept header's preferred
    media type among RESULT_FORMATS' (json when it names none of them)."""
    asked = request.query_params.get("format")
    if asked is not None:
        if asked not in RESULT_FORMATS:
            raise InvalidRequest(f"Unknown format {asked!r}: use one of {', '.join(RESULT_FORMATS)}.", param="format")
        return asked
    by_media_type = {media_type: fmt for fmt, media_type in RESULT_FORMATS.items()}
    best, best_quality = "json", 0.0
    for item in request.headers.get("Accept", "").split(","):
        media_type, *params = (part.strip() for part in item.split(";"))
        fmt = by_media_type.get(media_type.lower())
        if fmt is None:
            continue
        quality = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        if quality > best_quality:
            best, best_quality = fmt, quality
    return best


def text_response(job, fmt: str) -> HttpResponse:
    """A completed transcription as subtitles or plain text, shown inline under a file name."""
    if job.erased_at is not None:
        raise InvalidRequest(
            f"This transcription's results were erased ({job.erased_at:%Y-%m-%d %H:%M} UTC); "
            "ask for json to see what is kept of it.",
            param="format",
        )
    if job.status != "completed":
        status = PUBLIC_STATUS[job.status]
        why = "is not completed yet" if not job.is_finished else "has no text"
        raise InvalidRequest(
            f"The transcription {why} (status: {status}); ask for json to see its status.", param="format"
        )
    body = subtitles.render(job.segments, job.text, float(job.duration_seconds), fmt)
    response = HttpResponse(body, content_type=subtitles.CONTENT_TYPES[fmt])
    response["Content-Disposition"] = f'inline; filename="{job.id}.{fmt}"'
    return response


def webhook_request(request, data: dict) -> webhooks.WebhookRequest | None:
    """The caller's `webhook_url`, checked before anything is fetched or queued."""
    if "webhook_url" not in data:
        return None
    webhooks.webhook_url_check(key=request.user, url=data["webhook_url"])
    return webhooks.WebhookRequest(data["webhook_url"], request.build_absolute_uri("/v1/transcriptions/"))


def status_url(request, job):
    return request.build_absolute_uri(f"/v1/transcriptions/{job.id}")


POLL_AFTER_SECONDS = 5


def job_response(request, job, *, accepted_status=202, accepted_headers=None):
    if job.status == "completed" and job.erased_at is not None:
        return Response(rendered(TranscriptionErased, {"job": job, "status_url": status_url(request, job)}))
    if job.status == "completed":
        return Response(rendered(Transcription, services.ensure_translation(job)))
    if job.is_finished:
        error = job_error(job)
        status = failure_status(job)
        # OpenAI's SDKs send a request answered 409 again unless told not to: a cancelled clip must not be sent anew.
        headers = {"X-Should-Retry": "false"} if status == 409 else None
        return Response(error_body(error["code"], error["message"]), status=status, headers=headers)
    url = status_url(request, job)
    return Response(
        rendered(Pending, {"job": job, "status_url": url}),
        status=accepted_status,
        # Retry-After: when a poll is worth it (each counts against the key's 30 a minute).
        headers={"Location": url, "Retry-After": str(POLL_AFTER_SECONDS), **(accepted_headers or {})}
        if accepted_status == 202
        else None,
    )


def failure_status(job) -> int:
    return {"worker_required": 403, services.CANCELLED_CODE: 409}.get(job.error_code, 500)
