from django.urls import include, path

from accounts.views import KeysView
from jptranscribe.waiting import waiting_view
from transcription.views import AccountView, TranscribeView, TranscriptionView
from translation.views import TranslateView
from web import views
from web.api import HealthView
from web.proxy import browser_proxy

# Public endpoints about the whole service.
v1 = [
    path("health", HealthView.as_view()),
]

pages = [
    path("", views.home, name="home"),
    path("get-key/", views.get_key, name="get-key"),
    path("worker/", views.worker, name="worker"),
    path("status/", views.status, name="status"),
    path("status.json", views.status_json, name="status-json"),
    path("docs/", views.api_docs, name="docs"),
]

# The browser proxy: what the pages need, not the worker protocol (workers use /v1 with a key).
browser_api = [
    path("keys", browser_proxy(KeysView.as_view())),
    path("account", browser_proxy(AccountView.as_view())),
    path("health", browser_proxy(HealthView.as_view())),
    path("transcribe", browser_proxy(waiting_view(TranscribeView.as_view()))),
    path("transcriptions/<str:job_id>", browser_proxy(TranscriptionView.as_view())),
    path("translate", browser_proxy(TranslateView.as_view())),
]

urlpatterns = [
    path("v1/", include(v1)),
    path("api/v1/", include(browser_api)),
    *pages,
]
