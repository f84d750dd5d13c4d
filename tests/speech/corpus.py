"""The rendered test corpus (tests/speech/render.py writes it; `make test` renders it first)."""
import json
import os
from pathlib import Path

import pytest

CORPUS = Path(os.environ.get("JPT_CORPUS_DIR", Path(__file__).resolve().parent.parent.parent / "var" / "corpus"))


def load_corpus():
    """{id: {"text", "duration", "path"}}; in CI a missing corpus fails, elsewhere it skips."""
    manifest = CORPUS / "manifest.json"
    if not manifest.exists():
        message = "no test speech: run tests/speech/setup_tts.sh && .venv-tts/bin/python tests/speech/render.py"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    clips = json.loads(manifest.read_text())
    return {cid: {**entry, "path": CORPUS / f"{cid}.wav"} for cid, entry in clips.items()}
