"""openapi.yaml is generated from the code; the committed copy must match it."""
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent


def test_the_committed_openapi_yaml_is_current(tmp_path):
    generated = tmp_path / "openapi.yaml"
    subprocess.run([sys.executable, "manage.py", "spectacular", "--file", str(generated), "--validate", "--fail-on-warn"],
                   cwd=ROOT, check=True, capture_output=True)
    assert (ROOT / "openapi.yaml").read_text() == generated.read_text(), (
        "openapi.yaml is out of date: run `.venv/bin/python manage.py spectacular --file openapi.yaml`")


@pytest.mark.django_db
def test_it_is_served_and_describes_every_endpoint(anonymous):
    response = anonymous.get("/openapi.yaml")
    assert response.status_code == 200
    spec = yaml.safe_load(response.content)
    assert set(spec["paths"]) == {
        "/v1/keys", "/v1/account", "/v1/health", "/v1/transcribe", "/v1/transcriptions/{job_id}", "/v1/translate",
        "/v1/audio/transcriptions", "/v1/audio/translations", "/v1/transcriptions",
        "/v1/worker/heartbeat", "/v1/pool/claim", "/v1/pool/jobs/{job_id}/audio", "/v1/pool/jobs/{job_id}/complete",
        "/v1/pool/jobs/{job_id}/fail", "/v1/webhook-secret",
    }
    assert spec["components"]["securitySchemes"]["bearerKey"]["scheme"] == "bearer"
    assert spec["components"]["schemas"]["Error"]["properties"]["error"]


def test_the_ids_the_server_makes_match_the_patterns_it_declares():
    import re

    from pool.models import new_job_id, new_lease_id
    from pool.serializers import JOB_ID, LEASE_ID

    for _ in range(200):
        assert re.fullmatch(JOB_ID.strip("^$"), new_job_id())
        assert re.fullmatch(LEASE_ID.strip("^$"), new_lease_id())


@pytest.mark.django_db
@pytest.mark.parametrize("path, body", [
    ("/v1/worker/heartbeat", {"worker_id": "w1", "version": 0}),
    ("/v1/worker/heartbeat", {"worker_id": "w1", "name": ["desk"]}),
    ("/v1/worker/heartbeat", {"worker_id": 1}),
    ("/v1/worker/heartbeat", {"worker_id": " w1"}),
    ("/v1/worker/heartbeat", {"worker_id": "w1\n"}),
    ("/v1/pool/claim", {"worker_id": "w1", "wait_seconds": "0"}),
    ("/v1/pool/claim", {"worker_id": "w1", "wait_seconds": True}),
    ("/v1/pool/claim", {"worker_id": "w1", "inline_audio": 1}),
    ("/v1/pool/jobs/tx_00000000000000000000/fail", {"worker_id": "w1", "lease_id": 5}),
    ("/v1/pool/jobs/tx_00000000000000000000/complete", {"worker_id": "w1", "lease_id": "x", "text": 5}),
    ("/v1/pool/jobs/tx_00000000000000000000/complete",
     {"worker_id": "w1", "lease_id": "x", "text": "", "processing_seconds": "1"}),
    ("/v1/translate", {"text": 5}),
    ("/v1/translate", {"text": "こんにちは。", "target": 0}),
])
def test_a_json_value_of_another_type_than_the_schema_says_is_refused(alice, path, body):
    """DRF would take 0 for a string, "1" for a number and 1 for a boolean; the schema does not."""
    alice.heartbeat("w1")
    response = alice.post(path, body)
    assert response.status_code == 400 and response.json()["error"]["code"] == "invalid_request"
