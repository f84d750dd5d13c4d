"""accounts' /v1 routes (mounted by jptranscribe.urls)."""

from django.urls import path

from accounts.views import KeysView, WebhookSecretView

urlpatterns = [
    path("keys", KeysView.as_view()),
    path("webhook-secret", WebhookSecretView.as_view()),
]
