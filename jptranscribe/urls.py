from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView

from accounts.views import AccountView, KeysView
from jptranscribe.views import HealthView
from pool.views import ClaimView, HeartbeatView, JobAudioView, JobCompleteView, JobFailView
from transcription.views import TranscribeView, TranscriptionView
from translation.views import TranslateView
from web.urls import browser_api, pages

v1 = [
    path("keys", KeysView.as_view()),
    path("account", AccountView.as_view()),
    path("health", HealthView.as_view()),
    path("transcribe", TranscribeView.as_view()),
    path("transcriptions/<str:job_id>", TranscriptionView.as_view()),
    path("translate", TranslateView.as_view()),
    path("worker/heartbeat", HeartbeatView.as_view()),
    path("pool/claim", ClaimView.as_view()),
    path("pool/jobs/<str:job_id>/audio", JobAudioView.as_view()),
    path("pool/jobs/<str:job_id>/complete", JobCompleteView.as_view()),
    path("pool/jobs/<str:job_id>/fail", JobFailView.as_view()),
]

urlpatterns = [
    path("v1/", include(v1)),
    # The same API for the web pages' own calls (same origin, CSRF-checked, no key in any page).
    path("api/v1/", include(browser_api)),
    # The contract clients are generated from; `openapi.yaml` in the repository is the same file.
    path("openapi.yaml", SpectacularAPIView.as_view(), name="openapi"),
    path("admin/", admin.site.urls),
    path("", include(pages)),
]

handler400 = "jptranscribe.errors.json_400"
handler404 = "jptranscribe.errors.json_404"
handler500 = "jptranscribe.errors.json_500"
