"""`manage.py webhooks deliver`: the delivery loop in the foreground, for a node that sends
webhooks apart from its app servers (set JPT_WEBHOOK_DELIVERY=false on those)."""

import signal

from django.core.management.base import BaseCommand

from transcription.delivery import DeliveryLoop


class Command(BaseCommand):
    help = "Deliver webhook events: forever (until SIGTERM or Ctrl-C), or what is due now with --once."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        deliver = sub.add_parser("deliver", help="run the delivery loop")
        deliver.add_argument("--once", action="store_true", help="send what is due now, then exit")
        deliver.add_argument("--concurrency", type=int, default=None, help="deliveries in flight at once")

    def handle(self, *args, action, once, concurrency, **options):
        loop = DeliveryLoop(concurrency)
        if once:
            loop.run_until_idle()
            loop.stop()
            return
        signal.signal(signal.SIGTERM, lambda signum, frame: loop.stop())
        signal.signal(signal.SIGINT, lambda signum, frame: loop.stop())
        self.stdout.write("Delivering webhooks (Ctrl-C stops).")
        loop.start()
        while loop.running:
            signal.pause()
