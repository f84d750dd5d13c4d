"""transcription's /v1 routes (mounted by jptranscribe.urls)."""

from django.urls import path

from jptranscribe.waiting import waiting_view
from transcription.openai_api import AudioTranscriptionsView, AudioTranslationsView
from transcription.views import AccountView, TranscribeView, TranscriptionListView, TranscriptionView

urlpatterns = [
    path("account", AccountView.as_view()),
    path("transcribe", waiting_view(TranscribeView.as_view())),
    path("transcriptions", TranscriptionListView.as_view()),
    path("transcriptions/<str:job_id>", TranscriptionView.as_view()),
    path("audio/transcriptions", waiting_view(AudioTranscriptionsView.as_view())),
    path("audio/translations", waiting_view(AudioTranslationsView.as_view())),
]
