from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts import services
from accounts.serializers import KeyCreated
from jptranscribe import schema
from jptranscribe.api import PublicView
from jptranscribe.net import client_ip
from jptranscribe.serializing import rendered


class KeysView(PublicView):
    """POST /v1/keys — mint a key; the raw key is in this response and nowhere else."""

    @extend_schema(request=None, responses={201: KeyCreated, **schema.errors(429)}, summary="Mint an API key")
    def post(self, request):
        key, raw_key = services.key_mint(ip=client_ip(request))
        return Response(rendered(KeyCreated, {"api_key": key, "raw_key": raw_key}), status=201)
