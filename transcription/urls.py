"""transcription's /v1 routes (mounted by jptranscribe.urls)."""

from django.urls import path

from transcription.views import AccountView, TranscribeView, TranscriptionView

urlpatterns = [
    path("account", AccountView.as_view()),
    path("transcribe", TranscribeView.as_view()),
    path("transcriptions/<str:job_id>", TranscriptionView.as_view()),
]
