"""The site's URLs plus a bare Django view, the yardstick bench/request_cost.py sets the API against.

Mounted only under bench/settings.py."""

from django.http import JsonResponse
from django.urls import path
from django.utils import timezone

from accounts.models import ApiKey, hash_key
from jptranscribe.urls import handler400, handler404, handler500  # noqa: F401  (the site's error pages)
from jptranscribe.urls import urlpatterns as site_urls

BARE_PATH = "bench/bare"


def bare_key_touch(request):
    """What a keyed request costs with nothing else, behind the same middleware and server:
    one SELECT (the key by its hash), one UPDATE (its last use), a small JSON answer."""
    raw_key = request.headers.get("Authorization", "").partition(" ")[2]
    key_id = ApiKey.objects.filter(hashed_key=hash_key(raw_key), revoked_at=None).values_list("pk", flat=True).first()
    if key_id is None:
        return JsonResponse({"error": {"code": "unauthorized"}}, status=401)
    ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())
    return JsonResponse({"key_id": key_id})


urlpatterns = [path(BARE_PATH, bare_key_touch), *site_urls]
