"""GET /v1/transcriptions/{id} as subtitles or text: `?format=json|srt|vtt|txt`, or the Accept
header's media type (`?format=` wins; json by default)."""
import pytest
import srt
import webvtt

from tests.helpers import claim_job, online_worker

TEXT = "皆さん、見に来てくれてありがとうございます。今日はいい天気ですね。"
SEGMENTS = [
    {"start": 0.2, "end": 2.9, "text": "皆さん、見に来てくれてありがとうございます。",
     "words": [{"word": w, "start": s, "end": e} for w, s, e in [
         ("皆さん、", 0.2, 0.7), ("見", 0.9, 1.0), ("に", 1.0, 1.1), ("来て", 1.1, 1.4), ("くれて", 1.4, 1.8),
         ("ありがとう", 1.8, 2.4), ("ございます。", 2.4, 2.9)]]},
    {"start": 3.3, "end": 4.6, "text": "今日はいい天気ですね。"},
]


@pytest.fixture
def completed(alice):
    """A transcription of alice's, completed by her worker with timed segments."""
    online_worker(alice)
    job_id = alice.transcribe().json()["id"]
    assert alice.complete(claim_job(alice), text=TEXT, segments=SEGMENTS).status_code == 200
    return job_id


def url(job_id, fmt=None):
    return f"/v1/transcriptions/{job_id}" + (f"?format={fmt}" if fmt else "")


@pytest.mark.django_db
class TestFormats:
    def test_srt_is_a_numbered_subtitle_file_shown_inline(self, alice, completed):
        response = alice.get(url(completed, "srt"))
        assert response.status_code == 200
        assert response["Content-Type"] == "application/x-subrip; charset=utf-8"
        assert response["Content-Disposition"] == f'inline; filename="{completed}.srt"'
        subtitles = list(srt.parse(response.content.decode()))
        assert [s.index for s in subtitles] == list(range(1, len(subtitles) + 1))
        assert "".join(s.content.replace("\n", "") for s in subtitles) == TEXT
        assert subtitles[0].start.total_seconds() == 0.2
        assert subtitles[-1].end.total_seconds() <= 3.0  # the test clip's length

    def test_vtt_is_webvtt(self, alice, completed):
        response = alice.get(url(completed, "vtt"))
        assert response.status_code == 200
        assert response["Content-Type"] == "text/vtt; charset=utf-8"
        assert response["Content-Disposition"] == f'inline; filename="{completed}.vtt"'
        body = response.content.decode()
        assert body.startswith("WEBVTT\n\n")
        captions = webvtt.from_string(body, strict=True).captions
        assert "".join(c.text.replace("\n", "") for c in captions) == TEXT

    def test_txt_is_the_text(self, alice, completed):
        response = alice.get(url(completed, "txt"))
        assert response.status_code == 200
        assert response["Content-Type"] == "text/plain; charset=utf-8"
        assert response["Content-Disposition"] == f'inline; filename="{completed}.txt"'
        assert response.content.decode() == TEXT + "\n"

    def test_json_stays_the_default(self, alice, completed):
        for response in (alice.get(url(completed)), alice.get(url(completed, "json")),
                         alice.get(url(completed), HTTP_ACCEPT="*/*")):
            assert response.status_code == 200
            assert response["Content-Type"] == "application/json"
            assert response.json()["text"] == TEXT

    @pytest.mark.parametrize("accept, fmt", [
        ("application/x-subrip", "srt"),
        ("text/vtt", "vtt"),
        ("text/plain", "txt"),
        ("application/json", "json"),
        ("text/vtt;q=0.5, application/x-subrip", "srt"),
        ("text/html, text/vtt;q=0.9, */*;q=0.8", "vtt"),
        ("text/html", "json"),
    ])
    def test_the_accept_header_chooses_when_format_is_not_given(self, alice, completed, accept, fmt):
        response = alice.get(url(completed), HTTP_ACCEPT=accept)
        assert response.status_code == 200
        assert response["Content-Type"].split(";")[0] == {
            "srt": "application/x-subrip", "vtt": "text/vtt", "txt": "text/plain", "json": "application/json"}[fmt]
        assert "Accept" in response["Vary"]
        if fmt != "json":
            assert response.content == alice.get(url(completed, fmt)).content

    def test_format_wins_over_accept(self, alice, completed):
        response = alice.get(url(completed, "json"), HTTP_ACCEPT="text/vtt")
        assert response["Content-Type"] == "application/json" and response.json()["id"] == completed
        response = alice.get(url(completed, "srt"), HTTP_ACCEPT="text/vtt")
        assert response["Content-Type"].startswith("application/x-subrip")


@pytest.mark.django_db
class TestRefusals:
    def test_an_unknown_format_is_an_invalid_request_naming_format(self, alice, completed):
        response = alice.get(url(completed, "docx"))
        assert response.status_code == 400
        error = response.json()["error"]
        assert error["code"] == "invalid_request" and error["param"] == "format"
        assert "'docx'" in error["message"] and "srt" in error["message"]

    @pytest.mark.parametrize("fmt", ["srt", "vtt", "txt"])
    def test_subtitles_wait_for_the_transcription_to_complete(self, alice, fmt):
        online_worker(alice)
        job_id = alice.transcribe().json()["id"]
        queued = alice.get(url(job_id, fmt))
        assert queued.status_code == 400 and queued["Content-Type"] == "application/json"
        assert queued.json()["error"]["code"] == "invalid_request"
        assert "not completed yet (status: queued)" in queued.json()["error"]["message"]
        claim_job(alice)
        processing = alice.get(url(job_id), HTTP_ACCEPT="text/vtt")
        assert processing.status_code == 400
        assert "status: processing" in processing.json()["error"]["message"]
        assert alice.get(url(job_id)).json()["status"] == "processing"  # json still says it

    def test_a_failed_transcription_has_no_subtitles(self, alice, settings):
        settings.JPT_MAX_ATTEMPTS = 1
        online_worker(alice)
        job_id = alice.transcribe().json()["id"]
        alice.fail(claim_job(alice))
        response = alice.get(url(job_id, "srt"))
        assert response.status_code == 400
        assert "status: failed" in response.json()["error"]["message"]

    def test_others_get_a_json_404_whatever_they_accept(self, bob, completed):
        response = bob.get(url(completed), HTTP_ACCEPT="text/vtt")
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
        assert bob.get(url(completed, "srt")).status_code == 404

    def test_errors_are_json_even_when_subtitles_are_accepted(self, anonymous, completed):
        response = anonymous.get(url(completed), HTTP_ACCEPT="application/x-subrip")
        assert response.status_code == 401
        assert response["Content-Type"] == "application/json"
        assert response.json()["error"]["code"] == "unauthorized"


@pytest.mark.django_db
def test_a_transcription_without_segments_is_one_cue_over_the_clip(alice):
    online_worker(alice)
    job_id = alice.transcribe().json()["id"]
    alice.complete(claim_job(alice), text="今日はいい天気ですね。")
    body = alice.get(url(job_id, "srt")).content.decode()
    assert body == "1\n00:00:00,000 --> 00:00:03,000\n今日はいい天気ですね。\n"
