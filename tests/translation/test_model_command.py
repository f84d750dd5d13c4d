"""`manage.py translation_model`: fetch (OPUS-MT release from a local server), install, status."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from tests.translation.tiny_model import argos_package, opus_mt_zip
from translation import services


def run(*args):
    out = StringIO()
    call_command("translation_model", *args, stdout=out)
    return out.getvalue()


@pytest.fixture
def target(settings, tmp_path):
    settings.JPT_TRANSLATION_MODEL = str(tmp_path / "models" / "opus-mt-ja-en")
    return tmp_path / "models" / "opus-mt-ja-en"


@pytest.fixture
def release_server(opus_release):
    files = {"/OPUS-MT-models/ja-en/opus-2019-12-18.zip": opus_mt_zip(opus_release), "/broken.zip": b"PK not a zip"}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body = files.get(self.path)
            self.send_response(200 if body else 404)
            self.send_header("Content-Length", str(len(body or b"")))
            self.end_headers()
            self.wfile.write(body or b"")

        def log_message(self, *args):
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_status_without_a_model_says_how_to_get_one(target):
    assert "translation_model fetch" in run("status")


def test_fetch_downloads_converts_and_installs(target, release_server):
    output = run("fetch", "--url", f"{release_server}/OPUS-MT-models/ja-en/opus-2019-12-18.zip")
    assert "opus-mt-ja-en opus-2019-12-18" in output
    assert services.status() == {"available": True, "model": "opus-mt-ja-en", "version": "opus-2019-12-18"}
    assert services.translate("こんにちは。").model == "opus-mt-ja-en@opus-2019-12-18"
    assert [p.name for p in target.parent.iterdir() if p.name.startswith(".opus")] == [], "no staging left"


def test_fetch_of_a_broken_archive_installs_nothing(target, release_server):
    with pytest.raises(CommandError, match="not a valid zip"):
        run("fetch", "--url", f"{release_server}/broken.zip")
    assert not target.exists()


def test_fetch_without_network_fails_cleanly(target):
    with pytest.raises(CommandError, match="no network"):
        run("fetch", "--url", "http://127.0.0.1:9/opus.zip")
    assert not target.exists()


def test_install_a_converted_folder(target, tiny_model_dir):
    run("install", str(tiny_model_dir))
    assert services.status()["available"] and services.translate("今日は。").text


def test_install_an_argos_package(target, tiny_model_dir, tmp_path):
    package = tmp_path / "translate-ja_en-1_1.argosmodel"
    package.write_bytes(argos_package(tiny_model_dir))
    assert "argos-ja-en" in run("install", str(package))
    assert services.translate("今日は。").text


def test_an_argos_package_for_another_pair_is_refused(target, tiny_model_dir, tmp_path):
    package = tmp_path / "translate-en_de.argosmodel"
    package.write_bytes(argos_package(tiny_model_dir, from_code="en", to_code="de"))
    with pytest.raises(CommandError, match="not ja→en"):
        run("install", str(package))
    assert not target.exists()
