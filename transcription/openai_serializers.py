"""OpenAI's audio API, as its SDKs send and read it: the multipart requests of
`/v1/audio/transcriptions` and `/v1/audio/translations`, and their JSON answers.

Form fields arrive as strings (multipart), so these fields coerce as DRF does by default,
unlike the strict JSON fields of the native API.
"""

from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from transcription.serializers import FILE_HELP, WEBHOOK_URL_HELP

RESPONSE_FORMATS = ("json", "text", "srt", "vtt", "verbose_json")
GRANULARITIES = ("segment", "word")


class AudioTranslationInput(serializers.Serializer):
    file = serializers.FileField(required=False, allow_empty_file=True, help_text=FILE_HELP)
    url = serializers.CharField(
        required=False, max_length=2048, help_text="an extension: a public https URL to the audio instead of `file`"
    )
    model = serializers.CharField(
        max_length=100,
        help_text="required, as by OpenAI; any value is taken (`whisper-1` too): the answer's `model` says which ran",
    )
    prompt = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=2000,
        trim_whitespace=False,
        help_text="passed to Whisper as its initial prompt; Vosk takes none and says so in `warnings`",
    )
    response_format = serializers.ChoiceField(RESPONSE_FORMATS, required=False, default="json")
    temperature = serializers.FloatField(required=False, min_value=0, max_value=1)
    webhook_url = serializers.CharField(required=False, max_length=2048, help_text="an extension: " + WEBHOOK_URL_HELP)


class AudioTranscriptionInput(AudioTranslationInput):
    language = serializers.CharField(required=False, allow_blank=True, help_text="`ja`, or absent")
    timestamp_granularities = serializers.ListField(
        child=serializers.ChoiceField(GRANULARITIES),
        required=False,
        default=list,
        help_text="one part per item, named `timestamp_granularities[]` (as OpenAI's SDKs send it) or "
        "`timestamp_granularities`; needs `response_format=verbose_json`",
    )
    stream = serializers.BooleanField(required=False, default=False, help_text="accepted and ignored, as by OpenAI")
    translate = serializers.BooleanField(
        required=False, default=False, help_text="an extension: add the English `translation` to json answers"
    )


# The description names one body per content type, as /v1/transcribe's does: the audio as a
# multipart `file` (what OpenAI's SDKs send), or, as an extension, a JSON body naming a `url`.
@extend_schema_serializer(component_name="AudioTranscriptionUpload")
class AudioTranscriptionUpload(AudioTranscriptionInput):
    file = serializers.FileField(allow_empty_file=True, help_text=FILE_HELP)
    url = None  # type: ignore[assignment]  # DRF's way to drop an inherited field


@extend_schema_serializer(component_name="AudioTranscriptionUrl")
class AudioTranscriptionUrl(AudioTranscriptionInput):
    file = None  # type: ignore[assignment]
    url = serializers.CharField(max_length=2048, help_text="a public https URL to the audio")


@extend_schema_serializer(component_name="AudioTranslationUpload")
class AudioTranslationUpload(AudioTranslationInput):
    file = serializers.FileField(allow_empty_file=True, help_text=FILE_HELP)
    url = None  # type: ignore[assignment]


@extend_schema_serializer(component_name="AudioTranslationUrl")
class AudioTranslationUrl(AudioTranslationInput):
    file = None  # type: ignore[assignment]
    url = serializers.CharField(max_length=2048, help_text="a public https URL to the audio")


class Usage(serializers.Serializer):
    type = serializers.CharField(default="duration")
    seconds = serializers.IntegerField(help_text="the clip's length, rounded up")


class Word(serializers.Serializer):
    word = serializers.CharField()
    start = serializers.FloatField()
    end = serializers.FloatField()


class VerboseSegment(serializers.Serializer):
    id = serializers.IntegerField()
    seek = serializers.IntegerField()
    start = serializers.FloatField()
    end = serializers.FloatField()
    text = serializers.CharField()
    tokens = serializers.ListField(child=serializers.IntegerField())
    temperature = serializers.FloatField(allow_null=True)
    avg_logprob = serializers.FloatField(allow_null=True)
    compression_ratio = serializers.FloatField(allow_null=True)
    no_speech_prob = serializers.FloatField(allow_null=True)


# One class renders (and documents) both JSON answers, so openapi.yaml describes every field of either.
class AudioText(serializers.Serializer):
    """`response_format=json`; `verbose_json` adds `task`, `language`, `duration` and `segments`
    (Whisper's own figures per segment, null where the engine has none: see the README), and `words`
    when asked for."""

    text = serializers.CharField()
    usage = Usage()
    model = serializers.CharField(help_text="an extension: the model that ran")
    translation = serializers.CharField(required=False, help_text="with `translate=true`")
    warnings = serializers.ListField(child=serializers.CharField(), required=False)
    task = serializers.ChoiceField(["transcribe", "translate"], required=False, help_text="`verbose_json`")
    language = serializers.CharField(
        required=False, help_text="`verbose_json`: `japanese`, or `english` for translations"
    )
    duration = serializers.FloatField(required=False, help_text="`verbose_json`: the clip's length in seconds")
    segments = VerboseSegment(many=True, required=False, help_text="`verbose_json`")
    words = Word(many=True, required=False, help_text="`verbose_json` with `timestamp_granularities[]=word`")
