from django.apps import AppConfig
from django.conf import settings


class TranscriptionConfig(AppConfig):
    name = "transcription"

    def ready(self):
        from jptranscribe import lifecycle
        from transcription import delivery

        if settings.JPT_WEBHOOK_DELIVERY:
            # Every app server process delivers webhooks beside its requests.
            lifecycle.on_start(delivery.start_in_this_process)
            lifecycle.on_stop(delivery.stop_in_this_process)
