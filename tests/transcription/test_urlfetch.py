"""`url` instead of `file`: public HTTPS only, nothing on our own network."""
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from tests.clips import wav_bytes
from tests.helpers import online_worker

pytestmark = pytest.mark.django_db
CLIP = wav_bytes(2)


class Handler(BaseHTTPRequestHandler):
    routes = {}

    def do_GET(self):
        status, headers, body = self.routes.get(self.path, (404, {}, b"missing"))
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        if body is not None:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if body:
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass

    def log_message(self, *args):
        pass


class DripHandler(Handler):
    """Headers at once, then one byte every 0.2 s: each read is quick, the whole is not."""

    def do_GET(self):
        if self.path != "/drip.wav":
            return super().do_GET()
        self.send_response(200)
        self.send_header("Content-Length", "1000")
        self.end_headers()
        try:
            for _ in range(1000):
                self.wfile.write(b"R")
                self.wfile.flush()
                time.sleep(0.2)
        except (BrokenPipeError, ConnectionResetError):
            pass


@pytest.fixture
def audio_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), DripHandler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    Handler.routes = {
        "/clip.wav": (200, {"Content-Type": "audio/wav"}, CLIP),
        "/big.wav": (200, {}, b"\0" * 200_000),
        "/to-clip": (302, {"Location": "/clip.wav"}, b""),
        "/to-metadata": (302, {"Location": "http://169.254.169.254/latest/meta-data/"}, b""),
        "/to-private": (302, {"Location": "http://10.1.2.3/clip.wav"}, b""),
        "/loop": (302, {"Location": "/loop"}, b""),
        "/not-audio": (200, {}, b"<html>hello</html>"),
    }
    yield base
    server.shutdown()


@pytest.fixture
def local_fetch_allowed(settings):
    """Tests serve audio from loopback, which production refuses: allow exactly that."""
    settings.JPT_URL_FETCH_ALLOW_HTTP = True
    settings.JPT_URL_FETCH_ALLOWED_NETWORKS = ["127.0.0.1/32"]


def transcribe_url(caller, url):
    return caller.client.post("/v1/transcribe", {"url": url}, format="multipart", HTTP_PREFER="respond-async")


def refused(response, code="invalid_request"):
    return response.status_code == 400 and response.json()["error"]["code"] == code


class TestFetching:
    def test_it_fetches_a_clip_like_an_upload(self, alice, audio_server, local_fetch_allowed):
        online_worker(alice)
        response = transcribe_url(alice, f"{audio_server}/clip.wav")
        assert response.status_code == 202, response.json()
        assert response.json()["duration_seconds"] == 2.0

    def test_it_follows_a_redirect(self, alice, audio_server, local_fetch_allowed):
        online_worker(alice)
        assert transcribe_url(alice, f"{audio_server}/to-clip").status_code == 202

    def test_it_accepts_a_json_body_too(self, alice, audio_server, local_fetch_allowed):
        online_worker(alice)
        response = alice.post("/v1/transcribe", {"url": f"{audio_server}/clip.wav"}, HTTP_PREFER="respond-async")
        assert response.status_code == 202

    def test_a_body_over_the_limit_is_413(self, alice, audio_server, local_fetch_allowed, settings):
        settings.JPT_MAX_UPLOAD_BYTES = 100_000
        response = transcribe_url(alice, f"{audio_server}/big.wav")
        assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"

    def test_an_error_status_is_reported(self, alice, audio_server, local_fetch_allowed):
        response = transcribe_url(alice, f"{audio_server}/nothing-here")
        assert refused(response) and "HTTP 404" in response.json()["error"]["message"]

    def test_what_is_fetched_must_still_be_audio(self, alice, audio_server, local_fetch_allowed):
        response = transcribe_url(alice, f"{audio_server}/not-audio")
        assert refused(response, "invalid_audio")
        assert response.json()["error"]["param"] == "url"  # the field the audio came in, not `file`

    def test_a_server_dripping_its_body_is_cut_off_at_the_deadline(self, alice, audio_server, local_fetch_allowed,
                                                                    settings):
        settings.JPT_URL_FETCH_TIMEOUT_SECONDS = 1  # each read may wait 1 s; the whole fetch 2 s
        started = time.monotonic()
        response = transcribe_url(alice, f"{audio_server}/drip.wav")
        assert refused(response) and "took too long" in response.json()["error"]["message"]
        assert time.monotonic() - started < 4, "one byte every 0.2 s would take 200 s"

    def test_endless_redirects_stop(self, alice, audio_server, local_fetch_allowed):
        response = transcribe_url(alice, f"{audio_server}/loop")
        assert refused(response) and "redirected too many times" in response.json()["error"]["message"]


class TestRefusals:
    def test_http_is_refused_by_default(self, alice):
        response = transcribe_url(alice, "http://example.com/a.wav")
        assert refused(response) and "https" in response.json()["error"]["message"]

    @pytest.mark.parametrize("url", [
        "https://127.0.0.1/a.wav", "https://localhost/a.wav", "https://10.0.0.8/a.wav", "https://192.168.1.1/a.wav",
        "https://172.16.5.4/a.wav", "https://169.254.169.254/latest/meta-data/", "https://[::1]/a.wav",
        "https://[::ffff:10.0.0.1]/a.wav", "https://0.0.0.0/a.wav", "https://100.64.0.1/a.wav",
        "https://[2002:c0a8:101::1]/a.wav", "https://[2002:a00:1::]/a.wav", "https://[fec0::1]/a.wav",
    ])
    def test_internal_addresses_are_refused(self, alice, url):
        response = transcribe_url(alice, url)
        assert refused(response), response.json()
        assert "private or internal address" in response.json()["error"]["message"]

    def test_a_redirect_to_the_metadata_service_is_refused(self, alice, audio_server, local_fetch_allowed):
        response = transcribe_url(alice, f"{audio_server}/to-metadata")
        assert refused(response) and "private or internal" in response.json()["error"]["message"]

    def test_a_redirect_to_a_private_network_is_refused(self, alice, audio_server, local_fetch_allowed):
        assert refused(transcribe_url(alice, f"{audio_server}/to-private"))

    def test_loopback_is_refused_unless_allowed(self, alice, audio_server, settings):
        settings.JPT_URL_FETCH_ALLOW_HTTP = True
        response = transcribe_url(alice, f"{audio_server}/clip.wav")
        assert refused(response) and "private or internal" in response.json()["error"]["message"]

    def test_the_address_actually_connected_to_is_checked(self, alice, audio_server, settings, monkeypatch):
        """DNS rebinding: the name looks public when checked, then resolves to loopback to connect."""
        settings.JPT_URL_FETCH_ALLOW_HTTP = True
        port = int(audio_server.rsplit(":", 1)[1])
        real_getaddrinfo = socket.getaddrinfo
        answers = iter(["93.184.216.34"])

        def rebinding(host, *args, **kwargs):
            if host == "rebind.test":
                address = next(answers, "127.0.0.1")
                return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        response = transcribe_url(alice, f"http://rebind.test:{port}/clip.wav")
        assert refused(response), response.json()
        assert "private or internal" in response.json()["error"]["message"]

    def test_a_name_server_that_never_answers_is_given_up_on(self, alice, settings, monkeypatch):
        settings.JPT_URL_FETCH_DNS_TIMEOUT_SECONDS = 0.5
        real_getaddrinfo = socket.getaddrinfo

        def silent_name_server(host, *args, **kwargs):
            if host == "slow-dns.test":
                time.sleep(5)
            return real_getaddrinfo(host, *args, **kwargs)

        monkeypatch.setattr(socket, "getaddrinfo", silent_name_server)
        started = time.monotonic()
        response = transcribe_url(alice, "https://slow-dns.test/clip.wav")
        assert time.monotonic() - started < 2
        assert refused(response) and "took over 0.5 s" in response.json()["error"]["message"]

    def test_credentials_in_the_url_are_refused(self, alice):
        assert refused(transcribe_url(alice, "https://user:pw@example.com/a.wav"))
