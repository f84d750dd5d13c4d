"""Trusting strangers' pool results (issue 13), simulated on the real services and database.

    .venv/bin/python bench/trust.py [--jobs 10000] [--keys 100] [--junk-keys 20] [--sqlite]

Nothing is decoded or transcribed: the real services (`transcription.routing.transcription_submit`,
`pool.services.worker_heartbeat`, `claim_once`, `job_complete`, and the maintenance the pool runs)
are called in this process against a database made for the run (PostgreSQL `jpt_bench_trust`,
created, migrated and dropped here; or SQLite with --sqlite), and simulated workers answer from a
table of texts:

- honest workers write Whisper base's own transcripts of the corpus clip they were given, as
  `bench/agreement.py` cached them in var/agreement/ (eight settings: beams 1 and 5, sampling at
  0.4 and 0.8, no VAD, white noise at 20 and 10 dB). A clip is noisy or clean for every worker
  that runs it (--noisy); each honest worker runs beam 1, beam 5 or a sampling setting, drawn per
  key, so honest workers differ as the measured settings do. Without var/agreement/ the variants
  are the corpus texts with characters edited at the measured honest rates (see `synthetic`).
  --reference-keys makes some honest keys write the clip's own text, as a stand-in for a
  different, better engine.
- junk workers answer at once (at --junk-rtf of the clip's length, just above the server's
  "faster than any engine" floor, so as to claim as much as they can) with a fixed text, an
  empty one, random kana and kanji of the right length, another clip's transcript, or (lazy)
  an honest transcript most of the time and one of those junk texts --lazy-rate of the time.
- the server's demo workers (a key with is_server) are online --demo-online of the time, in
  turns, and take checks when no demo job waits.

Time is simulated: the services' clock (`django.utils.timezone.now`) is the simulation's, so
every rule that counts time (checks open to any key after JPT_CHECKS_OPEN_SECONDS, strikes
within a day, earnings held 24 h, the queue timeout) runs as it would. A job takes its clip's
length times its worker's real-time factor. Idle workers claim as the real long-poll does:
one is woken per job announced, and every waiting worker asks again each
JPT_WAKEUP_POLL_SECONDS. Clips arrive at random (Poisson) at --load of what the honest workers
could do without checks. When the last one is in, the run goes on until every transcription is
decided, then the clock moves past the holding period so earnings without a failed check become
spendable, and the figures are read from the database.
"""

import argparse
import heapq
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections import Counter, defaultdict, deque
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SENTENCES = ROOT / "tests" / "speech" / "sentences.tsv"
MANIFEST = ROOT / "var" / "corpus" / "manifest.json"
TRANSCRIPTS = ROOT / "var" / "agreement"
# The junk classes' material, as bench/agreement.py calibrated the threshold against them.
from bench.agreement import JUNK_WORD, RANDOM_CHARS  # noqa: E402

JUNK_MODES = ("fixed", "empty", "kana", "other", "lazy", "half")
# What an honest worker runs (drawn per key), and the cached settings it writes per condition.
PROFILES = {
    "beam 1": {"clean": ("b1", "b1-novad"), "snr20": ("b1-snr20",), "snr10": ("b1-snr10",)},
    "beam 5": {"clean": ("b5",), "snr20": ("b1-snr20",), "snr10": ("b5-snr10",)},
    "sampling": {"clean": ("b1-t0.4", "b1-t0.8"), "snr20": ("b1-snr20",), "snr10": ("b1-snr10",)},
}
PROFILE_WEIGHTS = (0.5, 0.25, 0.25)
POLL_SECONDS = 5.0
HEARTBEAT_SECONDS = 60.0
MAINTENANCE_SECONDS = 15.0
SAMPLE_SECONDS = 30.0
DRAIN_LIMIT_SECONDS = 3 * 3600.0
CALLERS = 20


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=10_000, help="transcriptions submitted (default 10000)")
    parser.add_argument("--keys", type=int, default=100, help="worker keys, one worker each (default 100)")
    parser.add_argument("--junk-keys", type=int, default=20, help="of those, keys sending junk (default 20)")
    parser.add_argument(
        "--junk-modes",
        default="fixed,empty,kana,other,lazy",
        help=f"junk kinds, shared out among the junk keys in turn (of {','.join(JUNK_MODES)})",
    )
    parser.add_argument("--lazy-rate", type=float, default=0.25, help="how often a lazy key sends junk (0.25)")
    parser.add_argument("--junk-rtf", type=float, default=0.02, help="junk answers after this times the clip")
    parser.add_argument("--reference-keys", type=int, default=0, help="honest keys writing the clip's own text")
    parser.add_argument("--noisy", type=float, default=0.3, help="share of clips with noise (half 20, half 10 dB)")
    parser.add_argument("--demo-workers", type=int, default=2)
    parser.add_argument("--demo-online", type=float, default=0.5, help="share of the time each demo worker runs")
    parser.add_argument("--demo-period", type=float, default=600, help="seconds of one on-and-off turn")
    parser.add_argument("--load", type=float, default=0.5, help="arrivals as a share of honest capacity")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file instead of PostgreSQL")
    parser.add_argument(
        "--database-url",
        default="postgres://postgres@127.0.0.1:5432/postgres",
        help="a PostgreSQL server to make the run's database on",
    )
    parser.add_argument("--database-name", default="jpt_bench_trust")
    parser.add_argument("--cache-url", default="redis://127.0.0.1:6379/11", help="Redis ('' for the database)")
    parser.add_argument("--keep", action="store_true", help="keep the run's database afterwards")
    args = parser.parse_args()
    modes = [m for m in args.junk_modes.split(",") if m]
    unknown = set(modes) - set(JUNK_MODES)
    if unknown or (args.junk_keys and not modes):
        parser.error(f"--junk-modes: choose among {', '.join(JUNK_MODES)}")
    if args.junk_keys + args.reference_keys > args.keys:
        parser.error("more junk and reference keys than keys")
    args.modes = modes
    return args


# --- The database, and the services' clock ---------------------------------------------------------


def prepare_database(args):
    """A fresh database for the run; Django is set up on it and migrated. Returns a cleanup."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "jptranscribe.settings"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ["JPT_DEMOS_PER_IP_PER_DAY"] = "0"  # every caller's clip is a pool job
    os.environ["JPT_CACHE_URL"] = args.cache_url
    os.environ["JPT_CACHE_KEY_PREFIX"] = f"bench-trust-{os.getpid()}"
    if args.sqlite:
        path = Path(tempfile.mkdtemp()) / "trust.sqlite3"
        os.environ.pop("DATABASE_URL", None)
        os.environ["JPT_SQLITE_PATH"] = str(path)

        def cleanup():
            for suffix in ("", "-wal", "-shm"):
                Path(f"{path}{suffix}").unlink(missing_ok=True)

    else:
        import psycopg

        admin = args.database_url.replace("postgres://", "postgresql://")
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{args.database_name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{args.database_name}"')
            # Waiting for the disk at each commit is not what this measures (the machine is shared).
            conn.execute(f'ALTER DATABASE "{args.database_name}" SET synchronous_commit = off')
        os.environ["DATABASE_URL"] = args.database_url.rsplit("/", 1)[0] + f"/{args.database_name}"

        def cleanup():
            from django.db import connections

            connections.close_all()
            if not args.keep:
                with psycopg.connect(admin, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{args.database_name}" WITH (FORCE)')

    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return cleanup


class Clock:
    """The simulation's time, which the services read as `timezone.now()`."""

    def __init__(self):
        self.start = datetime.now(UTC).replace(microsecond=0)
        self.t = 0.0

    def now(self):
        return self.start + timedelta(seconds=self.t)

    def at(self, moment):
        return (moment - self.start).total_seconds()


def install_clock(clock):
    """Every `timezone.now()` the services call, model defaults included, reads the simulated clock."""
    from django.apps import apps
    from django.utils import timezone

    real = timezone.now
    timezone.now = clock.now
    for model in apps.get_models():
        for f in model._meta.concrete_fields:
            if f.default is real:
                f.default = clock.now
                f.__dict__.pop("_get_default", None)


# --- What workers write ---------------------------------------------------------------------------


def load_clips():
    """{clip: {"text", "duration"}}: the corpus sentences, with the rendered clips' lengths when
    the corpus is rendered (else about 7 characters a second, as the rendered ones run)."""
    rows = [line.split("\t", 1) for line in SENTENCES.read_text().splitlines()[1:] if line.strip()]
    rendered = json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}
    return {
        cid: {
            "text": text.strip(),
            "duration": rendered[cid]["duration"] if cid in rendered else round(len(text.strip()) / 7 + 0.5, 2),
        }
        for cid, text in rows
    }


def measured(clips):
    """{setting: {clip: text}} from bench/agreement.py's cache, or None when it is not all there."""
    settings = {s for profile in PROFILES.values() for names in profile.values() for s in names}
    texts = {}
    for name in settings:
        path = TRANSCRIPTS / f"{name}.json"
        if not path.exists():
            return None
        texts[name] = json.loads(path.read_text())
        if not set(clips) <= set(texts[name]):
            return None
    return texts


def synthetic(clips, rng):
    """Stand-in transcripts when Whisper's are not cached: each setting's text is the corpus text
    with characters replaced or dropped, at rates drawn as the measured honest transcripts
    differ from the clip's text (README, "Agreement threshold": clean p50 0.045, p95 0.26, max
    0.53; noisy p50 0.08, p95 0.43, max 0.55)."""
    from pool.agreement import normalise

    def edited(text, rate):
        chars = list(normalise(text))
        for i in rng.sample(range(len(chars)), k=round(rate * len(chars))):
            chars[i] = rng.choice(RANDOM_CHARS) if rng.random() < 0.7 else ""
        return "".join(chars)

    def rate(noisy):
        u = rng.random()
        if u < (0.35 if noisy else 0.45):
            return 0.0
        top, tail = (0.3, 0.5) if noisy else (0.2, 0.45)
        return rng.uniform(0, top) if u < 0.95 else rng.uniform(top, tail)

    settings = {s for profile in PROFILES.values() for names in profile.values() for s in names}
    return {
        name: {cid: edited(c["text"], rate("snr" in name)) for cid, c in clips.items()} for name in sorted(settings)
    }


class Texts:
    """The texts workers answer with, and which of them are honest."""

    def __init__(self, clips, transcripts, rng):
        self.clips, self.transcripts, self.rng = clips, transcripts, rng
        self.ids = sorted(clips)
        self.honest = defaultdict(set)  # clip -> every honest text of it, in any condition
        for cid, clip in clips.items():
            self.honest[cid].add(clip["text"])
            for texts in transcripts.values():
                self.honest[cid].add(texts[cid])

    def honest_text(self, profile, cid, condition):
        if profile == "reference":
            return self.clips[cid]["text"]
        return self.transcripts[self.rng.choice(PROFILES[profile][condition])][cid]

    def junk(self, mode, cid):
        from pool.agreement import normalise

        reference = self.transcripts["b1"][cid]
        if mode == "fixed":
            return JUNK_WORD
        if mode == "empty":
            return ""
        if mode == "kana":
            return "".join(self.rng.choices(RANDOM_CHARS, k=len(normalise(reference))))
        if mode == "other":
            return self.transcripts["b1"][self.rng.choice([c for c in self.ids if c != cid])]
        if mode == "half":
            return normalise(reference)[: len(normalise(reference)) // 2]
        raise ValueError(mode)

    def is_honest(self, cid, text):
        return text in self.honest[cid]


# --- The simulation ---------------------------------------------------------------------------------


@dataclass(eq=False)
class SimWorker:
    name: str
    kind: str  # honest, junk, demo
    mode: str  # an honest profile, or a junk mode
    rtf: float
    key: object = None
    worker: object = None
    busy: object = None  # the job it runs
    online: bool = True
    leaving: bool = False
    poll_turn: int = 0


@dataclass
class Run:
    """One completed run of a clip by a worker (an original or a check copy)."""

    job_id: str
    original: str
    worker: SimWorker
    junk: bool
    duration: float
    claimed: float
    done: float
    delivered_junk: bool = False


@dataclass
class Sim:
    args: argparse.Namespace
    clock: Clock
    texts: Texts
    rng: random.Random
    workers: list = field(default_factory=list)
    callers: list = field(default_factory=list)
    events: list = field(default_factory=list)
    seq: int = 0
    announced: deque = field(default_factory=deque)
    waiting: dict = field(default_factory=lambda: {"credit": deque(), "demo": deque()})
    originals: dict = field(default_factory=dict)  # job id -> (clip, condition, submitted at)
    runs: dict = field(default_factory=dict)  # run job id -> Run
    submitted: int = 0
    refused: Counter = field(default_factory=Counter)
    claims: int = 0
    trusted_samples: list = field(default_factory=list)  # (t, honest keys trusted)
    draining_since: float | None = None
    began: float = field(default_factory=time.perf_counter)

    # -- events
    def at(self, t, kind, *data):
        self.seq += 1
        heapq.heappush(self.events, (t, self.seq, kind, data))

    def run(self):
        while self.events:
            t, _, kind, data = heapq.heappop(self.events)
            self.clock.t = max(self.clock.t, t)
            if getattr(self, f"on_{kind}")(*data) is StopIteration:
                return
            self.wake()

    # -- callers
    def on_arrive(self):
        from transcription.intake import CheckedAudio
        from transcription.routing import transcription_submit

        cid = self.rng.choice(self.texts.ids)
        u = self.rng.random()
        condition = "clean" if u >= self.args.noisy else ("snr20" if u < self.args.noisy / 2 else "snr10")
        duration = self.texts.clips[cid]["duration"]
        audio = CheckedAudio(
            data=b"RIFF" + os.urandom(12),
            content_type="audio/wav",
            format="wav",
            duration_seconds=duration,
            voiced_seconds=round(duration * 0.85, 2),
        )
        job = transcription_submit(key=self.rng.choice(self.callers), audio=audio, translate=False, ip="192.0.2.1")
        self.originals[job.id] = (cid, condition, self.clock.t)
        self.submitted += 1
        if self.submitted % 1000 == 0:
            print(f"  {self.submitted:,} clips in, {time.perf_counter() - self.began:.0f} s", file=sys.stderr)
        if self.submitted < self.args.jobs:
            self.at(self.clock.t + self.rng.expovariate(self.rate), "arrive")
        else:
            self.draining_since = self.clock.t

    # -- workers
    def channel(self, sw):
        return "demo" if sw.kind == "demo" else "credit"

    def idle(self, sw):
        """The worker waits for a job, as a long-poll: woken by an announcement, or asking again."""
        queue = self.waiting[self.channel(sw)]
        if sw in queue:
            queue.remove(sw)
        queue.append(sw)
        sw.poll_turn += 1
        self.at(self.clock.t + POLL_SECONDS, "poll", sw, sw.poll_turn)

    def try_claim(self, sw):
        from pool.services import claim_once

        if sw.busy is not None or not sw.online:
            return False
        self.claims += 1
        job = claim_once(sw.worker, inline_audio_up_to=1 << 20)
        if job is None:
            self.idle(sw)
            return False
        queue = self.waiting[self.channel(sw)]
        if sw in queue:
            queue.remove(sw)
        sw.busy = job
        original = job.checks_id or job.id
        cid, condition, _ = self.originals[original]
        text, junk = self.answer(sw, cid, condition)
        rtf = self.args.junk_rtf if junk else sw.rtf
        duration = float(job.duration_seconds)
        self.at(self.clock.t + duration * rtf, "done", sw, job, text, junk, self.clock.t)
        return True

    def answer(self, sw, cid, condition):
        if sw.kind == "junk" and (sw.mode != "lazy" or self.rng.random() < self.args.lazy_rate):
            mode = sw.mode if sw.mode != "lazy" else self.rng.choice(("fixed", "kana", "other"))
            return self.texts.junk(mode, cid), True
        profile = sw.mode if sw.kind == "honest" else "beam 1"
        if sw.kind == "junk":  # a lazy key's honest turn
            profile = self.rng.choice(tuple(PROFILES))
        return self.texts.honest_text(profile, cid, condition), False

    def on_done(self, sw, job, text, junk, claimed):
        from jptranscribe.errors import InvalidRequest, ServiceError
        from pool.services import job_complete, job_fail

        sw.busy = None
        try:
            done, _ = job_complete(
                worker=sw.worker,
                job_id=job.id,
                lease_id=job.lease_id,
                text=text,
                segments=[],
                model=f"sim-{sw.mode}",
                processing_seconds=self.clock.t - claimed,
            )
        except ServiceError as refused:
            # As the worker client does: a result the server refuses fails the job, for another worker.
            self.refused[type(refused).__name__] += 1
            if isinstance(refused, InvalidRequest):
                job_fail(worker=sw.worker, job_id=job.id, lease_id=job.lease_id, error=str(refused)[:200])
        else:
            original = job.checks_id or job.id
            run = Run(job.id, original, sw, junk, float(job.duration_seconds), claimed, self.clock.t)
            run.delivered_junk = job.checks_id is None and done.status == "completed" and junk
            self.runs[job.id] = run
        if sw.leaving:
            self.go_offline(sw)
        elif sw.online:
            self.try_claim(sw)

    def on_poll(self, sw, turn):
        if turn == sw.poll_turn and sw.busy is None and sw.online:
            self.try_claim(sw)

    def wake(self):
        """One waiting worker per job announced (the longest waiting), as `pool.wakeup` does."""
        while self.announced:
            queue = self.waiting[self.announced.popleft()]
            if queue:
                self.try_claim(queue[0])

    def on_heartbeat(self):
        from pool.services import worker_heartbeat

        for sw in self.workers:
            if sw.online:
                holding = [sw.busy.lease_id] if sw.busy is not None else []
                worker_heartbeat(key=sw.key, client_id=sw.name, engine="sim", holding=holding)
        self.at(self.clock.t + HEARTBEAT_SECONDS, "heartbeat")

    def on_demo(self, sw, online):
        from pool.services import worker_heartbeat

        if online:
            sw.online, sw.leaving = True, False
            sw.worker = worker_heartbeat(key=sw.key, client_id=sw.name, engine="sim").worker
            self.try_claim(sw)
        elif sw.busy is not None:
            sw.leaving = True
        else:
            self.go_offline(sw)
        share, period = self.args.demo_online, self.args.demo_period
        self.at(self.clock.t + period * (1 - share if online else share), "demo", sw, not online)

    def go_offline(self, sw):
        from pool.services import worker_heartbeat

        sw.online, sw.leaving = False, False
        queue = self.waiting[self.channel(sw)]
        if sw in queue:
            queue.remove(sw)
        worker_heartbeat(key=sw.key, client_id=sw.name, engine="sim", going_offline=True)

    def on_maintenance(self):
        """What a pool maintenance turn does (`pool.leases.pool_maintenance`), on the simulated clock;
        and the end of the run once every transcription is decided."""
        from pool import leases, verification
        from pool.models import Job

        leases.jobs_expire_leases()
        leases.jobs_expire_queued()
        verification.checks_maintenance()
        if self.draining_since is not None:
            open_jobs = Job.objects.filter(status__in=("queued", "leased", "checking")).exists()
            if not open_jobs or self.clock.t - self.draining_since > DRAIN_LIMIT_SECONDS:
                return StopIteration
        self.at(self.clock.t + MAINTENANCE_SECONDS, "maintenance")
        return None

    def on_sample(self):
        from pool.models import KeyTrust

        honest = [sw.key.pk for sw in self.workers if sw.kind == "honest"]
        trusted = sum(t.level == KeyTrust.Level.TRUSTED for t in KeyTrust.objects.filter(key_id__in=honest))
        self.trusted_samples.append((self.clock.t, trusted))
        self.at(self.clock.t + SAMPLE_SECONDS, "sample")


def build(args, clock, texts, rng):
    from accounts.credits import credits_grant
    from accounts.models import ApiKey
    from pool.services import worker_heartbeat

    sim = Sim(args, clock, texts, rng)
    honest = args.keys - args.junk_keys
    for i in range(args.keys):
        if i < args.junk_keys:
            kind, mode, rtf = "junk", args.modes[i % len(args.modes)], 0.0
            if mode == "lazy":
                rtf = rng.uniform(0.1, 0.5)
        else:
            kind, rtf = "honest", rng.uniform(0.1, 0.5)
            j = i - args.junk_keys
            mode = (
                "reference" if j >= honest - args.reference_keys else rng.choices(tuple(PROFILES), PROFILE_WEIGHTS)[0]
            )
        sim.workers.append(SimWorker(f"{kind}-{i:03d}", kind, mode, rtf))
    for i in range(args.demo_workers):
        sim.workers.append(SimWorker(f"demo-{i}", "demo", "beam 1", 0.2))
    for sw in sim.workers:
        sw.key, _ = ApiKey.mint(is_server=sw.kind == "demo", note=f"bench {sw.name}")
        sw.worker = worker_heartbeat(key=sw.key, client_id=sw.name, engine="sim").worker
    for i in range(CALLERS):
        key, _ = ApiKey.mint(note=f"bench caller {i}")
        credits_grant(key=key, amount=10**7, reason="bench")
        sim.callers.append(key)
    # Arrivals at --load of what the honest workers do without checks, on the corpus's mix of clips.
    mean_duration = statistics.mean(c["duration"] for c in texts.clips.values())
    capacity = sum(1 / (mean_duration * sw.rtf) for sw in sim.workers if sw.kind == "honest")
    sim.rate = args.load * capacity
    sim.capacity = capacity
    return sim


def start(sim):
    for sw in sim.workers:
        if sw.kind == "demo":
            i = int(sw.name.split("-")[1])
            offset = sim.args.demo_period * i / max(1, sim.args.demo_workers)
            sw.online = offset == 0 and sim.args.demo_online > 0
            if not sw.online:
                sim.go_offline(sw)
            first = offset if offset else sim.args.demo_period * sim.args.demo_online
            if sim.args.demo_online > 0:
                sim.at(first, "demo", sw, not sw.online)
        if sw.online:
            sim.idle(sw)
    sim.at(0.0, "arrive")
    sim.at(HEARTBEAT_SECONDS, "heartbeat")
    sim.at(MAINTENANCE_SECONDS, "maintenance")
    sim.at(0.0, "sample")


def install_wakeups(sim):
    """Announcements of queued jobs wake the simulated long-polls (and still go out as they do)."""
    from pool import wakeup

    credit, demo = wakeup.check_channels()
    real = wakeup.announce

    def announce(channel):
        real(channel)
        if channel == credit:
            sim.announced.append("credit")
        elif channel == demo:
            sim.announced.append("demo")

    wakeup.announce = announce


# --- The figures ------------------------------------------------------------------------------------


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")


def figures(sim, wall_seconds, mode_line):
    from django.db.models import Sum

    from accounts.models import CreditEntry
    from pool.models import Job, JobAttempt, JobResult, KeyTrust, Strike

    args, clock, texts = sim.args, sim.clock, sim.texts
    Kind = CreditEntry.Kind
    end_of_run = clock.t
    # Past the holding period: earnings without a failed check become spendable.
    clock.t += (sim_hold_hours() + 1) * 3600
    from accounts import credits

    while credits.credits_confirm_held(older_than=clock.now() - timedelta(hours=sim_hold_hours())):
        pass

    by_key = {sw.key.pk: sw for sw in sim.workers}
    jobs = {
        j["id"]: j
        for j in Job.objects.filter(route=Job.Route.POOL_CREDIT).values(
            "id", "status", "text", "verification", "queued_at", "finished_at", "error"
        )
    }
    checks = list(
        Job.objects.filter(route=Job.Route.POOL_CHECK).values("id", "checks_id", "status", "check_by_trusted")
    )
    held = {r["run_id"]: not r["independent"] for r in JobResult.objects.filter(run_id__in=jobs).values()}
    ended = dict(
        JobAttempt.objects.filter(job_id__in=jobs, outcome=JobAttempt.Outcome.COMPLETED).values_list(
            "job_id", "ended_at"
        )
    )

    # 1. Junk that reached a caller: delivered at once by a trusted key, or what a job ended with.
    completed = {i: j for i, j in jobs.items() if j["status"] == Job.Status.COMPLETED}
    ended_junk = {i for i, j in completed.items() if not texts.is_honest(sim.originals[i][0], j["text"])}
    delivered_junk = {r.original for r in sim.runs.values() if r.delivered_junk}
    corrected = {i for i, j in completed.items() if j["verification"] == Job.Verification.CORRECTED}
    reached = ended_junk | delivered_junk
    junk_share = len(reached) / max(1, len(jobs))

    # 2. Seconds junk results earned that became spendable, against what junk results claimed.
    junk_runs = [r.job_id for r in sim.runs.values() if r.junk]
    entries = CreditEntry.objects.filter(job_ref__in=junk_runs)
    claimed = entries.filter(kind=Kind.PENDING).aggregate(s=Sum("seconds"))["s"] or Decimal(0)
    paid = entries.filter(kind=Kind.CONFIRMED).aggregate(s=Sum("seconds"))["s"] or Decimal(0)
    paid_share = float(paid / claimed) if claimed else 0.0

    # 3. Honest keys struck.
    honest_keys = [sw.key.pk for sw in sim.workers if sw.kind == "honest"]
    struck = Counter(Strike.objects.filter(key_id__in=honest_keys).values_list("key_id", flat=True))
    honest_outvoted = JobResult.objects.filter(key_id__in=honest_keys, verdict=JobResult.Verdict.OUTVOTED).count()

    # 4. Check work once honest keys are trusted: from the first moment 90 % of them were.
    goal_trusted = 0.9 * len(honest_keys)
    trusted_at = next((t for t, n in sim.trusted_samples if n >= goal_trusted), None)

    def check_work(since):
        originals = {i for i, (_, _, t) in sim.originals.items() if t >= since}
        done = [r for r in sim.runs.values() if r.original in originals]
        pool = sum(r.duration for r in done if r.job_id == r.original)
        extra = sum(r.duration for r in done if r.job_id != r.original)
        runs = sum(r.job_id != r.original for r in done), sum(r.job_id == r.original for r in done)
        return (extra / pool if pool else float("nan")), runs

    steady, steady_runs = check_work(trusted_at) if trusted_at is not None else (float("nan"), (0, 0))
    overall, overall_runs = check_work(0.0)

    # 5. Latency: how long after its run a result was held, for jobs run on a new key.
    def latency(new_key):
        added, total = [], []
        for i, j in completed.items():
            if held.get(i) is new_key and i in ended and j["finished_at"]:
                added.append(max(0.0, (j["finished_at"] - ended[i]).total_seconds()))
                total.append((j["finished_at"] - j["queued_at"]).total_seconds())
        return added, total

    new_added, new_total = latency(True)
    trusted_added, trusted_total = latency(False)

    trust = {t.key_id: t for t in KeyTrust.objects.filter(key_id__in=by_key)}

    def level(sw):
        t = trust.get(sw.key.pk)
        return t.level if t else KeyTrust.Level.NEW

    junk_workers = [sw for sw in sim.workers if sw.kind == "junk"]
    quarantined = sum(level(sw) == KeyTrust.Level.QUARANTINED for sw in junk_workers)
    honest_trusted = sum(level(sw) == KeyTrust.Level.TRUSTED for sw in sim.workers if sw.kind == "honest")
    honest_quarantined = sum(level(sw) == KeyTrust.Level.QUARANTINED for sw in sim.workers if sw.kind == "honest")
    statuses = Counter(j["status"] for j in jobs.values())
    check_status = Counter(c["status"] for c in checks)
    deciders = sum(c["check_by_trusted"] for c in checks)

    def verdict(ok):
        return "PASS" if ok else "FAIL"

    print(mode_line)
    print(
        f"  simulated {end_of_run / 60:.1f} min of pool time ({sim.submitted:,} clips at {sim.rate:.1f}/s, "
        f"{args.load:.0%} of the honest workers' {sim.capacity:.1f}/s without checks); {sim.claims:,} claims"
    )
    print("\ngoal figures")
    print(
        f"  junk results delivered to callers      {len(reached):6,} of {len(jobs):,} jobs ({junk_share:.3%})"
        f"   goal <= 0.1 %   {verdict(junk_share <= 0.001)}"
    )
    print(
        f"      delivered at once by a trusted key {len(delivered_junk):,} (corrected later and refunded: "
        f"{len(delivered_junk & corrected):,}); junk a job ended with: {len(ended_junk):,}"
    )
    print(
        f"  seconds paid to junk results           {float(paid):8,.0f} s of {float(claimed):,.0f} s claimed "
        f"({paid_share:.2%})   goal <= 1 %   {verdict(paid_share <= 0.01)}"
    )
    print(
        f"  honest keys struck                     {len(struck):6,} of {len(honest_keys)} "
        f"({sum(struck.values())} strikes; honest results outvoted but not struck: "
        f"{honest_outvoted - sum(struck.values())})   goal 0   {verdict(not struck)}"
    )
    if trusted_at is None:
        print("  extra pool work on checks, trusted     never: 90 % of honest keys were not trusted   FAIL")
    else:
        print(
            f"  extra pool work on checks, trusted     {steady:7.1%} of the pool seconds of clips sent after "
            f"{trusted_at / 60:.1f} min, when 90 % of honest keys were trusted ({steady_runs[0]:,} checks for "
            f"{steady_runs[1]:,} clips)   goal <= 15 %   {verdict(steady <= 0.15)}"
        )
    print(
        f"  added latency, job run on a new key    p50 {percentile(new_added, 50):5.1f} s   p95 "
        f"{percentile(new_added, 95):5.1f} s   mean {statistics.mean(new_added) if new_added else float('nan'):5.1f} s"
        f"   ({len(new_added):,} jobs held until another key agreed)"
    )
    print(
        f"      from submission to result: new key p50 {percentile(new_total, 50):5.1f} s, p95 "
        f"{percentile(new_total, 95):5.1f} s; trusted key p50 {percentile(trusted_total, 50):5.1f} s, p95 "
        f"{percentile(trusted_total, 95):5.1f} s ({len(trusted_total):,} jobs; added p95 "
        f"{percentile(trusted_added, 95):.1f} s)"
    )
    print("\ntotals")
    print(
        f"  jobs {len(jobs):,}: "
        + ", ".join(f"{n:,} {s}" for s, n in statuses.most_common())
        + f"; corrected {len(corrected):,}"
    )
    failed_reasons = Counter(j["error"][:60] for j in jobs.values() if j["status"] != Job.Status.COMPLETED)
    for reason, n in failed_reasons.most_common(3):
        print(f"      {n:,} × {reason}")
    print(
        f"  checks run {check_status.get('completed', 0):,} ({deciders:,} third runs for a trusted key or the demo; "
        + ", ".join(f"{n:,} {s}" for s, n in check_status.most_common() if s != "completed")
        + f"); extra pool work over the whole run {overall:.1%} ({overall_runs[0]:,} checks for {overall_runs[1]:,} clips)"
    )
    print(
        f"  junk keys quarantined {quarantined} of {len(junk_workers)}; honest keys trusted at the end "
        f"{honest_trusted} of {len(honest_keys)} (quarantined {honest_quarantined})"
    )
    print(f"  completions refused: {dict(sim.refused) or 'none'}")
    for strike in Strike.objects.filter(key_id__in=honest_keys).select_related("job"):
        original = strike.job.checks_id or strike.job_id if strike.job else None
        results = JobResult.objects.filter(job_id=original).order_by("created_at") if original else []
        print(f"  honest key struck: {by_key[strike.key_id].name} ({by_key[strike.key_id].mode}), {strike.reason}")
        for r in results:
            print(f"      {by_key[r.key_id].name:12s} {r.verdict:8s} {r.text!r}")
    print("\nper kind of key")
    print(
        f"  {'kind':22s} {'keys':>4s} {'quarantined':>11s} {'trusted':>7s} {'runs':>6s} {'junk runs':>9s} "
        f"{'their clips ending junk':>23s} {'paid s':>8s} {'claimed s':>9s}"
    )
    groups = defaultdict(list)
    for sw in sim.workers:
        groups[
            (sw.kind, sw.mode if sw.kind != "honest" else ("reference" if sw.mode == "reference" else "whisper"))
        ].append(sw)
    earned = defaultdict(Decimal)
    pending = defaultdict(Decimal)
    for key_id, kind, seconds in CreditEntry.objects.filter(
        key_id__in=by_key, kind__in=[Kind.PENDING, Kind.CONFIRMED]
    ).values_list("key_id", "kind", "seconds"):
        (earned if kind == Kind.CONFIRMED else pending)[key_id] += seconds
    for (kind, mode), members in sorted(groups.items()):
        ids = {sw.key.pk for sw in members}
        runs = [r for r in sim.runs.values() if r.worker.key.pk in ids]
        reached_here = sum(1 for r in runs if r.job_id == r.original and r.original in reached)
        label = f"{kind} ({mode})" if kind != "demo" else "server demo"
        if mode == "lazy":
            label += f" {args.lazy_rate:.0%}"
        print(
            f"  {label:22s} {len(members):4d} {sum(level(sw) == 'quarantined' for sw in members):11d} "
            f"{'-' if kind == 'demo' else sum(level(sw) == 'trusted' for sw in members):>7} {len(runs):6,} {sum(r.junk for r in runs):9,} "
            f"{reached_here:23,} {float(sum(earned[i] for i in ids)):8,.0f} {float(sum(pending[i] for i in ids)):9,.0f}"
        )
    print(f"\ntook {wall_seconds:.0f} s ({wall_seconds / max(1, sim.submitted) * 1000:.1f} ms a clip)")


def sim_hold_hours():
    from django.conf import settings

    return settings.JPT_CREDITS_HOLD_HOURS


def main():
    args = parse_args()
    started = time.perf_counter()
    cleanup = prepare_database(args)
    try:
        rng = random.Random(args.seed)
        random.seed(args.seed)  # the services' spot checks draw from the module's generator
        clock = Clock()
        install_clock(clock)
        clips = load_clips()
        transcripts = measured(clips)
        source = "Whisper base at 8 settings (var/agreement/)"
        if transcripts is None:
            transcripts = synthetic(clips, random.Random(args.seed))
            source = "synthetic variants of the corpus texts (no var/agreement/: run bench/agreement.py)"
        texts = Texts(clips, transcripts, rng)
        sim = build(args, clock, texts, rng)
        install_wakeups(sim)
        start(sim)
        sim.run()
        junk = Counter(sw.mode for sw in sim.workers if sw.kind == "junk")
        mix = ", ".join(f"{n} {m}" + (f" at {args.lazy_rate:.0%}" if m == "lazy" else "") for m, n in junk.items())
        mode_line = (
            f"Trust simulation on {'SQLite' if args.sqlite else 'PostgreSQL'}: {args.keys} worker keys "
            f"({args.keys - args.junk_keys} honest{f', {args.reference_keys} of them writing the reference text' if args.reference_keys else ''}; "
            f"{args.junk_keys} junk: {mix or 'none'}), {args.demo_workers} demo worker(s) online "
            f"{args.demo_online:.0%} of the time, {args.jobs:,} clips\n"
            f"  honest texts: {source}; {args.noisy:.0%} of clips noisy\n"
            f"  time simulated: a job takes its clip's length × its worker's real-time factor (honest 0.1-0.5, "
            f"junk {args.junk_rtf}); latencies below are in simulated seconds"
        )
        figures(sim, time.perf_counter() - started, mode_line)
    finally:
        cleanup()


if __name__ == "__main__":
    main()
