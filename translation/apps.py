import logging

from django.apps import AppConfig
from django.conf import settings

log = logging.getLogger(__name__)


class TranslationConfig(AppConfig):
    name = "translation"

    def ready(self):
        from jptranscribe import lifecycle

        if settings.JPT_TRANSLATION_EAGER:
            lifecycle.on_start(load_model_now)


def load_model_now():
    """JPT_TRANSLATION_EAGER: the model loads as the server starts, not on the first request."""
    from translation import services

    try:
        services.get_model()
    except services.TranslationUnavailable as exc:
        log.warning("translation: %s", exc)
