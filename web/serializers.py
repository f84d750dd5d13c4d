"""Answers about the whole service: each class both renders its body and documents it."""

from django.conf import settings
from rest_framework import serializers

from pool.serializers import PoolFigures
from translation.serializers import TranslationStatus


class Backend(serializers.Serializer):
    mode = serializers.SerializerMethodField()
    pool = PoolFigures()

    def get_mode(self, figures) -> str:
        return "coordinator"


# Rendered from {"pool": pool figures, "translation": translation.services.health()}.
class Health(serializers.Serializer):
    status = serializers.SerializerMethodField()
    version = serializers.SerializerMethodField()
    backend = Backend(source="*")
    translation = TranslationStatus()

    def get_status(self, figures) -> str:
        return "ok"

    def get_version(self, figures) -> str:
        return settings.JPT_VERSION
