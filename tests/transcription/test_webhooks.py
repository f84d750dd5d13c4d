"""Webhooks: a transcription's end POSTed to the URL its caller named, signed as Standard Webhooks
say, retried until it lands, and never to a private address."""
import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone
from standardwebhooks.webhooks import WebhookVerificationError

from pool import services as pool
from pool.models import Job
from tests.clips import wav_bytes
from tests.helpers import claim_job, online_worker, upload
from tests.receiver import Receiver
from transcription import delivery
from transcription.models import DisabledWebhookUrl, WebhookDelivery
from transcription.urlfetch import webhook_session

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture
def receiver(settings):
    settings.JPT_URL_FETCH_ALLOW_HTTP = True
    settings.JPT_URL_FETCH_ALLOWED_NETWORKS = ["127.0.0.0/8"]
    settings.JPT_WEBHOOK_RETRY_SECONDS = [0, 0, 0, 0]
    with Receiver() as receiving:
        yield receiving


def secret_of(caller):
    made = caller.post("/v1/webhook-secret")
    assert made.status_code == 201, made.json()
    return made.json()["secret"]


def send_due():
    """One turn of the delivery loop, in this thread: open ended transcriptions' events, send what is due."""
    delivery.webhook_events_open()
    session = webhook_session()
    sent = 0
    for due in delivery.webhook_deliveries_take(100):
        delivery.webhook_deliver(due, session)
        sent += 1
    return sent


def make_due_now():
    WebhookDelivery.objects.filter(status="pending").update(next_attempt_at=timezone.now())


def transcribed(caller, receiver, text="こんにちは。", **fields):
    """A transcription with a webhook, done by the caller's own worker."""
    online_worker(caller)
    sent = caller.transcribe(webhook_url=receiver.url, **fields)
    assert sent.status_code == 202, sent.json()
    assert caller.complete(claim_job(caller), text=text).status_code == 200
    return sent.json()["id"]


def test_a_completed_transcription_is_delivered_signed_as_standard_webhooks_say(alice, receiver):
    secret = secret_of(alice)
    assert secret.startswith("whsec_")
    job_id = transcribed(alice, receiver)
    assert send_due() == 1
    (got,) = receiver.deliveries
    event = got.verified(secret)
    assert event["type"] == "transcription.completed"
    assert event["data"]["id"] == job_id and event["data"]["text"] == "こんにちは。"
    assert event["data"]["status"] == "completed" and "webhook" not in event["data"]
    assert got.headers["webhook-id"].startswith("msg_") and got.headers["webhook-timestamp"].isdigit()
    state = alice.get(f"/v1/transcriptions/{job_id}").json()["webhook"]
    assert state == {"status": "delivered", "attempts": 1, "last_status_code": 200, "next_attempt_at": None}
    assert send_due() == 0  # delivered once, and only once


def test_a_receiver_that_fails_twice_gets_the_event_once_under_one_webhook_id(alice, receiver):
    secret = secret_of(alice)
    receiver.answers = [500, 503]
    job_id = transcribed(alice, receiver)
    send_due()
    state = alice.get(f"/v1/transcriptions/{job_id}").json()["webhook"]
    assert state["status"] == "pending" and state["attempts"] == 1 and state["last_status_code"] == 500
    assert state["next_attempt_at"] is not None
    make_due_now()
    send_due()
    make_due_now()
    send_due()
    assert [d.answered for d in receiver.deliveries] == [500, 503, 200]
    assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 1
    assert len({d.body for d in receiver.deliveries}) == 1  # the same event each time
    for got in receiver.deliveries:
        got.verified(secret)
    assert alice.get(f"/v1/transcriptions/{job_id}").json()["webhook"]["status"] == "delivered"


def test_a_retry_waits_as_the_schedule_says_and_honours_retry_after(alice, receiver, settings):
    settings.JPT_WEBHOOK_RETRY_SECONDS = [5, 300, 1800]
    secret_of(alice)
    receiver.answers = [429]
    receiver.headers = {"Retry-After": "120"}
    job_id = transcribed(alice, receiver)
    before = timezone.now()
    send_due()
    due = WebhookDelivery.objects.get(job_id=job_id).next_attempt_at
    assert timedelta(seconds=119) <= due - before <= timedelta(seconds=125)
    assert send_due() == 0  # not due yet


def test_the_backoff_grows_with_jitter_and_gives_up_after_the_last_step(settings):
    settings.JPT_WEBHOOK_RETRY_SECONDS = [5, 300, 1800, 7200]
    assert 4.5 <= delivery.retry_delay(1, None) <= 5.5
    assert 270 <= delivery.retry_delay(2, None) <= 330
    assert delivery.retry_delay(4, None) <= 7920
    assert delivery.retry_delay(5, None) is None
    assert delivery.retry_delay(1, "60") >= 60
    assert delivery.retry_delay(1, "999999") <= 7200  # never past the longest step
    assert delivery.retry_delay(1, "not a date") <= 5.5


def test_every_attempt_failing_gives_the_event_up(alice, receiver, settings):
    settings.JPT_WEBHOOK_RETRY_SECONDS = [0, 0]
    secret_of(alice)
    receiver.answers = [500, 500, 500]
    job_id = transcribed(alice, receiver)
    for _ in range(4):
        make_due_now()
        send_due()
    assert len(receiver.deliveries) == 3
    state = alice.get(f"/v1/transcriptions/{job_id}").json()["webhook"]
    assert state == {"status": "failed", "attempts": 3, "last_status_code": 500, "next_attempt_at": None}


def test_a_410_turns_the_url_off_for_the_key_until_it_is_named_again(alice, receiver):
    secret_of(alice)
    receiver.answers = [410]
    online_worker(alice)
    first = alice.transcribe(webhook_url=receiver.url).json()["id"]
    second = alice.transcribe(webhook_url=receiver.url).json()["id"]
    alice.complete(claim_job(alice))
    send_due()
    assert DisabledWebhookUrl.objects.filter(url=receiver.url).exists()
    assert alice.get(f"/v1/transcriptions/{first}").json()["webhook"]["status"] == "disabled"
    assert alice.get(f"/v1/transcriptions/{second}").json()["webhook"]["status"] == "disabled"
    alice.complete(claim_job(alice))
    assert send_due() == 0 and len(receiver.deliveries) == 1
    third = alice.transcribe(webhook_url=receiver.url).json()["id"]  # named again: on again
    alice.complete(claim_job(alice))
    send_due()
    assert len(receiver.deliveries) == 2 and receiver.deliveries[1].event["data"]["id"] == third


def test_a_webhook_url_on_a_private_address_is_refused_before_anything_is_queued(alice, settings):
    settings.JPT_URL_FETCH_ALLOW_HTTP = True
    secret_of(alice)
    online_worker(alice)
    for url in ("http://127.0.0.1:9/hook", "http://10.0.0.8/hook", "http://[::1]/hook", "http://169.254.169.254/"):
        refused = alice.transcribe(webhook_url=url)
        assert refused.status_code == 400, url
        assert refused.json()["error"]["param"] == "webhook_url"
        assert "private or internal" in refused.json()["error"]["message"]
    settings.JPT_URL_FETCH_ALLOW_HTTP = False
    plain = alice.transcribe(webhook_url="http://example.com/hook")
    assert plain.status_code == 400 and "https" in plain.json()["error"]["message"]
    assert not Job.objects.exists() and not WebhookDelivery.objects.exists()


def test_a_receiver_that_turns_private_after_the_check_gets_nothing(alice, receiver, settings):
    secret_of(alice)
    job_id = transcribed(alice, receiver)
    settings.JPT_URL_FETCH_ALLOWED_NETWORKS = []  # as a name that now resolves inside would
    send_due()
    assert receiver.deliveries == []
    failed = WebhookDelivery.objects.get(job_id=job_id)
    assert failed.status == "pending" and failed.attempts == 1 and "private or internal" in failed.last_error


def test_a_webhook_url_needs_a_signing_secret_first(alice, receiver):
    online_worker(alice)
    refused = alice.transcribe(webhook_url=receiver.url)
    assert refused.status_code == 400
    assert refused.json()["error"]["param"] == "webhook_url"
    assert "POST /v1/webhook-secret" in refused.json()["error"]["message"]
    assert not Job.objects.exists()


def test_web_visitors_share_a_key_and_get_no_webhooks(client, receiver, demo_worker):
    page = client.get("/")
    token = page.cookies["csrftoken"].value
    headers = {"HTTP_X_CSRFTOKEN": token, "HTTP_ORIGIN": "http://testserver", "HTTP_REFERER": "http://testserver/"}
    assert client.post("/api/v1/webhook-secret", **headers).status_code == 404  # not for the pages
    refused = client.post("/api/v1/transcribe", {"file": upload(wav_bytes()), "webhook_url": receiver.url}, **headers)
    assert refused.status_code == 400 and "key of your own" in refused.json()["error"]["message"]
    assert not Job.objects.exists()


def test_a_rotated_secret_signs_beside_the_new_one_for_a_day(alice, receiver):
    old = secret_of(alice)
    new = secret_of(alice)
    assert new != old
    transcribed(alice, receiver)
    send_due()
    (got,) = receiver.deliveries
    assert len(got.headers["webhook-signature"].split(" ")) == 2
    assert got.verified(old) == got.verified(new)
    # A day later only the new one signs.
    from accounts.models import WebhookSecret

    WebhookSecret.objects.update(rotated_at=timezone.now() - timedelta(hours=25))
    transcribed(alice, receiver, text="二回目")
    send_due()
    later = receiver.deliveries[1]
    later.verified(new)
    with pytest.raises(WebhookVerificationError):
        later.verified(old)


def test_a_failed_or_cancelled_transcription_sends_its_own_event(alice, receiver):
    secret = secret_of(alice)
    online_worker(alice)
    failed = alice.transcribe(webhook_url=receiver.url).json()["id"]
    cancelled = alice.transcribe(webhook_url=receiver.url).json()["id"]
    pool.job_cancel(job=Job.objects.get(pk=cancelled), message=pool.CANCELLED_BY_OPERATOR)
    Job.objects.filter(pk=failed).update(status="failed", error="Nobody could.", error_code="internal_error",
                                         finished_at=timezone.now())
    send_due()
    events = {d.verified(secret)["data"]["id"]: d.verified(secret) for d in receiver.deliveries}
    assert events[failed]["type"] == "transcription.failed"
    assert events[failed]["data"]["error"]["code"] == "internal_error"
    assert events[cancelled]["type"] == "transcription.cancelled"
    assert events[cancelled]["data"]["status"] == "cancelled"
    assert events[cancelled]["data"]["error"]["code"] == "cancelled", "an operator's cancel is no error to retry"
    assert events[cancelled]["data"]["status_url"].endswith(f"/v1/transcriptions/{cancelled}")


def test_an_event_over_20_kb_carries_only_id_status_and_status_url(alice, receiver, monkeypatch):
    monkeypatch.setattr(delivery, "MAX_BODY_BYTES", 300)
    secret = secret_of(alice)
    job_id = transcribed(alice, receiver, text="長い文章です。" * 20)
    send_due()
    data = receiver.deliveries[0].verified(secret)["data"]
    assert data == {"id": job_id, "status": "completed", "status_url": f"http://testserver/v1/transcriptions/{job_id}"}


def test_the_answers_and_the_list_show_how_the_delivery_stands(alice, receiver):
    secret_of(alice)
    online_worker(alice)
    sent = alice.transcribe(webhook_url=receiver.url).json()
    assert sent["webhook"] == {"status": "waiting", "attempts": 0, "last_status_code": None, "next_attempt_at": None}
    plain = alice.transcribe().json()
    assert plain["webhook"] is None
    listed = {j["id"]: j["webhook"] for j in alice.get("/v1/transcriptions").json()["data"]}
    assert listed == {sent["id"]: sent["webhook"], plain["id"]: None}


def test_the_openai_call_takes_a_webhook_url_too(alice, receiver):
    secret = secret_of(alice)
    online_worker(alice)
    answer = alice.client.post("/v1/audio/transcriptions", {"file": upload(wav_bytes()), "model": "whisper-1",
                                                            "webhook_url": receiver.url}, format="multipart")
    assert answer.status_code == 202, answer.json()
    alice.complete(claim_job(alice), text="やあ")
    send_due()
    assert receiver.deliveries[0].verified(secret)["data"]["text"] == "やあ"


def test_staff_can_see_deliveries_and_retry_one_now(alice, receiver, admin_client):
    secret_of(alice)
    job_id = transcribed(alice, receiver)
    send_due()
    listed = admin_client.get("/admin/transcription/webhookdelivery/")
    assert listed.status_code == 200 and job_id in listed.content.decode()
    event = WebhookDelivery.objects.get(job_id=job_id)
    done = admin_client.post("/admin/transcription/webhookdelivery/",
                             {"action": "retry_now", "_selected_action": [event.pk]})
    assert done.status_code == 302
    assert send_due() == 1 and len(receiver.deliveries) == 2
    assert receiver.deliveries[1].headers["webhook-id"] == event.pk


@pytest.mark.django_db(transaction=True)
def test_two_delivery_loops_never_take_the_same_event(alice, receiver, settings):
    settings.JPT_RATE_USER = "1000/m"
    secret_of(alice)
    online_worker(alice, max_jobs=4)
    for _ in range(30):
        alice.transcribe(webhook_url=receiver.url)
    for _ in range(30):
        alice.complete(claim_job(alice))
    delivery.webhook_events_open()
    taken: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def take(i):
        start.wait()
        try:
            while batch := delivery.webhook_deliveries_take(3):
                taken[i] += [d.pk for d in batch]
        finally:
            connection.close()

    threads = [threading.Thread(target=take, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(taken[0]) + len(taken[1]) == 30
    assert not set(taken[0]) & set(taken[1])


def test_erasing_a_transcription_erases_its_events_text_too(alice, receiver):
    secret = secret_of(alice)
    sent_first = transcribed(alice, receiver, text="消える文章。")
    send_due()
    receiver.answers = [500]
    waiting = transcribed(alice, receiver, text="これも消える。")
    send_due()  # fails once: its body is stored, to be sent again
    for job_id in (sent_first, waiting):
        assert alice.client.delete(f"/v1/transcriptions/{job_id}").status_code == 204
    assert not WebhookDelivery.objects.filter(body__contains="消える").exists()
    make_due_now()
    send_due()
    retried = receiver.deliveries[-1].verified(secret)
    assert retried["data"]["id"] == waiting and "text" not in retried["data"]
    assert retried["data"]["erased_at"] is not None


def test_a_result_corrected_by_a_later_check_sends_transcription_corrected(alice, bob, receiver, settings):
    from tests.helpers import grant, mint_caller

    carol, dave = mint_caller(ip="192.0.2.33"), mint_caller(ip="192.0.2.44")
    secret = secret_of(alice)
    grant(alice, 30)
    online_worker(bob)
    online_worker(carol)
    online_worker(dave)
    settings.JPT_SPOT_CHECK_MIN_RATE = 1.0
    job_id = alice.transcribe(webhook_url=receiver.url).json()["id"]
    bob.complete(claim_job(bob), text="ハッキング")
    settings.JPT_SPOT_CHECK_MIN_RATE = 0
    send_due()
    assert receiver.deliveries[0].verified(secret)["data"]["text"] == "ハッキング"
    for checker in (carol, dave):
        checker.complete(claim_job(checker), text="今日はいい天気ですね。")
    send_due()
    corrected = receiver.deliveries[1].verified(secret)
    assert corrected["type"] == "transcription.corrected" and corrected["data"]["id"] == job_id
    assert corrected["data"]["text"] == "今日はいい天気ですね。"
    assert corrected["data"]["verification"] == {"status": "corrected", "agreeing_workers": 2}
    assert send_due() == 0, "one correction event"


def spot_checked_and_outvoted(alice, bob, receiver, settings, *, checkers):
    """Alice's clip, run by Bob's trusted worker (junk), delivered, spot-checked and outvoted by
    `checkers`: the transcription is corrected. Returns its id."""
    from tests.helpers import grant

    grant(alice, 30)
    online_worker(bob)
    for checker in checkers:
        online_worker(checker)
    settings.JPT_SPOT_CHECK_MIN_RATE = 1.0
    job_id = alice.transcribe(webhook_url=receiver.url).json()["id"]
    bob.complete(claim_job(bob), text="ハッキング")
    settings.JPT_SPOT_CHECK_MIN_RATE = 0
    return job_id


def test_a_correction_waits_for_the_event_it_corrects_so_the_receiver_ends_with_the_right_text(
    alice, bob, receiver, settings
):
    from tests.helpers import mint_caller

    carol, dave = mint_caller(ip="192.0.2.33"), mint_caller(ip="192.0.2.44")
    secret = secret_of(alice)
    job_id = spot_checked_and_outvoted(alice, bob, receiver, settings, checkers=(carol, dave))
    settings.JPT_WEBHOOK_RETRY_SECONDS = [300]
    receiver.answers = [500]
    send_due()  # the completed event fails once: it is retried in 5 minutes, with the text it had
    for checker in (carol, dave):
        checker.complete(claim_job(checker), text="今日はいい天気ですね。")
    assert send_due() == 0, "the correction is not sent before the event it corrects"
    make_due_now()
    send_due()
    send_due()
    events = [d.verified(secret) for d in receiver.deliveries]
    assert [e["type"] for e in events] == [
        "transcription.completed",
        "transcription.completed",
        "transcription.corrected",
    ]
    assert events[-1]["data"]["id"] == job_id and events[-1]["data"]["text"] == "今日はいい天気ですね。"


def test_a_correction_is_not_sent_to_a_url_turned_off_since(alice, bob, receiver, settings):
    from tests.helpers import mint_caller

    carol, dave = mint_caller(ip="192.0.2.33"), mint_caller(ip="192.0.2.44")
    secret_of(alice)
    spot_checked_and_outvoted(alice, bob, receiver, settings, checkers=(carol, dave))
    send_due()  # delivered
    online_worker(alice)
    receiver.answers = [410]
    alice.transcribe(webhook_url=receiver.url)
    alice.complete(claim_job(alice))
    send_due()  # 410 Gone: the URL is off for Alice's key
    assert DisabledWebhookUrl.objects.filter(url=receiver.url).exists()
    for checker in (carol, dave):
        checker.complete(claim_job(checker), text="今日はいい天気ですね。")
    assert send_due() == 0
    assert len(receiver.deliveries) == 2
