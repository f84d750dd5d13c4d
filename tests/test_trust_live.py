"""Strangers' results are checked, with real processes: the server (gunicorn, on PostgreSQL when
DATABASE_URL is set), honest workers running Whisper base, and junk workers (tests/junk_worker.py)
that speak the protocol well enough that only the checking of results stops them.

One story, told once (the `story` fixture, about a minute), then examined by each test:

1. A junk key an operator wrongly trusted takes a caller's clip: its text (another clip's) is
   delivered at once, as a trusted key's is, and spot-checked (the server spot-checks all here).
2. A new junk key takes three clips (a fixed text; nothing, from audio it fetched; random
   characters, answered at once): all are held, the instant one is struck on arrival.
3. An honest new key's worker (Whisper base) comes online alone and takes a clip: held too.
   Then two trusted honest keys' workers come and check everything (the server runs no demo
   worker): they outvote the junk, correct the spot-checked clip, confirm the new key's.
4. The new junk key, now quarantined, runs a worker again while the caller sends three more
   clips: the honest workers do them all, and each result is checked by two.
5. The honest workers sign off and the caller sends one more: the quarantined key's worker,
   alone, does not get it.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.live import ROOT, LiveServer
from tests.speech.cer import character_error_rate
from tests.workers import WorkerProcess

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

ENV = {
    "JPT_RATE_USER": "10000/m",
    # Every trusted result is spot-checked, so every answer of honest workers ends up checked.
    "JPT_SPOT_CHECK_MIN_RATE": "1",
    # Checks go to trusted keys only (not to the new honest key too after 30 s): who checks what
    # does not depend on how fast this machine is.
    "JPT_CHECKS_OPEN_SECONDS": "3600",
    # No engine answers faster than this (Whisper base here: 0.5 s or more per second of audio);
    # ten times the default floor, so that an instant answer is caught however loaded the machine.
    "JPT_MIN_SECONDS_PER_AUDIO_SECOND": "0.1",
    "JPT_HEARTBEAT_INTERVAL_SECONDS": "2",
    "JPT_WAKEUP_POLL_SECONDS": "1",
    "JPT_MAINTENANCE_INTERVAL_SECONDS": "0.5",
}
CREDITS = 600.0
SPOT_CHECKED = "thanks"  # taken by the wrongly trusted junk key
HELD = {"train": "fixed", "news": "empty", "numbers": "random"}  # taken by the new junk key
NEW_HONEST = "greet"  # taken by the honest new key
HONEST_ONLY = ("economy", "travel", "science")  # after the junk key is quarantined
LEFT_FOR_THE_QUARANTINED = "weather"  # sent when only the quarantined key's worker is online


class JunkProcess:
    """tests/junk_worker.py in its own process; its JSON lines are its events."""

    def __init__(self, server, key, mode, worker_id, *extra):
        self.log_path = Path(tempfile.mkstemp(prefix="jpt-junk-", suffix=".log")[1])
        self.proc = subprocess.Popen(
            [sys.executable, "tests/junk_worker.py", "--server", server.url, "--key", key, "--mode", mode,
             "--worker-id", worker_id, "--wait", "2", *extra],
            cwd=ROOT, stdout=open(self.log_path, "w"), stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def events(self, kind=None):
        lines = [json.loads(line) for line in self.log_path.read_text().splitlines() if line.startswith("{")]
        return [e for e in lines if kind is None or e["event"] == kind]

    def wait_for(self, kind, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.events(kind):
                return self.events(kind)
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"the junk worker never said {kind!r}:\n{self.log_path.read_text()}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class Watcher:
    """Reads the caller's transcriptions over and over, keeping every different answer it saw."""

    def __init__(self, server, key):
        self.server, self.key = server, key
        self.seen: dict[str, list[dict]] = {}
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def watch(self, job_id):
        self.seen.setdefault(job_id, [])

    def read(self, job_id):
        body = self.server.get(f"/v1/transcriptions/{job_id}", self.key).json()
        answers = self.seen.setdefault(job_id, [])
        if not answers or answers[-1] != body:
            answers.append(body)
        return body

    def run(self):
        while not self.stopping.wait(0.2):
            for job_id in list(self.seen):
                self.read(job_id)

    def wait_until(self, job_id, done, timeout=180):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            body = self.read(job_id)
            if done(body):
                return body
            time.sleep(0.2)
        raise AssertionError(f"{job_id} never got there: {body}")

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=10)


@dataclass
class Story:
    clips: dict  # job id -> corpus clip id
    seen: dict  # job id -> every different answer the caller saw
    final: dict  # job id -> the caller's last answer
    accounts: dict  # name -> /v1/account
    trust: dict  # name -> {"level", "strikes": [reasons]}
    junk: dict  # name -> JunkProcess
    honest: dict  # name -> WorkerProcess
    shown: dict = field(default_factory=dict)  # moments of the story as the caller or an operator saw them

    def job(self, clip_id):
        return next(job_id for job_id, clip in self.clips.items() if clip == clip_id)

    def junk_texts(self):
        return {e["text"] for process in self.junk.values() for e in process.events("completed")}


# Each key's level and strikes, read in the server's database.
FACTS = """
import json
from accounts.services import key_resolve
from pool.models import Strike
from pool.verification import trust_of
out = {}
for name, raw in json.loads(KEYS).items():
    key = key_resolve(raw)
    reasons = list(Strike.objects.filter(key=key).order_by("created_at").values_list("reason", flat=True))
    out[name] = {"level": trust_of(key.pk).level, "strikes": reasons}
print(json.dumps(out))
"""


def mint_keys(server, *names):
    made = f"from accounts.models import ApiKey; print(' '.join(ApiKey.mint()[1] for _ in range({len(names)})))"
    return dict(zip(names, server.manage("shell", "-c", made).stdout.strip().splitlines()[-1].split(), strict=True))


def key_facts(server, keys):
    script = FACTS.replace("KEYS", repr(json.dumps(keys)))
    return json.loads(server.manage("shell", "-c", script).stdout.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def story(corpus, models_dir):
    started = time.monotonic()
    processes = []
    with LiveServer(database_url=os.environ.get("DATABASE_URL"), workers=2, env=ENV) as server:
        keys = mint_keys(server, "caller", "trusted_junk", "new_junk", "honest_a", "honest_b", "honest_new")
        server.manage("credits", "grant", keys["caller"], str(CREDITS), "--reason", "test")
        for name in ("honest_a", "honest_b", "trusted_junk"):  # the last one by mistake
            server.manage("trust", "grant", keys[name][:12])
        watcher = Watcher(server, keys["caller"])
        clips, junk, honest, shown = {}, {}, {}, {}

        def send(clip_id):
            response = server.transcribe(keys["caller"], corpus[clip_id]["path"].read_bytes(), wait=False)
            assert response.status_code == 202, response.text
            clips[response.json()["id"]] = clip_id
            watcher.watch(response.json()["id"])
            return response.json()["id"]

        def run_junk(name, key, mode, *extra):
            process = junk[name] = JunkProcess(server, keys[key], mode, name, "--jobs", "1", *extra)
            processes.append(process)
            assert process.proc.wait(timeout=60) == 0, process.log_path.read_text()

        try:
            # 1. The wrongly trusted junk key: its answer is delivered, then spot-checked.
            spot_checked = send(SPOT_CHECKED)
            run_junk("trusted-junk", "trusted_junk", "other")
            shown["delivered"] = watcher.read(spot_checked)
            # 2. The new junk key: three clips, all held.
            held = {send(clip_id): mode for clip_id, mode in HELD.items()}
            for mode in held.values():
                extra = {"empty": ("--fetch-audio",), "random": ("--delay", "0")}.get(mode, ())
                run_junk(f"new-junk-{mode}", "new_junk", mode, *extra)
            shown["held"] = {job_id: watcher.read(job_id) for job_id in held}
            shown["new_junk_before_checks"] = server.manage("trust", "show", keys["new_junk"]).stdout
            # 3. An honest new key's worker comes online alone (checks are for trusted keys): it
            # takes a new clip, held in turn. Then the trusted ones come, and check everything.
            def start_honest(name):
                honest[name] = WorkerProcess(server.url, keys[name], models_dir, name)
                processes.append(honest[name])

            start_honest("honest_new")
            honest["honest_new"].wait_for("accepted by the server", timeout=120)
            by_new_key = send(NEW_HONEST)
            honest["honest_new"].wait_for(f"{by_new_key}  ", timeout=120)  # its result line
            shown["new_honest_held"] = watcher.read(by_new_key)
            start_honest("honest_a")
            start_honest("honest_b")
            for worker in honest.values():
                worker.wait_for("accepted by the server", timeout=120)
            watcher.wait_until(spot_checked, lambda b: b.get("verification", {}).get("status") == "corrected")
            for job_id in (*held, by_new_key):
                watcher.wait_until(job_id, lambda b: b["status"] != "processing")
            shown["new_junk_after_checks"] = server.manage("trust", "show", keys["new_junk"]).stdout
            # 4. The quarantined junk key tries again; the caller sends more.
            again = junk["new-junk-again"] = JunkProcess(server, keys["new_junk"], "fixed", "new-junk-again")
            processes.append(again)
            again.wait_for("registered")
            for job_id in [send(clip_id) for clip_id in HONEST_ONLY]:
                watcher.wait_until(job_id, lambda b: b.get("verification", {}).get("status") == "checked")
            # 5. The honest workers sign off: the quarantined key's worker is alone, and idle.
            for worker in honest.values():
                worker.signal(signal.SIGINT)
            for worker in honest.values():
                assert worker.wait(timeout=60) == 0, worker.log
            left = send(LEFT_FOR_THE_QUARANTINED)
            time.sleep(6)  # three of its long-polls
            shown["left"] = watcher.read(left)
            shown["cancelled"] = requests.delete(
                f"{server.url}/v1/transcriptions/{left}", headers={"Authorization": f"Bearer {keys['caller']}"},
                timeout=30,
            )
            again.stop()
            watcher.stop()
            final = {job_id: watcher.read(job_id) for job_id in clips}
            accounts = {name: server.get("/v1/account", key).json() for name, key in keys.items()}
            trust = key_facts(server, keys)
        finally:
            watcher.stopping.set()
            for process in processes:
                process.stop()
    shown["wall_seconds"] = time.monotonic() - started
    print(f"\nthe story took {shown['wall_seconds']:.0f} s")
    for job_id, clip_id in clips.items():
        answer = final[job_id]
        cer = character_error_rate(corpus[clip_id]["text"], answer.get("text", ""))
        print(f"  {clip_id:<9} {answer['status']:<9} {answer.get('verification')} CER {cer:.2f} {answer.get('text')}")
    return Story(clips, watcher.seen, final, accounts, trust, junk, honest, shown)


def honest_earnings(worker):
    """Seconds credited for each result the worker delivered, from its own log lines."""
    return [float(s) for s in re.findall(r"tx_\w+ handed in · \+([\d.]+) s credit", worker.log)]


def test_a_new_keys_junk_never_reaches_the_caller(story, corpus):
    junk = story.junk_texts()
    for clip_id, mode in HELD.items():
        job_id = story.job(clip_id)
        held = story.shown["held"][job_id]
        assert held["status"] == "processing" and "text" not in held, "held while the junk was in"
        for answer in story.seen[job_id]:
            assert "text" not in answer or answer["text"] not in junk, (clip_id, answer)
        final = story.final[job_id]
        assert final["status"] == "completed"
        assert character_error_rate(corpus[clip_id]["text"], final["text"]) < 0.4, (clip_id, final["text"])
        if mode == "random":  # struck on arrival, so the trusted check alone decided
            assert final["verification"] == {"status": "unchecked", "agreeing_workers": 1}
        else:  # a trusted key's check disagreed, the other trusted key's run agreed with it
            assert final["verification"] == {"status": "checked", "agreeing_workers": 2}


def test_the_protocol_accepted_every_junk_result_so_only_the_checks_stopped_it(story):
    for name, process in story.junk.items():
        if name == "new-junk-again":
            continue
        (claimed,) = process.events("claimed")
        (completed,) = process.events("completed")
        assert claimed["route"] == "pool_credit" and completed["status"] == 200, (name, completed)
    assert story.junk["new-junk-empty"].events("fetched")[0]["status"] == 200, "it fetched the clip it was given"


def test_the_new_junk_key_earns_nothing_and_is_quarantined_after_three_strikes(story):
    assert story.accounts["new_junk"]["credits_seconds"] == 0
    assert story.accounts["new_junk"]["credits_pending_seconds"] == 0
    assert story.trust["new_junk"]["level"] == "quarantined"
    reasons = story.trust["new_junk"]["strikes"]
    assert len(reasons) == 3
    assert sum("faster than any engine" in r for r in reasons) == 1 and sum("outvoted" in r for r in reasons) == 2
    # The instant answer was struck as it came in, before any honest worker ran.
    assert ": new (" in story.shown["new_junk_before_checks"] and "strikes 1," in story.shown["new_junk_before_checks"]
    assert ": quarantined (" in story.shown["new_junk_after_checks"]


def test_a_quarantined_keys_worker_gets_none_of_the_callers_clips_even_alone(story):
    again = story.junk["new-junk-again"]
    assert again.events("registered") and not again.events("claimed")
    assert story.shown["left"]["status"] == "queued", "nobody took it"
    assert story.shown["cancelled"].status_code == 200


def test_a_trusted_keys_junk_found_by_a_spot_check_is_replaced_and_the_caller_refunded(story, corpus):
    job_id = story.job(SPOT_CHECKED)
    junk_text = story.junk["trusted-junk"].events("completed")[0]["text"]
    delivered = story.shown["delivered"]
    assert delivered["text"] == junk_text and delivered["verification"]["status"] == "unchecked"
    final = story.final[job_id]
    assert final["text"] != junk_text
    assert character_error_rate(corpus[SPOT_CHECKED]["text"], final["text"]) < 0.4, final["text"]
    assert final["verification"] == {"status": "corrected", "agreeing_workers": 2}
    # Charged for the clips it got; not for this one, nor for the one it cancelled.
    charged = sum(story.final[story.job(clip)]["duration_seconds"] for clip in (*HELD, NEW_HONEST, *HONEST_ONLY))
    assert story.accounts["caller"]["credits_seconds"] == pytest.approx(CREDITS - charged, abs=0.01), "refunded"
    assert story.accounts["trusted_junk"]["credits_seconds"] == 0
    assert story.accounts["trusted_junk"]["credits_pending_seconds"] == 0
    assert story.trust["trusted_junk"]["level"] == "new"
    assert [r.split(" (")[0] for r in story.trust["trusted_junk"]["strikes"]] == ["outvoted"]


def test_honest_keys_are_never_struck_and_every_run_they_did_is_paid(story):
    for name, worker in story.honest.items():
        assert story.trust[name]["strikes"] == [], name
        earned = honest_earnings(worker)
        account = story.accounts[name]
        assert account["credits_pending_seconds"] == 0, (name, account)
        assert account["credits_seconds"] == pytest.approx(sum(earned), abs=0.051 * len(earned)), (name, account)
    assert story.trust["honest_a"]["level"] == story.trust["honest_b"]["level"] == "trusted"
    assert honest_earnings(story.honest["honest_a"]) and honest_earnings(story.honest["honest_b"])


def test_a_new_honest_keys_result_is_held_until_a_trusted_worker_agrees_and_then_paid(story, corpus):
    job_id = story.job(NEW_HONEST)
    held = story.shown["new_honest_held"]
    assert held["status"] == "processing" and "text" not in held
    final = story.final[job_id]
    assert final["verification"] == {"status": "checked", "agreeing_workers": 2}
    assert character_error_rate(corpus[NEW_HONEST]["text"], final["text"]) < 0.4, final["text"]
    assert honest_earnings(story.honest["honest_new"])[0] == pytest.approx(final["duration_seconds"], abs=0.05)
    assert story.accounts["honest_new"]["credits_seconds"] >= final["duration_seconds"] - 0.05, "spendable"
    assert story.trust["honest_new"] == {"level": "new", "strikes": []}


def test_every_clip_only_honest_workers_ran_is_checked_by_two(story, corpus):
    for clip_id in HONEST_ONLY:
        final = story.final[story.job(clip_id)]
        assert final["verification"] == {"status": "checked", "agreeing_workers": 2}, (clip_id, final)
        assert character_error_rate(corpus[clip_id]["text"], final["text"]) < 0.4, (clip_id, final["text"])
        assert final["text"] not in story.junk_texts()
