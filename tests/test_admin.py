"""Staff moderate through the admin; its actions use the same services as the API."""
import pytest
from django.contrib.admin.models import LogEntry
from django.contrib.admin.utils import quote
from django.contrib.auth.models import User
from django.test import Client
from django.urls import reverse

from accounts.models import CreditEntry
from pool.models import Job, JobAudio, Worker
from tests.helpers import claim_job, grant, online_worker

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff():
    User.objects.create_superuser("ops", "ops@example.com", "a-long-password-1")
    client = Client()
    client.login(username="ops", password="a-long-password-1")
    return client


def act(staff, model, action, pks, **extra):
    return staff.post(f"/admin/{model}/", {"action": action, "_selected_action": pks, **extra}, follow=True)


def test_a_job_whose_id_looks_escaped_opens_from_its_list(staff, alice):
    online_worker(alice)
    alice.transcribe()
    JobAudio.objects.all().delete()  # it refers to the id changed here
    Job.objects.update(id="tx_23" + "0" * 18)  # "_23" is how the admin writes "#"
    listing = staff.get("/admin/pool/job/").content.decode()
    link = reverse("admin:pool_job_change", args=[quote("tx_23" + "0" * 18)])
    assert link in listing
    assert staff.get(link).status_code == 200


def test_the_lists_render(staff, alice):
    online_worker(alice)
    alice.transcribe()
    for path in ["accounts/apikey", "accounts/creditentry", "pool/worker", "pool/job"]:
        assert staff.get(f"/admin/{path}/").status_code == 200, path
    # The admin escapes "_" in ids ("tx_23…" raw would read as "tx#…"): link as its own pages do.
    assert staff.get(reverse("admin:pool_job_change", args=[quote(Job.objects.get().pk)])).status_code == 200


def test_granting_credits_writes_a_ledger_row_with_the_reason(staff, alice):
    response = act(staff, "accounts/apikey", "grant_credits", [alice.key.pk], apply="1", seconds="90",
                   reason="community event")
    assert response.status_code == 200
    entry = CreditEntry.objects.get()
    assert (entry.kind, float(entry.seconds), entry.reason, entry.actor) == ("granted", 90.0, "community event", "ops")
    assert alice.get("/v1/account").json()["credits_seconds"] == 90.0


def test_a_grant_the_credits_rule_refuses_changes_no_key_and_says_why(staff, alice, bob):
    grant(alice, 100)
    grant(bob, 10)
    response = act(staff, "accounts/apikey", "grant_credits", [alice.key.pk, bob.key.pk], apply="1",
                   seconds="-50", reason="abuse")
    assert "at most 10 s can be deducted, not 50 s" in response.content.decode()
    assert alice.get("/v1/account").json()["credits_seconds"] == 100.0, "all the keys or none"
    assert bob.get("/v1/account").json()["credits_seconds"] == 10.0
    response = act(staff, "accounts/apikey", "grant_credits", [alice.key.pk], apply="1", seconds="0", reason="x")
    assert "0 s changes nothing" in response.content.decode()
    assert CreditEntry.objects.filter(actor="ops").count() == 0


def test_revoking_a_key_locks_it_out_of_the_api_at_once(staff, alice):
    assert alice.get("/v1/account").status_code == 200
    act(staff, "accounts/apikey", "revoke", [alice.key.pk])
    assert alice.get("/v1/account").status_code == 401


def test_cancelling_a_job_refunds_its_credits(staff, alice):
    grant(alice, 10)
    job_id = alice.transcribe().json()["id"]
    act(staff, "pool/job", "cancel", [job_id])
    assert Job.objects.get().status == "cancelled"
    assert alice.get("/v1/account").json()["credits_seconds"] == 10.0


def test_an_operators_cancel_reads_like_its_owners_without_naming_the_operator(staff, alice):
    online_worker(alice)
    job_id = alice.transcribe().json()["id"]
    claim_job(alice)
    act(staff, "pool/job", "cancel", [job_id])
    body = alice.get(f"/v1/transcriptions/{job_id}").json()
    assert body["status"] == "cancelled"
    assert body["error"] == {
        "code": "cancelled",
        "message": "Cancelled by an operator.",
        "type": "invalid_request_error",
        "param": None,
    }
    history = LogEntry.objects.get(object_id=job_id)
    assert (history.user.username, history.get_change_message()) == ("ops", "Cancelled")


def said(response):
    """The admin's messages after an action: (level, text) each."""
    return [(message.level_tag, message.message) for message in response.context["messages"]]


def test_requeue_counts_the_jobs_it_put_back_and_says_why_it_left_the_others(staff, alice):
    online_worker(alice)
    held = alice.transcribe().json()["id"]
    claim_job(alice)
    cancelled, checking = alice.transcribe().json()["id"], alice.transcribe().json()["id"]
    act(staff, "pool/job", "cancel", [cancelled])
    Job.objects.filter(pk=checking).update(status="checking")
    response = act(staff, "pool/job", "requeue", [held, cancelled, checking])
    assert said(response) == [
        ("warning", "Re-queued 1 job; 2 were not re-queued (1 cancelled, 1 checking): only a held job can be re-queued.")
    ]
    assert [Job.objects.get(pk=pk).status for pk in (held, cancelled, checking)] == ["queued", "cancelled", "checking"]


def test_an_action_that_changes_nothing_warns_instead_of_reporting_success(staff, alice):
    online_worker(alice)
    job_id = alice.transcribe().json()["id"]
    first = act(staff, "pool/job", "cancel", [job_id])
    assert said(first) == [("success", "Cancelled 1 job.")]
    again = act(staff, "pool/job", "cancel", [job_id])
    assert said(again) == [("warning", "No job was cancelled (1 cancelled): a job that has ended cannot be cancelled.")]
    requeued = act(staff, "pool/job", "requeue", [job_id])
    assert said(requeued) == [("warning", "No job was re-queued (1 cancelled): only a held job can be re-queued.")]
    assert LogEntry.objects.filter(object_id=job_id).count() == 1, "only the cancel that acted is in its history"


def test_banning_a_worker_requeues_its_job(staff, alice):
    online_worker(alice)
    alice.transcribe()
    claim_job(alice)
    from pool.models import Worker

    act(staff, "pool/worker", "ban", [Worker.objects.get().pk])
    assert Job.objects.get().status == "queued"
    assert alice.heartbeat().json()["error"]["code"] == "worker_banned"


def test_the_ledger_cannot_be_edited(staff, alice):
    grant(alice, 5)
    entry = CreditEntry.objects.get()
    staff.post(f"/admin/accounts/creditentry/{entry.pk}/change/", {"seconds": "500"})
    entry.refresh_from_db()
    assert float(entry.seconds) == 5.0


def test_the_key_list_shows_requests_today(staff, alice, bob):
    for _ in range(3):
        assert alice.get("/v1/account").status_code == 200
    page = staff.get("/admin/accounts/apikey/").content.decode()
    row = page[page.index(alice.raw_key[:12]):]
    assert '<td class="field-requests_today">3</td>' in row[:row.index("</tr>")]


def make_rows(n, offset=0):
    from datetime import timedelta

    from django.utils import timezone

    from accounts.models import ApiKey
    from pool.models import Worker

    for i in range(offset, offset + n):
        key, _ = ApiKey.mint()
        worker = Worker.objects.create(key=key, client_id=f"w{i}", expires_at=timezone.now() + timedelta(minutes=15))
        Job.objects.create(key=key, route="pool_self", route_reason="test", duration_seconds=1, audio_format="WAV",
                           worker=worker)
        CreditEntry.objects.create(key=key, kind="granted", seconds=5, reason="test")


@pytest.mark.parametrize("path", ["accounts/apikey", "accounts/creditentry", "pool/worker", "pool/job"])
def test_list_pages_cost_the_same_queries_for_few_rows_or_many(staff, path):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries():
        with CaptureQueriesContext(connection) as captured:
            assert staff.get(f"/admin/{path}/").status_code == 200
        return len(captured)

    make_rows(3)
    few = queries()
    make_rows(40, offset=3)
    assert queries() == few, f"/admin/{path}/ queries per row"


def test_the_worker_list_filters_who_is_online_now(staff, alice, bob):
    from pool.services import worker_heartbeat

    online_worker(alice, "alice-pc")
    worker_heartbeat(key=bob.key, client_id="bob-pc", going_offline=True)
    online = staff.get("/admin/pool/worker/?online=yes").content.decode()
    offline = staff.get("/admin/pool/worker/?online=no").content.decode()
    assert "alice-pc" in online and "bob-pc" not in online
    assert "bob-pc" in offline and "alice-pc" not in offline


@pytest.fixture
def viewer():
    """A staff member who may look at everything and change nothing."""
    from django.contrib.auth.models import Permission

    user = User.objects.create_user("viewer", "viewer@example.com", "a-long-password-2", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__startswith="view_"))
    client = Client()
    client.login(username="viewer", password="a-long-password-2")
    return client


def test_a_staff_member_with_view_permission_only_changes_nothing(viewer, alice, bob):
    grant(alice, 10)
    job_id = alice.transcribe().json()["id"]
    online_worker(bob)
    assert viewer.get("/admin/pool/job/").status_code == 200
    act(viewer, "accounts/apikey", "grant_credits", [alice.key.pk], apply="1", seconds="1000000", reason="mine")
    act(viewer, "accounts/apikey", "revoke", [alice.key.pk])
    act(viewer, "accounts/apikey", "ban_workers", [bob.key.pk])
    act(viewer, "pool/job", "cancel", [job_id])
    act(viewer, "pool/job", "requeue", [job_id])
    act(viewer, "pool/worker", "ban", [Worker.objects.get().pk])
    assert alice.get("/v1/account").json()["credits_seconds"] == 7.0, "3 s held for the queued job, no grant"
    assert Job.objects.get().status == "queued"
    assert bob.heartbeat().status_code == 200, "not banned"


@pytest.mark.parametrize("model", ["pool/job", "accounts/apikey", "pool/worker"])
def test_jobs_keys_and_workers_are_never_deleted_through_the_admin(staff, alice, bob, model):
    grant(alice, 10)
    alice.transcribe()
    online_worker(alice)
    pk = {"pool/job": lambda: Job.objects.get().pk, "accounts/apikey": lambda: bob.key.pk,  # no ledger yet
          "pool/worker": lambda: Worker.objects.get().pk}[model]()
    act(staff, model, "delete_selected", [pk], post="yes")
    assert staff.post(f"/admin/{model}/{quote(pk)}/delete/", {"post": "yes"}).status_code == 403
    assert Job.objects.count() == 1 and Worker.objects.count() == 1
    assert alice.get("/v1/account").status_code == 200 and bob.get("/v1/account").status_code == 200
    assert CreditEntry.objects.filter(kind="reserved").count() == 1


def test_whether_a_key_is_the_servers_is_not_editable(staff, alice):
    page = staff.get(reverse("admin:accounts_apikey_change", args=[alice.key.pk])).content.decode()
    assert 'name="is_server"' not in page
