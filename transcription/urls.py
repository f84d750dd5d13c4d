"""transcription's /v1 routes (mounted by jptranscribe.urls)."""

from django.urls import path

from transcription.openai_api import AudioTranscriptionsView, AudioTranslationsView
from transcription.views import AccountView, TranscribeView, TranscriptionListView, TranscriptionView

urlpatterns = [
    path("account", AccountView.as_view()),
    path("transcribe", TranscribeView.as_view()),
    path("transcriptions", TranscriptionListView.as_view()),
    path("transcriptions/<str:job_id>", TranscriptionView.as_view()),
    path("audio/transcriptions", AudioTranscriptionsView.as_view()),
    path("audio/translations", AudioTranslationsView.as_view()),
]
