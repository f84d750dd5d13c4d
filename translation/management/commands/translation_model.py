import signal
import threading
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from translation import installing, preparing, services
from worker_client.models import ModelError


class Command(BaseCommand):
    help = "Install or inspect the ja→en translation model (OPUS-MT on CTranslate2)."

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        fetch = sub.add_parser("fetch", help="download the OPUS-MT ja-en release and convert it")
        fetch.add_argument("--url", default=settings.JPT_TRANSLATION_FETCH_URL)
        fetch.add_argument("--sha256", default=None, help="expected SHA-256 of the archive, if known")
        prepare = sub.add_parser(
            "prepare",
            help="what `serve` runs beside the API: fetch if missing, one process per node at a time, "
            "progress in the shared cache, retried after a failure; stops on SIGTERM",
        )
        prepare.add_argument("--url", default=settings.JPT_TRANSLATION_FETCH_URL)
        install = sub.add_parser("install", help="install a converted CTranslate2 folder or an .argosmodel")
        install.add_argument("path", type=Path)
        sub.add_parser("status", help="what is installed")

    def handle(self, *args, action, **options):
        target = services.model_path()
        if action == "prepare":
            self.prepare(options["url"], target)
            return
        try:
            if action == "fetch":
                installing.fetch_opus_mt(options["url"], target, sha256=options["sha256"])
            elif action == "install":
                installing.install_path(options["path"].expanduser().resolve(), target)
        except ModelError as exc:
            raise CommandError(str(exc))
        state = services.status()
        if state["available"]:
            self.stdout.write(f"Translation model {state['model']} {state.get('version', '')} at {target}")
        else:
            self.stdout.write(f"No translation model at {target}: {services.INSTALL_HINT}")

    def prepare(self, url, target):
        """Runs until the model is in place. SIGTERM or Ctrl-C (serve stopping) ends it at once: the
        signal unwinds the download or the conversion, which clean up after themselves, and the turn
        is handed back; the partial download is resumed next time."""
        stop = threading.Event()

        def stopped(signum, frame):
            if not stop.is_set():
                stop.set()
                raise preparing.Stopped

        signal.signal(signal.SIGTERM, stopped)
        signal.signal(signal.SIGINT, stopped)
        preparer = preparing.Preparer(
            url, target, retry_seconds=settings.JPT_TRANSLATION_AUTO_FETCH_RETRY_SECONDS, stop=stop
        )
        try:
            preparer.run()
        except preparing.Stopped:
            pass
