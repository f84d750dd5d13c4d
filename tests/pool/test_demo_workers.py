"""Each app server's `serve` runs a demo worker under the one server key: on one database the demo
workers of several nodes are as many workers, each with its own jobs, session and sign-off."""
import re

import pytest

from pool.management.commands import serve
from pool.models import Job, Worker
from pool.serializers import WORKER_ID
from pool.workers import key_places
from tests.helpers import Caller, mint_caller

pytestmark = [pytest.mark.django_db, pytest.mark.postgres]


@pytest.fixture(autouse=True)
def _demo_key_file(settings, tmp_path):
    settings.JPT_DEMO_WORKER_KEY_FILE = str(tmp_path / "demo_worker.key")  # one key for every node, as on one host


def node(port):
    """What `serve --port PORT` does for its demo worker: registers it, and the worker's id and
    key as the worker client is started with them."""
    command, env = serve.Command().demo_worker_command(f"http://127.0.0.1:{port}", port)
    worker_id = command[command.index("--worker-id") + 1]
    return worker_id, Caller(env["JPT_KEY"], ip="127.0.0.1")


def test_each_app_servers_demo_worker_has_an_id_of_its_own(monkeypatch):
    monkeypatch.setattr(serve.socket, "gethostname", lambda: "node-a.example")
    assert serve.demo_worker_id(8000) == "server-demo-node-a.example-8000"
    assert serve.demo_worker_id(8001) == "server-demo-node-a.example-8001"
    monkeypatch.setattr(serve.socket, "gethostname", lambda: "ノード b" + "x" * 80)
    long_and_odd = serve.demo_worker_id(8000)
    assert re.fullmatch(WORKER_ID, long_and_odd) and long_and_odd.endswith("-8000"), "still a worker id"


def test_an_operator_may_name_the_demo_worker(settings):
    settings.JPT_DEMO_WORKER_ID = "demo-tokyo-1"
    assert serve.demo_worker_id(8000) == "demo-tokyo-1"
    settings.JPT_DEMO_WORKER_ID = "demo tokyo"
    with pytest.raises(serve.CommandError):
        serve.demo_worker_id(8000)


def test_two_app_servers_demo_workers_each_run_a_job_and_sign_off_alone():
    (first_id, first), (second_id, second) = node(8000), node(8001)
    assert first_id != second_id and first.raw_key == second.raw_key
    server_key = first.key
    assert Worker.objects.filter(key=server_key).count() == 2, "both registered before their API answers"
    for worker_id, demo, session in ((first_id, first, "session-one"), (second_id, second, "session-two")):
        assert demo.heartbeat(worker_id, session_id=session).status_code == 200
    assert key_places(server_key.pk) == 2, "each may have its claim waiting: neither is refused with 429"

    callers = [mint_caller(ip=f"192.0.2.{i}") for i in (1, 2)]
    ids = [caller.transcribe().json()["id"] for caller in callers]
    assert {Job.objects.get(pk=pk).route for pk in ids} == {"server_demo"}
    jobs = [first.claim(first_id).json()["job"], second.claim(second_id).json()["job"]]
    assert None not in jobs, "one demo job each, at once"

    beat = first.heartbeat(first_id, session_id="session-one", leases=[jobs[0]["lease_id"]]).json()
    assert beat["leases_renewed"] == [jobs[0]["lease_id"]], "the other node's session did not take it back"
    assert first.heartbeat(first_id, session_id="session-one", status="offline").status_code == 200
    assert Job.objects.get(pk=jobs[0]["id"]).status == "queued", "what the first held went back"
    assert second.complete(jobs[1], worker_id=second_id).status_code == 200, "the second kept its job"
    assert Worker.objects.online().filter(key=server_key).get().client_id == second_id
    late = mint_caller(ip="192.0.2.3").transcribe()
    assert Job.objects.get(pk=late.json()["id"]).route == "server_demo", "the demo is still online"
