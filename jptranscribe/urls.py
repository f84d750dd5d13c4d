"""The site's URLs. Apps are mounted by name: this package imports no app."""

from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

urlpatterns = [
    # The API: each app's urls.py holds its own /v1 routes.
    path("v1/", include("accounts.urls")),
    path("v1/", include("transcription.urls")),
    path("v1/", include("translation.urls")),
    path("v1/", include("pool.urls")),
    # The contract clients are generated from; `openapi.yaml` in the repository is the same file.
    path("openapi.yaml", SpectacularAPIView.as_view(), name="openapi"),
    path("admin/", admin.site.urls),
    # /v1/health, the same API for the web pages' own calls under /api (same origin,
    # CSRF-checked, no key in any page), and the pages.
    path("", include("web.urls")),
]

handler400 = "jptranscribe.errors.json_400"
handler404 = "jptranscribe.errors.json_404"
handler500 = "jptranscribe.errors.json_500"
