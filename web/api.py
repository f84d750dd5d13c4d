"""Public endpoints about the whole service (they read several apps)."""

from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from jptranscribe.api import PublicView
from jptranscribe.serializing import rendered
from pool.workers import pool_stats
from translation import services as translation
from web.serializers import Health


class HealthView(PublicView):
    """GET /v1/health — public status with live pool figures."""

    @extend_schema(responses={200: Health}, summary="Health check")
    def get(self, request):
        return Response(rendered(Health, {"pool": pool_stats(), "translation": translation.health()}))
