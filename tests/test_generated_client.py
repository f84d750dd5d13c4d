"""A client generated from openapi.yaml with openapi-python-client, as the spec tells users to,
drives a live server through every endpoint: keys, account, health, transcribe (an upload and
a URL), transcriptions, translate, and the worker protocol. The generated client itself is the
worker, so no speech model is needed."""
import importlib
import os
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from pathlib import Path

import pytest

from tests.clips import wav_bytes
from tests.live import LiveServer
from tests.translation.tiny_model import converted_model, write_opus_mt_release

pytestmark = [pytest.mark.slow]
ROOT = Path(__file__).resolve().parent.parent
GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "jpt_generated_client"


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """The generated package, imported from a temporary folder."""
    folder = tmp_path_factory.mktemp("client")
    config = folder / "config.yaml"
    # No post-hooks: they would run ruff over the generated code.
    config.write_text(f"package_name_override: {PACKAGE}\nproject_name_override: jpt-generated-client\npost_hooks: []\n")
    # --meta none: the package alone, no pyproject.toml around it.
    subprocess.run([str(GENERATOR), "generate", "--path", str(ROOT / "openapi.yaml"), "--config", str(config),
                    "--output-path", str(folder / PACKAGE), "--meta", "none"],
                   check=True, capture_output=True, text=True, timeout=300)
    sys.path.insert(0, str(folder))
    try:
        yield importlib.import_module(PACKAGE)
    finally:
        sys.path.remove(str(folder))
        for name in [n for n in sys.modules if n == PACKAGE or n.startswith(PACKAGE + ".")]:
            del sys.modules[name]


def generated(api, module: str):
    return importlib.import_module(f"{api.__name__}.{module}")


@pytest.fixture(scope="module")
def audio_site():
    """A plain-HTTP site on 127.0.0.1 serving one WAV clip, for transcribing a URL."""
    clip = wav_bytes(2.0)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "audio/wav")
            self.send_header("Content-Length", str(len(clip)))
            self.end_headers()
            self.wfile.write(clip)

        def log_message(self, *args):
            pass

    site = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=site.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{site.server_address[1]}/clip.wav", clip
    finally:
        site.shutdown()
        site.server_close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("translation")
    model = converted_model(write_opus_mt_release(work / "release"), work / "model")
    env = {"JPT_TRANSLATION_MODEL": str(model), "JPT_CLAIM_WAIT_MAX_SECONDS": "5",
           "JPT_URL_FETCH_ALLOW_HTTP": "True", "JPT_URL_FETCH_ALLOWED_NETWORKS": "127.0.0.0/8"}
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), env=env) as live:
        yield live


def test_a_generated_client_drives_every_endpoint(api, server, audio_site):
    models = generated(api, "models")
    File = generated(api, "types").File
    call = {name: generated(api, f"api.{name}") for name in [
        "keys.keys_create", "account.account_retrieve", "health.health_retrieve", "transcribe.transcribe_create",
        "transcriptions.transcriptions_retrieve", "translate.translate_create", "worker.worker_heartbeat_create",
        "worker.pool_claim_create", "worker.pool_jobs_audio_retrieve", "worker.pool_jobs_complete_create",
        "worker.pool_jobs_fail_create"]}

    # Keys and the service.
    minted = call["keys.keys_create"].sync(client=api.Client(base_url=server.url))
    assert isinstance(minted, models.KeyCreated) and minted.key.startswith(minted.key_prefix)
    client = api.AuthenticatedClient(base_url=server.url, token=minted.key, timeout=60)
    health = call["health.health_retrieve"].sync(client=client)
    assert (health.status, health.version, health.translation.available) == ("ok", "1.3.0", True)
    account = call["account.account_retrieve"].sync(client=client)
    assert isinstance(account, models.Account) and account.key_prefix == minted.key_prefix
    assert account.worker_online is False and account.credits_seconds == 0

    # This key's own worker is the generated client too: the transcriptions go to it.
    worker_id = "generated-client"
    beat = call["worker.worker_heartbeat_create"].sync(client=client, body=models.HeartbeatRequest(
        worker_id=worker_id, name="generated", engine="none", model="none", version="1.0"))
    assert isinstance(beat, models.HeartbeatResult) and beat.accepted and beat.online
    assert call["account.account_retrieve"].sync(client=client).worker_online is True

    def take_job(expected_audio: bytes):
        claim = call["worker.pool_claim_create"].sync(client=client, body=models.ClaimRequest(
            worker_id=worker_id, wait_seconds=5, inline_audio=False))
        job = claim.job
        assert isinstance(job, models.ClaimedJob) and job.route == models.RouteEnum.POOL_SELF
        audio = call["worker.pool_jobs_audio_retrieve"].sync(job.id, client=client, worker_id=worker_id,
                                                             lease_id=job.lease_id)
        assert audio.payload.read() == expected_audio
        return job

    # An upload, answered at once (202) as asked, then done by the worker.
    clip = wav_bytes(1.5)
    pending = call["transcribe.transcribe_create"].sync(
        client=client, prefer="respond-async", body=models.TranscribeUploadRequest(
            file=File(payload=BytesIO(clip), file_name="clip.wav", mime_type="audio/wav"), translate=True))
    assert isinstance(pending, models.Pending) and pending.processed_by == models.ProcessedByEnum.SELF
    waiting = call["transcriptions.transcriptions_retrieve"].sync(pending.id, client=client)
    assert isinstance(waiting, models.Pending) and waiting.id == pending.id
    job = take_job(clip)
    done = call["worker.pool_jobs_complete_create"].sync(job.id, client=client, body=models.CompleteRequest(
        worker_id=worker_id, lease_id=job.lease_id, text="こんにちは。", model="test-model", processing_seconds=0.5,
        segments=[models.SubmittedSegmentRequest(start=0, end=1.5, text="こんにちは。")]))
    assert isinstance(done, models.CompleteResult) and done.status == "completed"
    result = call["transcriptions.transcriptions_retrieve"].sync(pending.id, client=client)
    assert isinstance(result, models.Transcription)
    assert (result.text, result.model, result.duration_seconds) == ("こんにちは。", "test-model", 1.5)
    assert [(s.start, s.end, s.text) for s in result.segments] == [(0.0, 1.5, "こんにちは。")]
    assert result.translation and result.completed_at is not None

    # A URL (JSON body), fetched by the server; the worker gives it back.
    url, served = audio_site
    pending = call["transcribe.transcribe_create"].sync(client=client, prefer="respond-async",
                                                        body=models.TranscribeUrlRequest(url=url))
    assert isinstance(pending, models.Pending), pending
    job = take_job(served)
    failed = call["worker.pool_jobs_fail_create"].sync(job.id, client=client, body=models.FailRequest(
        worker_id=worker_id, lease_id=job.lease_id, error="given back by the test"))
    assert isinstance(failed, models.FailResult)
    after = call["transcriptions.transcriptions_retrieve"].sync(pending.id, client=client)
    assert isinstance(after, (models.Pending, models.TranscriptionFailed)) and after.id == pending.id

    # Translation, and an error in the envelope.
    translated = call["translate.translate_create"].sync(client=client, body=models.TranslateRequest(text="こんにちは。"))
    assert isinstance(translated, models.TranslateResult) and translated.text
    assert (translated.source, translated.target) == ("ja", "en")
    missing = call["transcriptions.transcriptions_retrieve"].sync("tx_" + "0" * 20, client=client)
    assert isinstance(missing, models.Error) and missing.error.code == "not_found"

    # The worker signs off.
    off = call["worker.worker_heartbeat_create"].sync(client=client, body=models.HeartbeatRequest(
        worker_id=worker_id, status=models.HeartbeatStatusEnum.OFFLINE))
    assert off.online is False
