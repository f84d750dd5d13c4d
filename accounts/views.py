from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts import idempotency, services
from accounts.api import KeyedView
from accounts.serializers import KeyCreated, WebhookSecretCreated
from jptranscribe import schema
from jptranscribe.api import PublicView
from jptranscribe.errors import InvalidRequest
from jptranscribe.net import client_ip
from jptranscribe.serializing import read_no_fields, rendered


class KeysView(PublicView):
    """POST /v1/keys — mint a key; the raw key is in this response and nowhere else."""

    @extend_schema(
        request=None,
        parameters=schema.idempotency_headers(201),
        responses={201: KeyCreated, **schema.errors(400, 429), **schema.idempotency_errors()},
        summary="Mint an API key",
    )
    def post(self, request):
        read_no_fields(request)
        # A retry replays the key minted first (stored encrypted under the Idempotency-Key).
        return idempotency.respond_once(request, fields={}, respond=lambda: minted(client_ip(request)))


def minted(ip: str) -> Response:
    key, raw_key = services.key_mint(ip=ip)
    return Response(rendered(KeyCreated, {"api_key": key, "raw_key": raw_key}), status=201)


class WebhookSecretView(KeyedView):
    """POST /v1/webhook-secret — make (or rotate) the secret this key's webhooks are signed with."""

    @extend_schema(
        request=None,
        responses={201: WebhookSecretCreated, **schema.errors(401, 429)},
        summary="Make or rotate the webhook signing secret",
    )
    def post(self, request):
        read_no_fields(request)
        if request.user.is_browser:  # shared by every visitor of the pages
            raise InvalidRequest("Webhooks need an API key of your own: mint one with POST /v1/keys.")
        secret = services.webhook_secret_rotate(key=request.user)
        return Response(rendered(WebhookSecretCreated, {"secret": secret}), status=201)
