"""`POST /v1/audio/transcriptions` and `/v1/audio/translations`: OpenAI's audio API on the same
routing, pool, credits and limits as `/v1/transcribe`, so programs written for OpenAI's SDKs
work unchanged. Synchronous as OpenAI's are; when the pool is slower than the wait limit the
answer is 202 with a `status_url`, as `/v1/transcribe`'s is."""

from __future__ import annotations

import math
from typing import Any

from django.conf import settings
from django.http import HttpResponse, QueryDict
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework.response import Response

from accounts import idempotency
from jptranscribe import schema, waiting
from jptranscribe.errors import InvalidRequest, ServiceError
from jptranscribe.net import client_ip
from jptranscribe.serializing import refuse_repeated_fields, rendered, validated
from pool.models import Job
from transcription import intake, services, subtitles, webhooks
from transcription.openai_serializers import (
    AudioText,
    AudioTranscriptionInput,
    AudioTranscriptionUpload,
    AudioTranscriptionUrl,
    AudioTranslationInput,
    AudioTranslationUpload,
    AudioTranslationUrl,
)
from transcription.serializers import SUPPORTED_LANGUAGES, Pending
from transcription.views import CANCELLED_WHILE_WAITING, UploadView, job_response, webhook_request

# What `response_format=text|srt|vtt` answer, as OpenAI does (plain text of each kind).
TEXT_FORMATS = {"text": "txt", "srt": "srt", "vtt": "vtt"}


class TranslationUnavailable(ServiceError, status=503, code="translation_unavailable"):
    """No translation model on this server (yet): nothing is queued or charged."""


def _answers(*refusals: int) -> dict:
    return {
        (200, "application/json"): OpenApiResponse(AudioText, description="`json` or `verbose_json`"),
        (200, "text/plain"): OpenApiResponse(OpenApiTypes.STR, description="`text`"),
        (200, "application/x-subrip"): OpenApiResponse(OpenApiTypes.STR, description="`srt`"),
        (200, "text/vtt"): OpenApiResponse(OpenApiTypes.STR, description="`vtt`"),
        (202, "application/json"): OpenApiResponse(Pending, description="the pool is slower than the wait limit"),
        **schema.errors(400, 401, 403, 413, 429, 500, *refusals),
        **schema.idempotency_errors(),
        **CANCELLED_WHILE_WAITING,
    }


class AudioTranscriptionsView(UploadView):
    @extend_schema(
        request={"multipart/form-data": AudioTranscriptionUpload, "application/json": AudioTranscriptionUrl},
        parameters=schema.idempotency_headers(200, 202),
        responses=_answers(),
        summary="Transcribe audio (OpenAI-compatible)",
        tags=["openai"],
    )
    def post(self, request):
        data = validated(AudioTranscriptionInput, _form(request))
        if data.get("language") not in (None, "", *SUPPORTED_LANGUAGES):
            raise InvalidRequest(
                f"Unsupported language {data['language']!r}; only 'ja' (or none) is supported.", param="language"
            )
        words = "word" in data["timestamp_granularities"]
        if data["timestamp_granularities"] and data["response_format"] != "verbose_json":
            raise InvalidRequest(
                "timestamp_granularities needs response_format=verbose_json.", param="timestamp_granularities"
            )
        return _answer(request, data, task="transcribe", translate=data["translate"], words=words)


class AudioTranslationsView(UploadView):
    @extend_schema(
        request={"multipart/form-data": AudioTranslationUpload, "application/json": AudioTranslationUrl},
        parameters=schema.idempotency_headers(200, 202),
        responses=_answers(503),
        summary="Translate Japanese audio to English text (OpenAI-compatible)",
        tags=["openai"],
    )
    def post(self, request):
        data = validated(AudioTranslationInput, _form(request))
        _require_translation()
        return _answer(request, data, task="translate", translate=True, words=False)


def _form(request) -> dict[str, Any]:
    """The body as the serializer reads it: a multipart form (OpenAI's SDKs send
    `timestamp_granularities[]`), or a JSON object naming a `url`."""
    if not isinstance(request.data, QueryDict):  # JSON
        if isinstance(request.data, dict):
            return request.data
        raise InvalidRequest("Send a multipart form with the audio as 'file', or a JSON object with a 'url'.")
    refuse_repeated_fields(request.data, lists=["timestamp_granularities"])
    form: dict[str, Any] = {name: request.data.get(name) for name in request.data if not name.endswith("[]")}
    form.update({name: request.FILES[name] for name in request.FILES})
    # OpenAI's SDKs send `timestamp_granularities[]` parts; a client generated from openapi.yaml sends one
    # `timestamp_granularities` part per item (OpenAPI's encoding of a multipart array).
    granularities = request.data.getlist("timestamp_granularities[]") + request.data.getlist("timestamp_granularities")
    if granularities:
        form["timestamp_granularities"] = granularities
    return form


def _require_translation() -> None:
    from translation import services as translation

    try:
        translation.get_model()
    except translation.TranslationUnavailable as exc:
        raise TranslationUnavailable(str(exc))


def _answer(request, data: dict, *, task: str, translate: bool, words: bool):
    if ("file" in data) == ("url" in data):
        raise InvalidRequest("Send exactly one of 'file' (an upload) or 'url'.", param="file")
    webhook = webhook_request(request, data)
    fmt = data["response_format"]
    options = {
        "prompt": data.get("prompt") or None,
        "temperature": data.get("temperature"),
        # Subtitles are cut at word boundaries when the engine says where they are.
        "word_timestamps": words or fmt in ("srt", "vtt"),
    }

    def answer(outcome):
        job, replayed = outcome
        if webhook is not None:
            webhooks.with_webhook_state([job])
        response = _rendered(request, job, data, task=task, translate=translate, words=words)
        return idempotency.mark_replayed(response) if replayed else response

    steps = services.transcription_submit_once(
        call=idempotency.idempotent_call(request, fields=data),
        key=request.user,
        ip=client_ip(request),
        read_audio=lambda: intake.read_checked(data),
        translate=translate,
        options=options,
        timeout=settings.JPT_TRANSCRIBE_WAIT_SECONDS,
        webhook=webhook,
    )
    return waiting.answer(request, steps, answer)


def _rendered(request, job: Job, data: dict, *, task: str, translate: bool, words: bool):
    """The answer for a job in the format asked for: the same for a retry that attached to it."""
    fmt = data["response_format"]
    if job.status != Job.Status.COMPLETED or job.erased_at is not None:
        return job_response(request, job)  # 202 with status_url, or the job's error (or what is left of it)
    job = services.ensure_translation(job)
    if task == "translate" and job.translation is None:
        raise TranslationUnavailable(_warning(job, "translation_unavailable") or "Translation is unavailable.")
    segments = _english_segments(job) if task == "translate" else job.segments
    text = job.translation if task == "translate" else job.text
    if fmt in TEXT_FORMATS:
        body = subtitles.render(segments, text or "", float(job.duration_seconds), TEXT_FORMATS[fmt])
        response = HttpResponse(body, content_type=subtitles.CONTENT_TYPES[TEXT_FORMATS[fmt]])
        response["JPT-Model"] = job.model
        if _warnings(job):
            response["JPT-Warning"] = " | ".join(_warnings(job)).replace("\n", " ")
        return response
    answer: dict[str, Any] = {
        "text": text or "",
        "usage": {"type": "duration", "seconds": math.ceil(float(job.duration_seconds))},
        "model": job.model,
    }
    if task == "transcribe" and translate and job.translation is not None:
        answer["translation"] = job.translation
    if _warnings(job):
        answer["warnings"] = _warnings(job)
    if fmt == "json":
        return Response(rendered(AudioText, answer))
    answer.update(
        task=task,
        language="english" if task == "translate" else "japanese",
        duration=float(job.duration_seconds),
        segments=[_verbose_segment(i, s) for i, s in enumerate(segments)],
    )
    if words:
        answer["words"] = [w for s in segments for w in s.get("words", [])]
    return Response(rendered(AudioText, answer))


def _verbose_segment(index: int, segment: dict) -> dict:
    """A stored segment as OpenAI's verbose_json shows it: the engine's figures where it gave them
    (faster-whisper does), null where it has none."""
    return {
        "id": index,
        "seek": int(segment.get("seek") or 0),
        "start": segment["start"],
        "end": segment["end"],
        "text": segment.get("text", ""),
        "tokens": segment.get("tokens") or [],
        **{name: segment.get(name) for name in ("temperature", "avg_logprob", "compression_ratio", "no_speech_prob")},
    }


def _english_segments(job: Job) -> list[dict]:
    """The segments with their text in English (each translated on its own, timings kept), for
    subtitles and verbose_json of a translation."""
    from translation import services as translation

    english = []
    for segment in job.segments:
        source = str(segment.get("text", "")).strip()
        text = translation.translate(source).text if source else ""
        english.append({"start": segment["start"], "end": segment["end"], "text": text})
    return english


def _warnings(job: Job) -> list[str]:
    return [str(w.get("message", "")) for w in job.warnings]


def _warning(job: Job, code: str) -> str | None:
    return next((str(w.get("message")) for w in job.warnings if w.get("code") == code), None)
