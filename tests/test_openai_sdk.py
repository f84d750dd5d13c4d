"""OpenAI's own Python SDK, pointed at the live server with a jpt_ key, as a program written for
OpenAI would call it: real corpus clips, transcribed by real worker processes (the server's demo
worker and a volunteer's), every response format, and the SDK's own exception classes."""
import contextlib
import os
import shutil
import time

import openai
import pytest
import requests
import srt
import webvtt

from tests.live import LiveServer
from tests.speech.cer import character_error_rate
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.slow]


@pytest.fixture(scope="module")
def translation_model_path(tmp_path_factory):
    """Where the server looks for its translation model: empty until a test puts one there."""
    return tmp_path_factory.mktemp("translation") / "opus-mt-ja-en"


@pytest.fixture(scope="module")
def server(translation_model_path):
    env = {"JPT_DEMOS_PER_IP_PER_DAY": "1000", "JPT_TRANSLATION_MODEL": str(translation_model_path),
           "JPT_HEARTBEAT_INTERVAL_SECONDS": "2"}
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), workers=1, env=env) as live:
        yield live


@pytest.fixture(scope="module")
def demo_worker(server, models_dir):
    worker = WorkerProcess(server.url, server.db_key(is_server=True), models_dir, "server-demo")
    worker.wait_for("accepted by the server")
    yield worker
    worker.stop()


@pytest.fixture(scope="module")
def volunteer(server, models_dir):
    """A key with its own worker online: its clips run on its own worker (pool_self)."""
    key = server.mint_key()
    worker = WorkerProcess(server.url, key, models_dir, "volunteer")
    worker.wait_for("accepted by the server")
    yield key
    worker.stop()


def sdk(server, key, **kw):
    return openai.OpenAI(base_url=f"{server.url}/v1", api_key=key, max_retries=0, timeout=120, **kw)


def test_every_response_format_from_the_volunteers_own_worker(server, volunteer, corpus):
    client, clip = sdk(server, volunteer), corpus["weekend"]

    def transcribe(**kw):
        with open(clip["path"], "rb") as audio:
            return client.audio.transcriptions.create(model="whisper-1", file=audio, **kw)

    plain = transcribe()
    assert character_error_rate(clip["text"], plain.text) < 0.3
    text = transcribe(response_format="text")
    assert isinstance(text, str) and character_error_rate(clip["text"], text) < 0.3
    cues = list(srt.parse(transcribe(response_format="srt")))
    assert cues and cues[0].index == 1 and all(c.start < c.end for c in cues)
    captions = webvtt.from_string(transcribe(response_format="vtt"))
    assert captions and all(c.start_in_seconds < c.end_in_seconds for c in captions)
    verbose = transcribe(response_format="verbose_json", timestamp_granularities=["word", "segment"])
    assert verbose.task == "transcribe" and verbose.language == "japanese"
    assert abs(verbose.duration - clip["duration"]) < 0.5
    assert verbose.segments and verbose.segments[0].avg_logprob is not None, "Whisper's own figures"
    assert verbose.words and all(0 <= w.start <= w.end <= verbose.duration + 0.5 for w in verbose.words)
    assert "".join(w.word for w in verbose.words).strip()
    assert verbose.model_extra["model"] == "whisper-base"


def test_a_key_without_a_worker_is_answered_by_the_server_demo(server, demo_worker, corpus):
    client, clip = sdk(server, server.mint_key()), corpus["shop"]
    with open(clip["path"], "rb") as audio:
        answer = client.audio.transcriptions.create(model="whisper-1", file=audio, language="ja")
    assert character_error_rate(clip["text"], answer.text) < 0.3
    assert answer.usage.seconds == int(clip["duration"]) + 1


def test_translation_is_503_without_a_model_and_english_once_one_arrives(
    server, volunteer, corpus, translation_model_path, tiny_model_dir
):
    client, clip = sdk(server, volunteer), corpus["weekend"]
    with open(clip["path"], "rb") as audio, pytest.raises(openai.InternalServerError) as refused:
        client.audio.translations.create(model="whisper-1", file=audio)
    assert refused.value.status_code == 503 and refused.value.code == "translation_unavailable"
    shutil.copytree(tiny_model_dir, translation_model_path)  # a tiny stand-in model: its "English" is noise
    with open(clip["path"], "rb") as audio:
        english = client.audio.translations.create(model="whisper-1", file=audio)
    with open(clip["path"], "rb") as audio:
        japanese = client.audio.transcriptions.create(model="whisper-1", file=audio).text
    translated = requests.post(f"{server.url}/v1/translate", headers={"Authorization": f"Bearer {volunteer}"},
                               json={"text": japanese, "source": "ja", "target": "en"}, timeout=30).json()
    assert english.text and english.text == translated["text"], "the transcript, translated on the server"
    with open(clip["path"], "rb") as audio:
        subtitles = client.audio.translations.create(model="whisper-1", file=audio, response_format="srt")
    assert list(srt.parse(subtitles))


def test_the_sdk_raises_its_usual_exceptions(server, corpus):
    clip = corpus["shop"]
    with pytest.raises(openai.AuthenticationError), open(clip["path"], "rb") as audio:
        sdk(server, "jpt_" + "x" * 40).audio.transcriptions.create(model="whisper-1", file=audio)
    no_worker = sdk(server, server.mint_key())
    with pytest.raises(openai.PermissionDeniedError) as refused:  # too long for the demo, no credits
        no_worker.audio.transcriptions.create(model="whisper-1", file=("long.wav", corpus["long40"]["path"].read_bytes()))
    assert refused.value.code == "worker_required"
    with pytest.raises(openai.APIStatusError) as too_big:
        no_worker.audio.transcriptions.create(model="whisper-1", file=("big.wav", b"RIFF" + b"\0" * (11 * 2**20)))
    assert too_big.value.status_code == 413 and too_big.value.code == "file_too_large"
    with pytest.raises(openai.BadRequestError) as bad:
        no_worker.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF"), language="en")
    assert bad.value.param == "language"
    started = time.monotonic()
    with pytest.raises(openai.RateLimitError) as limited:
        for _ in range(40):  # each counts against the key's 30 a minute, refused or not
            with contextlib.suppress(openai.BadRequestError):
                no_worker.audio.transcriptions.create(model="whisper-1", file=("a.wav", b"RIFF"), language="en")
    assert int(limited.value.response.headers["Retry-After"]) >= 1 and time.monotonic() - started < 30
