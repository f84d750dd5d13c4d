from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from accounts import credits, services
from jptranscribe.api import KeyedView, PublicView
from jptranscribe import schema
from jptranscribe.net import client_ip
from pool.models import Worker
from pool.services import pool_stats


class KeysView(PublicView):
    """POST /v1/keys — mint a key; the raw key is in this response and nowhere else."""

    @extend_schema(request=None, responses={201: schema.KeyCreated, **schema.errors(429)}, summary="Mint an API key")
    def post(self, request):
        key, raw_key = services.key_mint(ip=client_ip(request))
        return Response({"key": raw_key, "key_prefix": key.prefix, "created_at": key.created_at}, status=201)


class AccountView(KeyedView):
    @extend_schema(responses={200: schema.Account, **schema.errors(401, 429)}, summary="Account and balance")
    def get(self, request):
        key = request.user
        mine = Worker.objects.online().filter(key=key).count()
        return Response({
            "key_prefix": key.prefix,
            "worker_online": mine > 0,
            "workers_online": mine,
            "credits_seconds": float(credits.credits_balance(key)),
            "demos_left_today": services.demos_left_today(client_ip(request)),
            "pool": pool_stats(),
        })
