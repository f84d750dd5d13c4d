from django.conf import settings
from drf_spectacular.utils import extend_schema
from rest_framework.response import Response

from jptranscribe import schema

from jptranscribe.api import PublicView
from pool.services import pool_stats


class HealthView(PublicView):
    """GET /v1/health — public status with live pool figures."""

    @extend_schema(responses={200: schema.Health}, summary="Health check")
    def get(self, request):
        from translation import services as translation

        return Response({
            "status": "ok",
            "version": settings.JPT_VERSION,
            "backend": {"mode": "coordinator", "pool": pool_stats()},
            "translation": translation.status(),
        })
