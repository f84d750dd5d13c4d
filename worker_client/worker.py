"""JPTranscribe worker: transcribe the pool's Japanese audio on your CPU and earn credits.

pip install -r worker_client/requirements.txt
python worker_client/worker.py --key jpt_…          (or: python -m worker_client --key jpt_…)
python worker_client/worker.py models list
python worker_client/worker.py models fetch whisper-small
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import IO, Any, TypedDict

if __package__ in (None, ""):  # run as a script: make the package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from worker_client import models
from worker_client.audio import AudioError
from worker_client.client import (
    Backoff,
    Banned,
    Busy,
    JobGone,
    NotRegistered,
    Refused,
    Retryable,
    ServerClient,
    Unauthorized,
)
from worker_client.engines import Stopped, load_engine

DEFAULT_SERVER = "https://api.jptranscribe.com"
# Each idle volunteer's claim ends and is sent again this often: at 50 s rather than 25, a node
# holding 5,000 waiting volunteers serves 100 claims a second, not 200 (a job reaches a waiting
# claim at once either way). Below the common 60 s idle timeout of proxies (nginx's default).
CLAIM_WAIT_SECONDS = 50
# A clip may decode a little longer than the server measured it (decoders pad a frame or two).
DECODE_MARGIN_SECONDS = 2.0
# A finished transcript is offered to an unreachable server for this long (or until its lease's
# hard limit, if sooner): after that the server has given the job to another worker anyway.
DELIVERY_PATIENCE_SECONDS = 600


def decode_limit(job: dict) -> float | None:
    """Never decode past the job's stated length and a margin: a file made to decode to hours
    fails its job (as undecodable audio) instead of filling this machine's memory."""
    stated = job.get("duration_seconds")
    return float(stated) * 1.05 + DECODE_MARGIN_SECONDS if stated else None


def engine_options(job: dict) -> dict:
    """What the job's caller asked of the engine (the claim's `options`): only what was asked, so
    an engine runs as it always does when nothing was."""
    options = job.get("options") or {}
    asked: dict = {}
    if options.get("prompt"):
        asked["prompt"] = str(options["prompt"])
    if options.get("temperature") is not None:
        asked["temperature"] = float(options["temperature"])
    if options.get("word_timestamps"):
        asked["word_timestamps"] = True
    return asked


class _PollOutcome(TypedDict, total=False):
    answer: Any  # the long-polled call's answer (a claim's job, or None when none came in the wait)
    error: BaseException  # what the call raised, re-raised in the main thread


class StoppedWaiting(Exception):
    """Ctrl-C came while a long-polled call still waited for its answer."""


log = logging.getLogger("worker")


class Worker:
    def __init__(self, client: ServerClient, engine, *, name: str, heartbeat_interval=20.0):
        self.client = client
        self.engine = engine
        self.name = name
        self.heartbeat_interval = heartbeat_interval
        self.stopping = threading.Event()  # first Ctrl-C: take no new job
        self.abort_job = threading.Event()  # second Ctrl-C: hand the job in hand back now
        self.exiting = threading.Event()  # signed off: heartbeats end
        self.job_thread: threading.Thread | None = None
        self.fatal: str | None = None
        # lease id -> job id of every job in hand: heartbeats renew these leases and no others.
        self.holding: dict[str, str] = {}
        # Leases of jobs in hand that a heartbeat's answer said are lost (the job was cancelled, or
        # given to another worker): their engine stops, and the worker takes the next job.
        self.lost: set[str] = set()
        self._signals = 0
        # Whether the server's claims keep this worker registered (its heartbeat answer says so),
        # whether a long-poll (a claim, a completion waiting for the next job) is in flight, and when the
        # last one ended: an idle worker's long-polls are its beat.
        self.claims_renew_registration = False
        self._long_polling = False
        self._long_poll_ended = float("-inf")
        # The lease of the job whose completion is waiting for the next job: handed in, not held.
        self._handing_in: str | None = None

    def _jobs_in_hand(self) -> set[str]:
        """The leases of the jobs this worker still works on (one whose completion waits for the
        next job is handed in already)."""
        return set(self.holding) - {self._handing_in}

    # --- signals ---------------------------------------------------------------------
    def install_signal_handlers(self):
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum, frame):
        self._signals += 1
        if self._signals == 1:
            if self._jobs_in_hand():
                log.info("Stopping: finishing the job in hand (press Ctrl-C again to hand it back now).")
            else:
                log.info("Stopping: no job in hand; signing off.")
            self.stopping.set()
        else:
            self.abort_job.set()

    # --- protocol --------------------------------------------------------------------------
    def heartbeat(self, online=True) -> dict:
        reply = self.client.heartbeat(
            name=self.name,
            engine=self.engine.name,
            model=self.engine.model_name,
            online=online,
            leases=list(self.holding),
        )
        self.lost.update(lease for lease in reply.get("leases_lost") or () if lease in self.holding)
        return reply

    def _heartbeats(self):
        """Beat on its own thread, so a worker busy with a long clip (even one it finishes
        after Ctrl-C) still counts as online and keeps its lease."""
        backoff = Backoff(base=self.heartbeat_interval, cap=60)
        delay = self.heartbeat_interval
        while not self.exiting.wait(delay):
            if self.claims_stand_for_heartbeats():
                continue
            try:
                self.heartbeat()
                if backoff.failures:
                    log.info("Heartbeats are getting through again.")
                backoff.reset()
                delay = self.heartbeat_interval
            except (Unauthorized, Banned, Refused) as exc:
                self.fatal = str(exc)
                self.stopping.set()
                return
            except (Retryable, NotRegistered) as exc:
                if not backoff.failures:
                    log.warning("Heartbeat failed (%s); retrying with backoff.", exc)
                delay = min(backoff.next_delay(getattr(exc, "retry_after", None)), 60)

    def claims_stand_for_heartbeats(self) -> bool:
        """An idle worker whose claims follow each other sends no heartbeat: each claim renews its
        registration on the server (which says so), and a heartbeat would renew no lease. Half the
        requests of a pool of waiting volunteers. A claim in flight is bounded by its timeout
        (CLAIM_WAIT_SECONDS + 15 s), well inside the server's online window. So is a completion
        waiting for the next job: its lease, handed in, needs no renewing (and if the call fails,
        the beats resume for the retries well inside the lease's 120 s)."""
        if not self.claims_renew_registration or self._jobs_in_hand():
            return False
        return self._long_polling or time.monotonic() - self._long_poll_ended < self.heartbeat_interval

    def _wait(self, seconds):
        self.stopping.wait(seconds)

    def register(self) -> dict:
        backoff = Backoff()
        while not self.stopping.is_set():
            try:
                reply = self.heartbeat()
                self.claims_renew_registration = reply.get("claims_renew_registration") is True
                return reply
            except Retryable as exc:
                delay = backoff.next_delay(exc.retry_after)
                log.warning("Cannot register with the server (%s); retrying in %.0f s.", exc, delay)
                self._wait(delay)
            except Refused as exc:
                self.fatal = f"the server refused this worker's registration: {exc}"
                self.stopping.set()
        return {}

    def run(self) -> int:
        reply = self.register()
        if self.stopping.is_set():
            return 0
        log.info(
            "Worker %s (session %s) · server %s · key %s · engine %s · model %s · %s",
            self.client.worker_id,
            self.client.session_id[:8],
            self.client.server,
            self.client.key_prefix,
            self.engine.name,
            self.engine.model_name,
            "accepted by the server" if reply.get("accepted") else "NOT accepted by the server",
        )
        self.heartbeat_interval = float(reply.get("heartbeat_interval_seconds", self.heartbeat_interval))
        beating = threading.Thread(target=self._heartbeats, name="heartbeat", daemon=True)
        beating.start()
        backoff = Backoff()
        handed_over = None  # the next job, when the last completion brought one
        while not self.stopping.is_set():
            if handed_over is not None:
                handed_over = self.process(handed_over)
                continue
            try:
                job = self._claim()
                backoff.reset()
            except NotRegistered:
                self.register()
                continue
            except Busy as exc:
                delay = backoff.next_delay(exc.retry_after)
                log.warning("The server says this worker still holds a job (%s); claiming again in %.0f s.", exc, delay)
                self._wait(delay)
                continue
            except Retryable as exc:
                delay = backoff.next_delay(exc.retry_after)
                if exc.answered:
                    log.warning("The server turned the claim away (%s); claiming again in %.0f s.", exc, delay)
                else:
                    log.warning("Cannot reach the server (%s); retrying in %.0f s.", exc, delay)
                self._wait(delay)
                continue
            except Refused as exc:
                self.fatal = f"the server refused this worker's claim: {exc}"
                break
            if job is not None:
                handed_over = self.process(job)
        return self.sign_off()  # a job handed over but not begun goes back to the queue with it

    def _claim(self):
        """Long-poll for a job; a Ctrl-C stops waiting at once (the server gives a signed-off
        worker nothing, so no job is handed to a worker that left)."""
        try:
            return self._long_poll(lambda: self.client.claim(CLAIM_WAIT_SECONDS))
        except StoppedWaiting:
            return None
        except Unauthorized as exc:
            self.fatal = f"the server refused the key: it is wrong or revoked ({exc})"
        except Banned as exc:
            self.fatal = f"this key may not run workers ({exc})"
        self.stopping.set()
        return None

    def _long_poll(self, call):
        """`call`'s answer, made in a thread of its own while this one watches for Ctrl-C:
        StoppedWaiting if it comes first (the call is left to end on its own)."""
        outcome: _PollOutcome = {}

        def poll():
            self._long_polling = True
            try:
                outcome["answer"] = call()
            except BaseException as exc:  # noqa: BLE001 - re-raised below
                outcome["error"] = exc
            finally:
                self._long_polling, self._long_poll_ended = False, time.monotonic()

        thread = threading.Thread(target=poll, daemon=True)
        thread.start()
        while thread.is_alive() and not self.stopping.is_set():
            thread.join(0.2)
        if thread.is_alive():
            raise StoppedWaiting
        if "error" in outcome:
            raise outcome["error"]
        return outcome["answer"]

    def process(self, job) -> dict | None:
        """Run one job and hand its result in; the next job, if the completion brought one."""
        self.holding[job["lease_id"]] = job["id"]
        try:
            next_job = self._process(job)
        finally:
            self.holding.pop(job["lease_id"], None)
            self.lost.discard(job["lease_id"])
        if next_job is not None:
            self.holding[next_job["lease_id"]] = next_job["id"]  # held from now: heartbeats renew it
        return next_job

    def _process(self, job) -> dict | None:
        started = time.monotonic()
        log.info("%s: %.1f s of audio, transcribing.", job["id"], float(job.get("duration_seconds") or 0))
        outcome = {}

        def work():
            try:
                data = self.client.with_retries(lambda: self.client.audio(job), stop=self.abort_job.is_set)
                outcome["result"] = self.engine.transcribe(
                    data,
                    max_seconds=decode_limit(job),
                    should_stop=lambda: self.abort_job.is_set() or job["lease_id"] in self.lost,
                    **engine_options(job),
                )
            except BaseException as exc:  # noqa: BLE001 - reported to the server below
                outcome["error"] = exc

        thread = self.job_thread = threading.Thread(target=work, name=f"job-{job['id']}", daemon=True)
        thread.start()
        while thread.is_alive():
            thread.join(0.2)
            if self.abort_job.is_set():
                # Not failed: the job did nothing wrong. Signing off (next) hands it back as a worker
                # going offline does, not held against the clip or this key.
                log.info("%s handed back to the pool.", job["id"])
                return None
        elapsed = time.monotonic() - started
        error = outcome.get("error")
        if isinstance(error, JobGone):
            log.info("%s: lease lost (%s); taking the next job.", job["id"], error)
            return None
        if isinstance(error, Stopped):
            log.info(
                "%s: lease lost (the server took the job back: cancelled, or given to another worker);"
                " stopped transcribing it, taking the next job.",
                job["id"],
            )
            return None
        if isinstance(error, AudioError):
            self._report_failure(job, f"undecodable audio: {error}")
            return None
        if error is not None:
            log.exception("%s failed", job["id"], exc_info=error)
            self._report_failure(job, f"{error.__class__.__name__}: {error}")
            return None
        result = outcome["result"]
        duration = float(job.get("duration_seconds") or 0)
        # Said as soon as the transcript is made: the answer to its delivery may wait for the next
        # job (up to CLAIM_WAIT_SECONDS), and says what it was credited when it comes.
        log.info(
            "%s  %.1f s audio in %.1f s (RTF %.2f) · %s/%s",
            job["id"],
            duration,
            elapsed,
            elapsed / duration if duration else 0,
            self.engine.name,
            result.model,
        )
        try:
            reply = self._deliver(job, result, elapsed)
        except JobGone as exc:
            log.info("%s: lease lost (%s); taking the next job.", job["id"], exc)
            return None
        except Refused as exc:
            log.warning("%s: the server refused the result (%s); reported as failed.", job["id"], exc)
            self._report_failure(job, f"the server refused the result: {exc}")
            return None
        except (Retryable, NotRegistered) as exc:
            log.warning("%s: could not deliver the result (%s); the server will re-run it.", job["id"], exc)
            return None
        log.info("%s handed in · +%.1f s credit", job["id"], float(reply.get("credited_seconds", 0)))
        return reply.get("next_job")

    def _deliver(self, job, result, elapsed) -> dict:
        """Hand the result in, whatever it takes short of the lease being gone: through network
        trouble (retried while the lease can still be alive), and a server that forgot this
        worker (registered again, then handed in)."""
        until = time.monotonic() + DELIVERY_PATIENCE_SECONDS
        first_delivery = True

        def complete():
            # The next job is asked for on the first delivery only: a retry's first answer may have
            # been lost with a job in it, which would then sit leased to this worker until it ran out.
            nonlocal first_delivery
            claim_next, first_delivery = first_delivery and not self.stopping.is_set(), False
            if not claim_next:
                return self.client.complete(job, result, elapsed)
            # It waits for the next job as a claim would (the claim's long-poll folded in). A
            # Ctrl-C meanwhile stops the waiting; the completion is sent again, plainly (it is
            # idempotent), so the worker knows its result is in before it signs off.
            self._handing_in = job["lease_id"]
            try:
                return self._long_poll(
                    lambda: self.client.complete(job, result, elapsed, claim_next=True, wait_seconds=CLAIM_WAIT_SECONDS)
                )
            except StoppedWaiting:
                return self.client.complete(job, result, elapsed)
            finally:
                self._handing_in = None

        for _ in range(3):
            try:
                return self.client.with_retries(complete, until=until)
            except NotRegistered:
                log.info("%s: the server no longer knew this worker; registering again to deliver.", job["id"])
                # Even after a first Ctrl-C (which `register` heeds): the transcript is still worth delivering.
                self.client.with_retries(self.heartbeat, until=until)
        return self.client.with_retries(complete, until=until)

    def _report_failure(self, job, reason):
        try:
            self.client.with_retries(lambda: self.client.fail(job, reason), attempts=3)
        except (JobGone, Retryable, Refused, NotRegistered):
            pass

    def sign_off(self) -> int:
        """Tell the server at once that this worker is gone, so routing stops counting it, and that the
        jobs it still holds go back to the queue."""
        self.exiting.set()
        if self.fatal:
            log.error("Stopped: %s", self.fatal)
        try:
            self.client.with_retries(lambda: self.heartbeat(online=False), attempts=3)
        except (Unauthorized, Banned, Retryable, NotRegistered, Refused):
            pass
        if self.fatal:
            return 2
        log.info("Signed off. Bye.")
        return 0


def _machine_id(models_dir: Path, key_prefix: str) -> str:
    """A stable id per machine and key, made once."""
    path = models_dir.parent / f"worker-id-{key_prefix}"
    try:
        return path.read_text().strip()
    except OSError:
        worker_id = f"{socket.gethostname()[:40]}-{uuid.uuid4().hex[:8]}"
        worker_id = "".join(c if c.isalnum() or c in "_.-" else "-" for c in worker_id)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(worker_id)
        except OSError:
            pass
        return worker_id


MAX_SLOTS = 64


def worker_identity(models_dir: Path, key_prefix: str) -> tuple[str, IO[str] | None]:
    """This process's worker id: the machine's id and the first slot no other running process of
    this key holds (slot 1 is the machine id itself, then `-2`, `-3`…).

    A restart takes its old slot, so it is the same worker to the server (and announces a new
    session, which hands back what the dead process held); two processes side by side are two
    workers. The slot is an advisory lock on a file, kept for the life of the process (the
    returned handle) and released by the system even after a SIGKILL. Where file locks are
    unavailable, each process gets an id of its own."""
    machine = _machine_id(models_dir, key_prefix)
    try:
        import fcntl
    except ImportError:  # Windows: no flock
        return f"{machine[:55]}-{uuid.uuid4().hex[:8]}", None
    for slot in range(1, MAX_SLOTS + 1):
        path = models_dir.parent / f"worker-{key_prefix}-slot{slot}.lock"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(path, "a")
        except OSError:
            break
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        return (machine if slot == 1 else f"{machine[:58]}-{slot}"), handle
    return f"{machine[:55]}-{uuid.uuid4().hex[:8]}", None


def _models_command(args) -> int:
    models_dir = Path(args.models_dir)
    if args.models_command == "list":
        present = models.installed(models_dir)
        print(f"Models in {models_dir}:")
        for name, model in models.CATALOGUE.items():
            state = (
                "installed"
                if name in present
                else ("installable offline" if any(s.offline for s in model.sources) else "fetchable")
            )
            print(f"  {name:<18} {model.engine:<8} {model.size_mb:>6} MB  {state:<20} {model.description}")
        for name in sorted(set(present) - set(models.CATALOGUE)):
            print(f"  {name:<18} (local folder)")
        return 0
    try:
        path = models.fetch(args.name, models_dir)
    except models.ModelError as exc:
        print(f"Cannot fetch {args.name}: {exc}", file=sys.stderr)
        return 1
    print(f"{args.name} is ready in {path}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(prog="worker.py", description="JPTranscribe pool worker")
    parser.add_argument("--server", default=os.environ.get("JPT_SERVER", DEFAULT_SERVER))
    parser.add_argument("--key", default=os.environ.get("JPT_KEY"), help="your jpt_… key (or env JPT_KEY)")
    parser.add_argument(
        "--engine", choices=["vosk", "whisper"], default=None, help="default: vosk, or the engine of --model"
    )
    parser.add_argument("--model", default=None, help="a catalogue name (models list) or a model folder")
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for the engine (0: automatic)")
    parser.add_argument("--beam-size", type=int, default=1, help="Whisper beam size")
    parser.add_argument("--name", default=socket.gethostname(), help="shown to the operators")
    parser.add_argument("--worker-id", default=None)
    parser.add_argument("--models-dir", default=str(models.default_models_dir()))
    parser.add_argument("--no-download", action="store_true", help="never download a model")
    sub = parser.add_subparsers(dest="command")
    m = sub.add_parser("models", help="list or fetch models")
    msub = m.add_subparsers(dest="models_command", required=True)
    listing = msub.add_parser("list", help="what is installed and what can be fetched")
    fetch = msub.add_parser("fetch", help="download (with resume) and install a model")
    fetch.add_argument("name", choices=sorted(models.CATALOGUE))
    for p in (listing, fetch):
        p.add_argument("--models-dir", default=str(models.default_models_dir()))
    return parser


def main(argv=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # one line per job is ours to write
    args = build_parser().parse_args(argv)
    if args.command == "models":
        return _models_command(args)
    if not args.key or not args.key.startswith("jpt_"):
        print("A key is needed: --key jpt_… (mint one at /get-key/).", file=sys.stderr)
        return 2
    models_dir = Path(args.models_dir)
    try:
        resolved = models.resolve(
            args.model, args.engine, models_dir, allow_download=not args.no_download, log=log.warning
        )
    except models.ModelError as exc:
        print(f"No model to run: {exc}", file=sys.stderr)
        return 1
    if args.engine and args.engine != resolved.engine:
        log.warning("%s is a %s model; running the %s engine.", resolved.name, resolved.engine, resolved.engine)
    started = time.monotonic()
    engine = load_engine(resolved.engine, resolved.path, resolved.name, threads=args.threads, beam_size=args.beam_size)
    log.info("Loaded %s (%s) in %.1f s.", resolved.name, resolved.engine, time.monotonic() - started)
    slot_lock = None
    if args.worker_id:
        worker_id = args.worker_id
    else:
        worker_id, slot_lock = worker_identity(models_dir, args.key[:12])
    client = ServerClient(args.server, args.key, worker_id)
    worker = Worker(client, engine, name=args.name)
    worker.install_signal_handlers()
    try:
        code = worker.run()
        if worker.job_thread is not None and worker.job_thread.is_alive():
            # An abandoned transcription is still inside the engine's native code; tearing the
            # interpreter down around it can crash, so leave at once (the job was handed back).
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)
        return code
    except Unauthorized as exc:
        print(f"The server refused the key {args.key[:12]}…: it is wrong or revoked ({exc}).", file=sys.stderr)
        return 2
    except Banned as exc:
        print(f"This key may not run workers: {exc}", file=sys.stderr)
        return 2
    finally:
        if slot_lock is not None:
            slot_lock.close()  # the slot is free for the next process


if __name__ == "__main__":
    sys.exit(main())
