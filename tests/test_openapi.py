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
        "/v1/worker/heartbeat", "/v1/pool/claim", "/v1/pool/jobs/{job_id}/audio", "/v1/pool/jobs/{job_id}/complete",
        "/v1/pool/jobs/{job_id}/fail",
    }
    assert spec["components"]["securitySchemes"]["bearerKey"]["scheme"] == "bearer"
    assert spec["components"]["schemas"]["Error"]["properties"]["error"]
