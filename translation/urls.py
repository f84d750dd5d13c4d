"""translation's /v1 routes (mounted by jptranscribe.urls)."""

from django.urls import path

from translation.views import TranslateView

urlpatterns = [
    path("translate", TranslateView.as_view()),
]
