"""A key's own transcriptions, newest first, a page at a time; nobody else's."""
import pytest

from pool.models import Job
from tests.helpers import claim_job, online_worker

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


def sent(caller, count):
    return [caller.transcribe().json()["id"] for _ in range(count)]


def test_it_lists_the_keys_jobs_newest_first_a_page_at_a_time(alice):
    online_worker(alice)
    ids = sent(alice, 5)
    first = alice.get("/v1/transcriptions", data={"limit": 2}).json()
    assert [j["id"] for j in first["data"]] == ids[::-1][:2] and first["has_more"] is True
    second = alice.get("/v1/transcriptions", data={"limit": 2, "after": first["next_after"]}).json()
    third = alice.get("/v1/transcriptions", data={"limit": 2, "after": second["next_after"]}).json()
    assert [j["id"] for j in second["data"] + third["data"]] == ids[::-1][2:]
    assert third["has_more"] is False and third["next_after"] is None
    assert first["data"][0]["status_url"].endswith(f"/v1/transcriptions/{ids[-1]}")


def test_it_filters_by_status_and_shows_the_text_only_when_asked(alice):
    online_worker(alice)
    done, waiting = sent(alice, 2)
    alice.complete(claim_job(alice), text="こんにちは。")
    listed = alice.get("/v1/transcriptions", data={"status": "completed"}).json()["data"]
    assert [j["id"] for j in listed] == [done] and "text" not in listed[0] and "translation" not in listed[0]
    with_text = alice.get("/v1/transcriptions", data={"status": "completed", "include_text": "true"}).json()["data"]
    assert with_text[0]["text"] == "こんにちは。" and with_text[0]["translation"] is None  # not asked to translate
    assert [j["id"] for j in alice.get("/v1/transcriptions", data={"status": "queued"}).json()["data"]] == [waiting]


def test_nobody_sees_anothers_jobs_not_even_as_a_cursor(alice, bob):
    online_worker(alice)
    (theirs,) = sent(alice, 1)
    assert bob.get("/v1/transcriptions").json() == {"data": [], "has_more": False, "next_after": None}
    refused = bob.get("/v1/transcriptions", data={"after": theirs})
    assert refused.status_code == 404 and refused.json()["error"]["param"] == "after"


@pytest.mark.parametrize(("query", "param"), [
    ({"limit": 101}, "limit"), ({"limit": 0}, "limit"), ({"status": "done"}, "status"), ({"after": "x"}, "after"),
    ({"status": ""}, "status"),
])
def test_a_bad_query_is_400_naming_it(alice, query, param):
    response = alice.get("/v1/transcriptions", data=query)
    assert response.status_code == 400 and response.json()["error"]["param"] == param
    assert not Job.objects.exists()
