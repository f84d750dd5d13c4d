"""Answers about keys: each class both renders its body and documents it in openapi.yaml."""

from rest_framework import serializers

from jptranscribe.fields import UtcDateTimeField


# Rendered from {"api_key": the new ApiKey, "raw_key": its value, shown only here}.
class KeyCreated(serializers.Serializer):
    key = serializers.CharField(source="raw_key", help_text="Shown once; only its hash is stored.")
    key_prefix = serializers.CharField(source="api_key.prefix")
    created_at = UtcDateTimeField(source="api_key.created_at")
