"""The worker protocol's /v1 routes (mounted by jptranscribe.urls)."""

from django.urls import path

from jptranscribe.waiting import waiting_view
from pool.views import ClaimView, HeartbeatView, JobAudioView, JobCompleteView, JobFailView

urlpatterns = [
    path("worker/heartbeat", HeartbeatView.as_view()),
    path("pool/claim", waiting_view(ClaimView.as_view(), in_lane=True)),
    path("pool/jobs/<str:job_id>/audio", JobAudioView.as_view()),
    # Waits when it asks for the next job with wait_seconds (its claim's long-poll folded in).
    path("pool/jobs/<str:job_id>/complete", waiting_view(JobCompleteView.as_view())),
    path("pool/jobs/<str:job_id>/fail", JobFailView.as_view()),
]
