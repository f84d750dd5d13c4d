"""The pages in a real browser (Playwright driving Debian's Chromium) against the real server.

Screenshots of every page at desktop and phone width land in var/screenshots/ for review.
"""
import functools
import http.server
import os
import re
import threading
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from tests.live import ROOT, LiveServer
from tests.speech.cer import character_error_rate
from tests.speech.corpus import load_corpus
from tests.workers import WorkerProcess
from worker_client import models

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("JPT_CHROMIUM", "/usr/bin/chromium")
SHOTS = ROOT / "var" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
PAGES = {"home": "/", "get-key": "/get-key/", "worker": "/worker/", "status": "/status/", "docs": "/docs/"}
KEYS_PER_DAY = 3


@pytest.fixture(scope="module")
def chromium():
    if not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM}: `apt-get install chromium` (bin/test does it as root)"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    # The microphone is a fake device that plays a clip of the corpus, so recording is real too.
    microphone = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                  f"--use-file-for-fake-audio-capture={short_clips()[0]['path']}"]
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--headless", "--no-sandbox", "--disable-gpu", *microphone])
        yield browser
        browser.close()


@pytest.fixture(scope="module")
def server():
    env = {"JPT_KEYS_PER_IP_PER_DAY": str(KEYS_PER_DAY), "JPT_RATE_USER": "1000/m",
           "JPT_HEARTBEAT_INTERVAL_SECONDS": "1", "JPT_WAKEUP_POLL_SECONDS": "1"}
    with LiveServer(database_url=None, workers=1, env=env) as live:
        yield live


@pytest.fixture
def page(chromium):
    context = chromium.new_context(viewport=DESKTOP)
    page = context.new_page()
    yield page
    context.close()


def test_a_visitor_mints_a_key_and_uses_it_from_a_program(server, page):
    page.goto(server.url + "/get-key/")
    page.get_by_role("button", name="Mint a key").click()
    page.locator("#minted").wait_for(state="visible")
    raw_key = page.locator("#minted-key").inner_text().strip()
    assert re.fullmatch(r"jpt_[A-Za-z0-9]{40}", raw_key)
    assert page.get_by_text("shown this once").is_visible()
    assert page.locator("#next-worker").inner_text().count(raw_key) == 1
    page.screenshot(path=str(screenshot_path("get-key-minted", "desktop")), full_page=True)

    account = requests.get(server.url + "/v1/account", headers={"Authorization": f"Bearer {raw_key}"}, timeout=10)
    assert account.status_code == 200 and account.json()["key_prefix"] == raw_key[:12]

    page.reload()
    assert raw_key not in page.content()


def test_the_daily_key_limit_is_explained_when_hit(server, page):
    page.goto(server.url + "/get-key/")
    button = page.get_by_role("button", name="Mint a key")
    for _ in range(KEYS_PER_DAY):  # the previous test minted one: this runs past the limit
        button.click()
        expect(button).to_be_enabled()
    error = page.locator("#mint-error")
    error.wait_for(state="visible")
    assert f"{KEYS_PER_DAY} new keys per IP per day" in error.inner_text()
    assert "so that keys stay free for everyone" in error.inner_text()


def test_the_status_page_shows_a_worker_come_online_without_reloading(server, page):
    page.goto(server.url + "/status/")
    online = page.locator("#workers-online")
    assert online.inner_text() == "0"
    page.evaluate("window.notReloaded = true")

    key = server.db_key()
    beat = requests.post(server.url + "/v1/worker/heartbeat", json={"worker_id": "status-test"},
                         headers={"Authorization": f"Bearer {key}"}, timeout=10)
    assert beat.status_code == 200
    expect(online).to_have_text("1", timeout=20_000)
    assert page.evaluate("window.notReloaded") is True
    assert page.locator("#chart svg rect").count() == 24
    requests.post(server.url + "/v1/worker/heartbeat", json={"worker_id": "status-test", "status": "offline"},
                  headers={"Authorization": f"Bearer {key}"}, timeout=10)


@pytest.fixture(scope="module")
def demo_worker(server, tmp_path_factory):
    models_dir = tmp_path_factory.mktemp("models")
    models.fetch("whisper-base", models_dir, offline_only=True)
    worker = WorkerProcess(server.url, server.db_key(is_server=True), models_dir, "server-demo")
    worker.wait_for("accepted by the server")
    yield worker
    worker.stop()


def short_clips():
    corpus = load_corpus()
    return sorted((clip for clip in corpus.values() if clip["duration"] <= 10), key=lambda c: c["duration"])


def test_the_try_it_form_returns_japanese_text_for_a_real_clip(server, page, demo_worker):
    clips = short_clips()
    page.goto(server.url + "/")
    page.locator("#demos-left").filter(has_text="3 demos left").wait_for()
    for used, clip in enumerate(clips[:2], start=1):
        page.set_input_files("#try-file", str(clip["path"]))
        page.get_by_role("button", name="Transcribe").click()
        page.locator("#try-status.success, #try-status.error").wait_for(timeout=90_000)
        assert page.locator("#try-status").get_attribute("class") == "success", page.locator("#try-status").inner_text()
        text = page.locator("#try-text").inner_text()
        assert character_error_rate(clip["text"], text) < 0.25, (clip["text"], text)
        # The result as subtitle files, through the browser proxy with this visitor's session.
        job_id = page.locator("#try-meta").inner_text().rsplit(" · ", 1)[-1]
        for fmt, first_line in [("srt", "1"), ("vtt", "WEBVTT")]:
            link = page.get_by_role("link", name=f".{fmt}")
            assert link.is_visible() and link.get_attribute("download") == f"{job_id}.{fmt}"
            download = page.context.request.get(server.url + link.get_attribute("href"))
            assert download.ok and download.text().splitlines()[0] == first_line, download.text()
            assert "".join(download.text().split()).find(text[:3]) >= 0
        assert "server demo" in page.locator("#try-meta").inner_text().lower()
        # No translation model on this machine: the page says why instead of failing.
        assert "translation" in page.locator("#try-translation").inner_text().lower()
        page.locator("#demos-left").filter(has_text=f"{3 - used} demo").wait_for()

    # The third from the microphone: the browser records, turns it into WAV and sends that.
    spoken = clips[0]
    page.get_by_role("button", name="Record from microphone").click()
    page.get_by_text("Recording…").wait_for()
    time.sleep(spoken["duration"] + 0.5)
    page.get_by_role("button", name="Stop recording").click()
    page.get_by_text("Press Transcribe to send it").wait_for(timeout=10_000)
    page.get_by_role("button", name="Transcribe").click()
    page.locator("#try-status.success, #try-status.error").wait_for(timeout=90_000)
    assert page.locator("#try-status").get_attribute("class") == "success", page.locator("#try-status").inner_text()
    heard = page.locator("#try-text").inner_text()
    # The fake device loops the clip from wherever it is: most of the sentence must be there.
    assert character_error_rate(spoken["text"], heard[:len(spoken["text"]) + 4]) < 0.6, (spoken["text"], heard)
    page.locator("#demos-left").filter(has_text="0 demos left").wait_for()

    page.set_input_files("#try-file", str(clips[0]["path"]))
    page.get_by_role("button", name="Transcribe").click()
    status = page.locator("#try-status.error")
    status.wait_for(timeout=30_000)
    assert "free server demos for today are used" in status.inner_text()
    assert status.get_by_role("link", name="Run a worker").is_visible()


def test_staff_grant_credits_and_revoke_a_key_in_the_admin(server, page):
    server.manage("shell", "-c", "from django.contrib.auth.models import User; "
                                 "User.objects.create_superuser('ops', 'ops@example.com', 'a-long-password-1')")
    key = server.db_key()
    api = {"Authorization": f"Bearer {key}"}

    page.goto(server.url + "/admin/login/")
    page.fill("#id_username", "ops")
    page.fill("#id_password", "a-long-password-1")
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url("**/admin/")

    def act(action):
        page.goto(f"{server.url}/admin/accounts/apikey/?q={key[:12]}")
        page.locator("input.action-select").first.check()
        page.select_option("select[name=action]", action)
        page.get_by_role("button", name="Go").click()

    act("grant_credits")
    page.fill("#id_seconds", "120")
    page.fill("#id_reason", "welcome to the pool")
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("Credits changed for 1 keys").wait_for()
    assert requests.get(server.url + "/v1/account", headers=api, timeout=10).json()["credits_seconds"] == 120.0

    act("revoke")
    page.get_by_text("Revoked 1 keys").wait_for()
    refused = requests.get(server.url + "/v1/account", headers=api, timeout=10)
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "unauthorized"
    page.screenshot(path=str(screenshot_path("admin-keys", "desktop")), full_page=True)


def screenshot_path(name, size) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / f"{name}-{size}.png"


@pytest.mark.parametrize("size", ["desktop", "phone"])
def test_every_page_fits_the_screen_and_is_saved_for_review(server, chromium, size):
    context = chromium.new_context(viewport=DESKTOP if size == "desktop" else PHONE,
                                   is_mobile=size == "phone", has_touch=size == "phone")
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    # A Content-Security-Policy refusal is only a console error: count those too.
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    for name, path in PAGES.items():
        page.goto(server.url + path)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= page.viewport_size["width"], f"{path} scrolls sideways at {size} width ({width} px)"
        page.screenshot(path=str(screenshot_path(name, size)), full_page=True)
    context.close()
    assert errors == []


def test_pages_read_without_javascript(server, chromium):
    context = chromium.new_context(viewport=PHONE, java_script_enabled=False)
    page = context.new_page()
    for path, says in [("/", "Quick start"), ("/worker/", "How credits work"), ("/status/", "workers online"),
                       ("/docs/", "Error codes"), ("/get-key/", "Mint a key")]:
        page.goto(server.url + path)
        assert page.get_by_text(says).first.is_visible(), path
    page.goto(server.url + "/status/")
    assert page.locator("#chart svg rect").count() == 24
    context.close()


def test_a_clips_webvtt_subtitles_play_along_in_a_browser(server, page, tmp_path):
    """A corpus clip and the WebVTT the API makes of its transcription: Chromium's own WebVTT
    parser reads the file, and the active cue changes as the clip plays."""
    clip = load_corpus()["long40"]
    sentences = re.findall(r"[^。]+。", clip["text"])
    length, t = clip["duration"] - 0.6, 0.3
    segments = []
    for sentence in sentences:
        spoken = length * len(sentence) / len(clip["text"])
        segments.append({"start": round(t, 3), "end": round(t + spoken, 3), "text": sentence})
        t += spoken

    # A key holder's own worker "transcribes" the clip with these segments.
    key = server.db_key()
    api = {"Authorization": f"Bearer {key}"}
    worker = {"worker_id": "subtitles-test"}
    assert requests.post(server.url + "/v1/worker/heartbeat", json=worker, headers=api, timeout=10).ok
    try:
        job_id = server.transcribe(key, clip["path"].read_bytes(), wait=False).json()["id"]
        job = requests.post(server.url + "/v1/pool/claim", json={**worker, "wait_seconds": 10}, headers=api,
                            timeout=30).json()["job"]
        assert job["id"] == job_id
        done = requests.post(f"{server.url}/v1/pool/jobs/{job_id}/complete", headers=api, timeout=10, json={
            **worker, "lease_id": job["lease_id"], "text": clip["text"], "model": "test", "segments": segments})
        assert done.ok, done.text
    finally:
        requests.post(server.url + "/v1/worker/heartbeat", json={**worker, "status": "offline"}, headers=api,
                      timeout=10)
    vtt = requests.get(f"{server.url}/v1/transcriptions/{job_id}", headers={**api, "Accept": "text/vtt"}, timeout=10)
    assert vtt.headers["Content-Type"] == "text/vtt; charset=utf-8"
    cue_texts = [block.split("\n", 1)[1].strip() for block in vtt.text.split("\n\n")[1:]]
    assert len(cue_texts) >= 3

    # A tiny page beside the clip and its subtitles, served from a folder.
    (tmp_path / "clip.wav").write_bytes(clip["path"].read_bytes())
    (tmp_path / "clip.vtt").write_text(vtt.text, encoding="utf-8")
    (tmp_path / "index.html").write_text(
        '<!doctype html><meta charset="utf-8"><video id="v" src="clip.wav" preload="auto">'
        '<track default kind="subtitles" srclang="ja" label="日本語" src="clip.vtt"></video>', encoding="utf-8")

    class Quiet(http.server.SimpleHTTPRequestHandler):
        extensions_map = {**http.server.SimpleHTTPRequestHandler.extensions_map,
                          ".vtt": "text/vtt", ".wav": "audio/wav"}

        def log_message(self, *args):
            pass

    files = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(tmp_path)))
    threading.Thread(target=files.serve_forever, daemon=True).start()
    try:
        page.goto(f"http://127.0.0.1:{files.server_port}/index.html")
        page.wait_for_function("document.getElementById('v').textTracks[0].cues?.length > 0", timeout=20_000)
        assert page.evaluate("document.getElementById('v').textTracks[0].cues.length") == len(cue_texts)
        page.evaluate("""() => {
            const video = document.getElementById("v"), track = video.textTracks[0];
            window.seen = [];
            track.mode = "hidden";
            track.addEventListener("cuechange", () => {
                for (const cue of track.activeCues) if (!window.seen.includes(cue.text)) window.seen.push(cue.text);
            });
            video.muted = true;  // muted media may play without a click
            video.playbackRate = 2;
            return video.play();
        }""")
        page.wait_for_function("window.seen.length >= 2", timeout=30_000)
        seen = page.evaluate("window.seen")
        assert seen[:2] == cue_texts[:2]
        assert page.evaluate("document.getElementById('v').currentTime") > 0
    finally:
        files.shutdown()
        files.server_close()
