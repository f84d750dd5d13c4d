from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts import idempotency
from accounts.api import KeyedView
from jptranscribe import schema
from jptranscribe.errors import InvalidRequest, ServiceError
from jptranscribe.serializing import rendered, validated
from translation import services
from translation.serializers import SOURCE, TARGET, TranslateInput, TranslateResult


class TextTooLong(ServiceError, status=413, code="text_too_long"):
    pass


class TranslationUnavailableError(ServiceError, status=503, code="translation_unavailable"):
    pass


class TranslateView(KeyedView):
    """POST /v1/translate — Japanese to English on the server; no worker needed."""

    @extend_schema(
        request={"application/json": TranslateInput},
        parameters=schema.idempotency_headers(200),
        responses={200: TranslateResult, **schema.errors(400, 401, 413, 429, 503), **schema.idempotency_errors()},
        summary="Translate Japanese text to English",
    )
    def post(self, request):
        data = validated(TranslateInput, request.data)
        if (data["source"], data["target"]) != (SOURCE, TARGET):
            wrong = "source" if data["source"] != SOURCE else "target"
            raise InvalidRequest("Only source 'ja' to target 'en' is supported.", param=wrong)
        if not data["text"].strip():
            raise InvalidRequest("'text' is empty.", param="text")
        if len(data["text"]) > settings.JPT_TRANSLATION_MAX_CHARS:
            raise TextTooLong(
                f"'text' is over the {settings.JPT_TRANSLATION_MAX_CHARS:,} character limit; send it in parts."
            )
        return idempotency.respond_once(request, fields=data, respond=lambda: translated(data["text"]))


def translated(text: str) -> Response:
    try:
        result = services.translate(text)
    except services.TranslationUnavailable as exc:
        raise TranslationUnavailableError(str(exc))
    return Response(rendered(TranslateResult, result))
