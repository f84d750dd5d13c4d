from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts import idempotency, services
from accounts.serializers import KeyCreated
from jptranscribe import schema
from jptranscribe.api import PublicView
from jptranscribe.net import client_ip
from jptranscribe.serializing import rendered


class KeysView(PublicView):
    """POST /v1/keys — mint a key; the raw key is in this response and nowhere else."""

    @extend_schema(
        request=None,
        parameters=schema.idempotency_headers(201),
        responses={201: KeyCreated, **schema.errors(400, 429), **schema.idempotency_errors()},
        summary="Mint an API key",
    )
    def post(self, request):
        # A retry replays the key minted first (stored encrypted under the Idempotency-Key).
        return idempotency.respond_once(request, fields={}, respond=lambda: minted(client_ip(request)))


def minted(ip: str) -> Response:
    key, raw_key = services.key_mint(ip=ip)
    return Response(rendered(KeyCreated, {"api_key": key, "raw_key": raw_key}), status=201)
