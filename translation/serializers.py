"""Translation requests and answers: each class both reads (or renders) its body and documents it."""

from django.conf import settings
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from jptranscribe.fields import NOT_BLANK, AnswerValue, StrictCharField, UtcDateTimeField

SOURCE, TARGET = "ja", "en"


# The view refuses a blank text or another language pair (400) and a text over the limit (413).
@extend_schema_serializer(component_name="Translate")
class TranslateInput(serializers.Serializer):
    text = StrictCharField(
        allow_blank=True,
        trim_whitespace=False,
        schema={"pattern": NOT_BLANK, "maxLength": settings.JPT_TRANSLATION_MAX_CHARS},
    )
    # A declared field leaves the class (DRF's metaclass): the stubs see Field.source.
    source = StrictCharField(required=False, default=SOURCE, schema={"enum": [SOURCE]})  # type: ignore[assignment]
    target = StrictCharField(required=False, default=TARGET, schema={"enum": [TARGET]})


# Rendered from a translation.services.Translation.
class TranslateResult(serializers.Serializer):
    text = serializers.CharField()
    source = AnswerValue(SOURCE, of_type=str)  # type: ignore[assignment]  # as in TranslateInput
    target = AnswerValue(TARGET, of_type=str)
    model = serializers.CharField()


# Rendered from translation.services.health(): `status` says whether /v1/translate works now;
# `phase` (and `progress`, when the download's size is known) come with "preparing", `reason` (and
# `retry_at`, when the server will try again) with "unavailable".
class TranslationStatus(serializers.Serializer):
    status = serializers.ChoiceField(["ready", "preparing", "unavailable"])
    available = serializers.BooleanField()
    model = serializers.CharField(allow_null=True)
    version = serializers.CharField(required=False)
    phase = serializers.ChoiceField(["downloading", "converting"], required=False)
    progress = serializers.FloatField(
        required=False, min_value=0, max_value=1, help_text="share of the download done, when its size is known"
    )
    reason = serializers.CharField(required=False, help_text="why there is no translation, and how to turn it on")
    retry_at = UtcDateTimeField(required=False, help_text="when the server tries to download the model again")
