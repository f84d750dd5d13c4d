"""Answers about keys: each class both renders its body and documents it in openapi.yaml."""

from rest_framework import serializers

from jptranscribe.fields import UtcDateTimeField


# Rendered from {"api_key": the new ApiKey, "raw_key": its value, shown only here}.
class KeyCreated(serializers.Serializer):
    key = serializers.CharField(source="raw_key", help_text="Shown once; only its hash is stored.")
    key_prefix = serializers.CharField(source="api_key.prefix")
    created_at = UtcDateTimeField(source="api_key.created_at")


# Rendered from the new secret.
class WebhookSecretCreated(serializers.Serializer):
    secret = serializers.CharField(
        help_text="whsec_ and base64: verify deliveries' webhook-signature with it (Standard Webhooks). "
        "Shown once; calling again makes a new one, and the old one keeps signing beside it for 24 h."
    )
