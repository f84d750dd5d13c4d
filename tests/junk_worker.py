"""A junk worker: it speaks the worker protocol as worker_client/worker.py does (registers, beats,
long-polls for jobs with their audio inline, fetches the audio when asked, hands results in with
a Whisper model's name) but transcribes nothing. It hands in junk that the protocol accepts, so
that only the checking of results (pool/verification.py) can stop it:

  fixed   Whisper's best-known hallucination, whatever the clip
  empty   nothing
  random  kana and kanji, about as many as the clip would hold
  other   the text of another clip of the test corpus, of about the same length

By default it waits about as long as Whisper base would before answering (the server strikes a
result that comes faster than any engine could; --delay 0 shows that rule at work).

    python tests/junk_worker.py --server URL --key KEY --mode other [--worker-id ID]
        [--fetch-audio] [--delay S] [--jobs N]

It prints one JSON line per event (registered, claimed, completed, signed off) for tests to read.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
CORPUS = Path(os.environ.get("JPT_CORPUS_DIR", ROOT / "var" / "corpus"))
FIXED = "ご視聴ありがとうございました。"
CHARACTERS = (
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん日本語今明年時間人"
)
MODES = ("fixed", "empty", "random", "other")


def say(event: str, **fields) -> None:
    print(json.dumps({"event": event, **fields}, ensure_ascii=False), flush=True)


def corpus_texts() -> list[tuple[float, str]]:
    """(duration, text) of every corpus clip; none when the corpus is not rendered."""
    manifest = CORPUS / "manifest.json"
    if not manifest.exists():
        return []
    return [(float(c["duration"]), c["text"]) for c in json.loads(manifest.read_text()).values()]


def junk_text(mode: str, duration: float, rng: random.Random, corpus: list[tuple[float, str]]) -> str:
    if mode == "fixed":
        return FIXED
    if mode == "empty":
        return ""
    if mode == "other":
        # The clip of the nearest length that is not this one (its length gives it away).
        others = sorted((abs(d - duration), text) for d, text in corpus if abs(d - duration) > 0.02)
        if others:
            return others[0][1]
    return "".join(rng.choice(CHARACTERS) for _ in range(max(4, int(duration * 5))))


class JunkWorker:
    def __init__(self, args):
        self.args = args
        self.server = args.server.rstrip("/")
        self.worker_id = args.worker_id or f"junk-{uuid.uuid4().hex[:8]}"
        self.session_id = uuid.uuid4().hex
        self.http = requests.Session()
        self.http.headers.update({"Authorization": f"Bearer {args.key}", "User-Agent": "jptranscribe-worker/1.3.0"})
        self.rng = random.Random()
        self.corpus = corpus_texts()
        self.stopping = threading.Event()
        self.holding: dict[str, str] = {}  # lease id -> job id
        self.interval = 20.0

    def post(self, path: str, body: dict, timeout: float = 30) -> requests.Response:
        return self.http.post(self.server + path, json={"worker_id": self.worker_id, **body}, timeout=timeout)

    def heartbeat(self, online: bool = True) -> requests.Response:
        return self.post(
            "/v1/worker/heartbeat",
            {
                "name": "junk",
                "engine": "faster-whisper",
                "model": "whisper-base",
                "version": "1.3.0",
                "status": "online" if online else "offline",
                "session_id": self.session_id,
                "leases": list(self.holding),
                "max_jobs": 1,
            },
        )

    def beat(self) -> None:
        while not self.stopping.wait(self.interval):
            try:
                self.heartbeat()
            except requests.RequestException:
                pass

    def run(self) -> int:
        reply = self.heartbeat()
        if not reply.ok:
            say("refused", status=reply.status_code, answer=reply.text[:500])
            return 2
        self.interval = float(reply.json().get("heartbeat_interval_seconds", 20))
        say("registered", worker_id=self.worker_id, mode=self.args.mode)
        threading.Thread(target=self.beat, daemon=True).start()
        done = 0
        while not self.stopping.is_set() and (not self.args.jobs or done < self.args.jobs):
            try:
                answer = self.post(
                    "/v1/pool/claim",
                    {"wait_seconds": self.args.wait, "inline_audio": not self.args.fetch_audio},
                    timeout=self.args.wait + 15,
                )
            except requests.RequestException as exc:
                say("unreachable", error=str(exc))
                self.stopping.wait(1)
                continue
            if not answer.ok:
                say("claim_refused", status=answer.status_code, answer=answer.text[:500])
                self.stopping.wait(1)
                continue
            job = answer.json()["job"]
            if job is None:
                continue
            self.process(job)
            done += 1
        self.stopping.set()
        self.heartbeat(online=False)
        say("signed_off", jobs=done)
        return 0

    def process(self, job: dict) -> None:
        started = time.monotonic()
        duration = float(job["duration_seconds"])
        say("claimed", job=job["id"], route=job["route"], duration=duration, inline=job["audio_base64"] is not None)
        self.holding[job["lease_id"]] = job["id"]
        try:
            if job["audio_base64"] is None:
                audio = self.http.get(
                    self.server + job["audio_url"],
                    params={"worker_id": self.worker_id, "lease_id": job["lease_id"]},
                    timeout=30,
                )
                say("fetched", job=job["id"], status=audio.status_code, bytes=len(audio.content))
            delay = self.args.delay if self.args.delay is not None else max(1.0, 0.3 * duration)
            time.sleep(max(0.0, delay - (time.monotonic() - started)))
            text = junk_text(self.args.mode, duration, self.rng, self.corpus)
            segments = [{"start": 0.0, "end": duration, "text": text}] if text else []
            body = {
                "lease_id": job["lease_id"],
                "text": text,
                "segments": segments,
                "model": "whisper-base",
                "processing_seconds": round(time.monotonic() - started, 3),
            }
            answer = self.post(f"/v1/pool/jobs/{job['id']}/complete", body)
            say("completed", job=job["id"], status=answer.status_code, text=text, answer=answer.text[:500])
        finally:
            self.holding.pop(job["lease_id"], None)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--server", required=True)
    parser.add_argument("--key", required=True)
    parser.add_argument("--mode", choices=MODES, required=True)
    parser.add_argument("--worker-id")
    parser.add_argument("--fetch-audio", action="store_true", help="claim without inline audio, then fetch it")
    parser.add_argument("--delay", type=float, help="seconds from the claim to the result (default: Whisper-like)")
    parser.add_argument("--jobs", type=int, default=0, help="sign off after this many jobs (0: never)")
    parser.add_argument("--wait", type=float, default=10, help="a claim's long-poll, in seconds")
    args = parser.parse_args(argv)
    worker = JunkWorker(args)
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: worker.stopping.set())
    return worker.run()


if __name__ == "__main__":
    sys.exit(main())
