"""The /docs/ page: endpoints read from the same OpenAPI schema as /openapi.yaml, examples here.

A test fails when an endpoint has no example, so the page cannot fall behind the API.
"""

import functools
import re

from django.conf import settings
from drf_spectacular.generators import SchemaGenerator

from jptranscribe import errors

# (method, path) -> (what it is for, curl with {base} and {key} to fill in)
EXAMPLES = {
    ("POST", "/v1/keys"): (
        "Create a free API key. No key needed. 5 keys per IP per day.",
        "curl -X POST {base}/v1/keys \\\n  -H \"Content-Type: application/json\" \\\n  -d '{{}}'",
    ),
    ("GET", "/v1/account"): (
        "Your workers, pool credits, demos left today and the pool's figures.",
        'curl {base}/v1/account \\\n  -H "Authorization: Bearer {key}"',
    ),
    ("GET", "/v1/health"): (
        "Public status and pool figures. No key needed.",
        "curl {base}/v1/health",
    ),
    ("POST", "/v1/transcribe"): (
        "Upload Japanese audio (WAV, MP3, M4A, FLAC, OGG; up to 10 MB and 90 s) or give a public https URL. "
        "The call waits for the text (up to 120 s), or answers 202 with a status URL; "
        "send `Prefer: respond-async` for 202 at once.",
        'curl -X POST {base}/v1/transcribe \\\n  -H "Authorization: Bearer {key}" \\\n'
        '  -F "file=@sample.wav" \\\n  -F "language=ja" \\\n  -F "translate=true"',
    ),
    ("POST", "/v1/audio/transcriptions"): (
        "OpenAI's transcription call, for OpenAI's SDKs and the programs built on them: the same routing, "
        "credits and limits as `/v1/transcribe`. `response_format` json, text, srt, vtt or verbose_json "
        "(with `timestamp_granularities[]` word and segment).",
        'curl {base}/v1/audio/transcriptions \\\n  -H "Authorization: Bearer {key}" \\\n'
        '  -F "file=@sample.wav" \\\n  -F "model=whisper-1" \\\n  -F "response_format=srt"',
    ),
    ("POST", "/v1/audio/translations"): (
        "OpenAI's translation call: Japanese speech in, English text (or subtitles) out. The audio is "
        "transcribed on the pool and translated on the server.",
        'curl {base}/v1/audio/translations \\\n  -H "Authorization: Bearer {key}" \\\n'
        '  -F "file=@sample.wav" \\\n  -F "model=whisper-1"',
    ),
    ("GET", "/v1/transcriptions"): (
        "Your transcriptions, newest first, 20 a page (`limit` up to 100); pass the answer's `next_after` "
        "as `after` for the next page. Filter with `status`; `include_text=true` adds the text.",
        'curl "{base}/v1/transcriptions?limit=20&status=completed" \\\n  -H "Authorization: Bearer {key}"',
    ),
    ("GET", "/v1/transcriptions/{job_id}"): (
        "A transcription's status and, once done, its result. Only the key that sent the clip sees it.",
        'curl {base}/v1/transcriptions/tx_abc123 \\\n  -H "Authorization: Bearer {key}"',
    ),
    ("POST", "/v1/webhook-secret"): (
        "Make the secret your webhooks are signed with (Standard Webhooks), shown once. Calling it again "
        "makes a new one; the old one keeps signing beside it for 24 h. Then send `webhook_url` with "
        "`/v1/transcribe` or `/v1/audio/transcriptions` to get each transcription's end POSTed to you.",
        'curl -X POST {base}/v1/webhook-secret \\\n  -H "Authorization: Bearer {key}"',
    ),
    ("DELETE", "/v1/transcriptions/{job_id}"): (
        "Cancel a transcription still queued or processing (200; its credits or demo come back), or erase "
        "the text, segments and translation of one that has ended (204). Results are erased anyway "
        f"{settings.JPT_RESULT_RETENTION_DAYS} days after they end.",
        'curl -X DELETE {base}/v1/transcriptions/tx_abc123 \\\n  -H "Authorization: Bearer {key}"',
    ),
    ("POST", "/v1/translate"): (
        "Japanese to English without audio. Always runs on the server, no worker needed.",
        'curl -X POST {base}/v1/translate \\\n  -H "Authorization: Bearer {key}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        '  -d \'{{"text": "今日はいい天気ですね。", "source": "ja", "target": "en"}}\'',
    ),
    ("POST", "/v1/worker/heartbeat"): (
        "Register or refresh a worker (registration lasts ~15 min; online for routing while seen in the last 90 s).",
        'curl -X POST {base}/v1/worker/heartbeat \\\n  -H "Authorization: Bearer {key}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        '  -d \'{{"worker_id": "my-pc", "name": "My PC", "engine": "vosk", "model": "vosk-small-ja"}}\'',
    ),
    ("POST", "/v1/pool/claim"): (
        "Wait up to `wait_seconds` (25 by default, at most 55; the worker client asks 50) for the next "
        "job; answers with a job and its lease, or `null`. With "
        "`inline_audio` a clip of up to 1 MiB comes base64 in `audio_base64` (else fetch `audio_url`).",
        'curl -X POST {base}/v1/pool/claim \\\n  -H "Authorization: Bearer {key}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        '  -d \'{{"worker_id": "my-pc", "wait_seconds": 50, "inline_audio": true}}\'',
    ),
    ("GET", "/v1/pool/jobs/{job_id}/audio"): (
        "The audio of a job this worker holds.",
        'curl -o clip.audio "{base}/v1/pool/jobs/tx_abc123/audio?worker_id=my-pc&lease_id=LEASE" \\\n'
        '  -H "Authorization: Bearer {key}"',
    ),
    ("POST", "/v1/pool/jobs/{job_id}/complete"): (
        "Hand in the text of a job this worker holds. Safe to repeat.",
        'curl -X POST {base}/v1/pool/jobs/tx_abc123/complete \\\n  -H "Authorization: Bearer {key}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        '  -d \'{{"worker_id": "my-pc", "lease_id": "LEASE", "text": "こんにちは", "model": "vosk-small-ja"}}\'',
    ),
    ("POST", "/v1/pool/jobs/{job_id}/fail"): (
        "Give a held job back (it is re-queued at once). Safe to repeat.",
        'curl -X POST {base}/v1/pool/jobs/tx_abc123/fail \\\n  -H "Authorization: Bearer {key}" \\\n'
        '  -H "Content-Type: application/json" \\\n'
        '  -d \'{{"worker_id": "my-pc", "lease_id": "LEASE", "error": "decoder crashed"}}\'',
    ),
}


@functools.lru_cache(maxsize=1)
def api_schema() -> dict:
    """Built from the code once per process: the same document /openapi.yaml serves."""
    return SchemaGenerator().get_schema(request=None, public=True)


def endpoints(base: str, key: str = "jpt_YOUR_KEY") -> list[dict]:
    found = []
    for path, operations in api_schema()["paths"].items():
        for method, operation in operations.items():
            summary, curl = EXAMPLES[(method.upper(), path)]
            found.append(
                {
                    "method": method.upper(),
                    "path": path,
                    "title": operation.get("summary", ""),
                    "summary": summary,
                    "curl": curl.format(base=base, key=key),
                    "public": {} in operation.get("security", [{}]) or not operation.get("security"),
                    "worker": path.startswith(("/v1/pool/", "/v1/worker/")),
                    "anchor": re.sub(r"[^a-z0-9]+", "-", f"{method} {path}".lower()).strip("-"),
                }
            )
    return sorted(found, key=lambda e: (e["worker"], ORDER.index(e["path"]) if e["path"] in ORDER else 99))


ORDER = [
    "/v1/keys",
    "/v1/account",
    "/v1/transcribe",
    "/v1/transcriptions",
    "/v1/transcriptions/{job_id}",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/webhook-secret",
    "/v1/translate",
    "/v1/health",
    "/v1/worker/heartbeat",
    "/v1/pool/claim",
    "/v1/pool/jobs/{job_id}/audio",
    "/v1/pool/jobs/{job_id}/complete",
    "/v1/pool/jobs/{job_id}/fail",
]


def error_table() -> list[dict]:
    return [{"status": status, "code": code, "when": when} for status, code, when in errors.error_table()]
