"""What POST /v1/transcribe accepts, and the error each bad input gets."""
import pytest

from pool.models import Job
from tests.clips import encode, wav_bytes
from tests.helpers import online_worker, upload

pytestmark = pytest.mark.django_db


def error(response):
    return response.status_code, response.json()["error"]["code"]


@pytest.fixture
def alice_online(alice):
    return online_worker(alice)


class TestFields:
    def test_neither_file_nor_url_is_invalid(self, alice_online):
        response = alice_online.client.post("/v1/transcribe", {"language": "ja"}, format="multipart")
        assert error(response) == (400, "invalid_request")
        assert "exactly one of 'file'" in response.json()["error"]["message"]

    def test_both_file_and_url_is_invalid(self, alice_online):
        response = alice_online.transcribe(url="https://example.com/a.wav")
        assert error(response) == (400, "invalid_request")

    def test_only_japanese_is_supported(self, alice_online):
        response = alice_online.transcribe(language="en")
        assert error(response) == (400, "invalid_request")
        assert "'ja'" in response.json()["error"]["message"]

    def test_translate_must_be_a_boolean(self, alice_online):
        assert error(alice_online.transcribe(translate="perhaps")) == (400, "invalid_request")

    @pytest.mark.parametrize("path", ["/v1/transcribe", "/v1/audio/transcriptions"])
    def test_a_field_sent_twice_is_refused_not_one_taken_silently(self, alice_online, path):
        two_files = {"file": [upload(wav_bytes(1)), upload(wav_bytes(2))], "model": "whisper-1"}
        response = alice_online.client.post(path, two_files, format="multipart")
        assert error(response) == (400, "invalid_request") and response.json()["error"]["param"] == "file"
        twice = {"file": upload(wav_bytes(1)), "model": "whisper-1", "language": ["ja", "ja"]}
        response = alice_online.client.post(path, twice, format="multipart")
        assert error(response) == (400, "invalid_request") and response.json()["error"]["param"] == "language"
        assert not Job.objects.exists()

    def test_nothing_is_queued_for_a_bad_request(self, alice_online):
        alice_online.transcribe(language="en")
        assert not Job.objects.exists()


class TestAudio:
    @pytest.mark.parametrize("container,codec,name", [
        ("mp3", "mp3", "a.mp3"), ("flac", "flac", "a.flac"), ("ogg", "libopus", "a.ogg"), ("ipod", "aac", "a.m4a"),
    ])
    def test_it_accepts_the_spec_formats(self, alice_online, container, codec, name):
        response = alice_online.transcribe(file=upload(encode(wav_bytes(2.5), container, codec), name))
        assert response.status_code == 202, response.json()
        assert 2.4 <= response.json()["duration_seconds"] <= 2.7

    def test_duration_is_measured_not_taken_from_the_header(self, alice_online):
        clip = bytearray(wav_bytes(2))
        clip[40:44] = (10**9).to_bytes(4, "little")  # the data chunk claims ~8 hours
        response = alice_online.transcribe(bytes(clip))
        assert response.status_code == 202 and response.json()["duration_seconds"] == 2.0

    @pytest.mark.parametrize("payload", [b"", b"plain text, not audio" * 50, b"\xff\xfb\x90\x00" * 2000])
    def test_it_refuses_what_is_not_audio(self, alice_online, payload):
        response = alice_online.transcribe(payload)
        assert error(response) == (400, "invalid_audio")

    def test_a_corrupt_mp3_is_invalid_audio_not_an_empty_transcript(self, alice_online):
        mp3 = encode(wav_bytes(2), "mp3", "mp3")
        corrupt = mp3[:200] + bytes(len(mp3) - 200)
        assert error(alice_online.transcribe(corrupt, file=upload(corrupt, "a.mp3"))) == (400, "invalid_audio")
        assert not Job.objects.exists()

    def test_a_wav_with_no_samples_is_invalid_audio(self, alice_online):
        assert error(alice_online.transcribe(wav_bytes(0))) == (400, "invalid_audio")

    def test_an_unsupported_container_is_invalid_audio(self, alice_online):
        webm = encode(wav_bytes(1), "webm", "libopus")
        response = alice_online.transcribe(file=upload(webm, "a.webm"))
        assert error(response) == (400, "invalid_audio")
        assert "WAV, MP3, M4A, FLAC or OGG" in response.json()["error"]["message"]

    def test_a_clip_over_90_seconds_is_refused_naming_the_limit(self, alice_online):
        response = alice_online.transcribe(wav_bytes(91, rate=8000))
        assert error(response) == (400, "invalid_request")
        assert "90 s" in response.json()["error"]["message"]

    def test_a_90_second_clip_is_accepted(self, alice_online):
        assert alice_online.transcribe(wav_bytes(90, rate=8000)).status_code == 202


class TestSize:
    def test_an_upload_over_10_mb_is_413(self, alice_online):
        big = wav_bytes(1) + b"\0" * (10 * 1024 * 1024)
        response = alice_online.transcribe(big)
        assert error(response) == (413, "file_too_large")
        assert "10 MB" in response.json()["error"]["message"]

    def test_a_file_one_byte_over_the_limit_is_refused_while_streaming(self, alice_online, settings):
        """The body fits the framing allowance, so only the streaming count can catch it."""
        settings.JPT_MAX_UPLOAD_BYTES = 100_000
        response = alice_online.transcribe(b"\0" * 100_001)
        assert error(response) == (413, "file_too_large")

    def test_a_declared_oversized_body_is_refused_before_reading(self, alice_online, settings):
        settings.JPT_MAX_UPLOAD_BYTES = 100_000
        response = alice_online.transcribe(b"\0" * 300_000)
        assert error(response) == (413, "file_too_large")


@pytest.mark.django_db
def test_audio_whose_header_understates_it_or_with_an_odd_layout_is_invalid_audio(alice, demo_worker):
    from tests.worker_client.test_audio_probe import _flac_declaring, _wav, _wav_understating

    for data, name in (
        (_flac_declaring(1.0, 3.0), "clip.flac"),
        (_wav(1.0, rate=4000), "clip.wav"),
        (_wav_understating(2.0, 60.0, field="data"), "data-chunk-says-2s.wav"),  # was 202, 2 s, the demo's
        (_wav_understating(2.0, 60.0, field="RIFF"), "riff-says-2s.wav"),
    ):
        response = alice.transcribe(data, file=upload(data, name))
        assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_audio", name
        assert response.json()["error"]["param"] == "file"
    assert not Job.objects.exists()
