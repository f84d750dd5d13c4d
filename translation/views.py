from drf_spectacular.utils import extend_schema, extend_schema_serializer
from rest_framework import serializers
from rest_framework.response import Response

from jptranscribe import schema
from jptranscribe.api import KeyedView, validated
from jptranscribe.errors import InvalidRequest, ServiceError
from translation import services


class TextTooLong(ServiceError):
    status = 413
    code = "text_too_long"


class TranslationUnavailableError(ServiceError):
    status = 503
    code = "translation_unavailable"


class TranslateView(KeyedView):
    """POST /v1/translate — Japanese to English on the server; no worker needed."""

    @extend_schema_serializer(component_name="Translate")
    class Input(serializers.Serializer):
        text = serializers.CharField(allow_blank=True, trim_whitespace=False)
        source = serializers.CharField(required=False, default="ja")
        target = serializers.CharField(required=False, default="en")

    @extend_schema(request=Input, responses={200: schema.TranslateResult, **schema.errors(400, 401, 413, 429, 503)},
                   summary="Translate Japanese text to English")
    def post(self, request):
        data = validated(self.Input, request.data)
        if (data["source"], data["target"]) != ("ja", "en"):
            raise InvalidRequest("Only source 'ja' to target 'en' is supported.")
        if not data["text"].strip():
            raise InvalidRequest("'text' is empty.")
        if len(data["text"]) > services.MAX_CHARS:
            raise TextTooLong(f"'text' is over the {services.MAX_CHARS:,} character limit; send it in parts.")
        try:
            result = services.translate(data["text"])
        except services.TranslationUnavailable as exc:
            raise TranslationUnavailableError(str(exc))
        return Response({"text": result.text, "source": "ja", "target": "en", "model": result.model})
