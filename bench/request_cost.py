"""Cost of a request, and of idle volunteers, against the real server (gunicorn, PostgreSQL, Redis).

Two measurements, each against `make run`'s server settings (gunicorn with uvicorn workers, 2
processes, jptranscribe/gunicorn.conf.py) started by tests/live.py with bench/settings.py, which adds
one bare Django view (bench/urls.py: the key by its hash, one SELECT and one UPDATE) to the site.

Throughput (the default): `--active` keep-alive connections send requests back to back to
each endpoint in turn, `--rounds` times (rounds interleave, so a noisy neighbour hits every
endpoint alike); prints requests/s, latency p50/p99, server and PostgreSQL CPU per request,
and each endpoint's ratio to the bare view. `--connections N` (up to 5,000) also holds
N - active idle keep-alive connections open throughout (each sent one request, then is silent).

    .venv/bin/python bench/request_cost.py [--seconds 5] [--rounds 3] [--active 16] [--connections 16]

Idle long-polls (`--long-polls 500,1000,2000`): that many simulated volunteers, each on its own
connection, hold a claim (`POST /v1/pool/claim`, wait_seconds as the worker client asks (50), or
`--claim-wait`, sent again when answered; the
first one waits part of that, spread over the volunteers, so that they do not all claim at once)
while /v1/health is probed at a steady rate (open loop: a probe's latency counts from when it
was due, so a stalled server is not sampled less). Steps add volunteers to those already
waiting; each (once its volunteers are held and `--calm-seconds` have passed) prints health p50/p99, how many claims the server really held (its count of
waiting claims, in the shared cache), the server's memory per held claim and its threads, and
then the dispatch latency with them all waiting: `--dispatch-jobs` clips sent one at a time
(`POST /v1/transcribe`, `Prefer: respond-async`, by a volunteer's key: its own waiting workers
take it), each timed from sending it until a waiting volunteer's claim answers with it (as
bench/pool.py times it); that volunteer completes it and claims again.

    .venv/bin/python bench/request_cost.py --long-polls 500,1000,2000 [--probe-seconds 30]

The load client is one asyncio process speaking HTTP/1.1 over raw keep-alive connections
(bench/figures.py `Http1`); it prints its own CPU, which on this 2-core machine is taken from
the server under test.
"""

import argparse
import asyncio
import json
import os
import random
import resource
import signal
import statistics
import sys
import time
from pathlib import Path

# Run as a script, this file's folder comes first on the path, where this file would shadow the
# `requests` package tests/live.py imports: the repository root takes its place.
ROOT = Path(__file__).resolve().parent.parent
sys.path[0] = str(ROOT)

from bench.figures import (  # noqa: E402
    Http1,
    cpu_seconds_tree,
    http_request,
    multipart_file,
    percentile,
    postgres_cpu,
    process_tree,
    raise_open_files_limit,
    rss_bytes_tree,
    server_sockets,
)
from tests.clips import wav_bytes  # noqa: E402
from tests.live import LiveServer  # noqa: E402
from worker_client.worker import CLAIM_WAIT_SECONDS  # noqa: E402

HOST = "127.0.0.1"
MAX_CONNECTIONS = 5000
VOLUNTEERS_PER_KEY = 100
BARE_PATH = "/bench/bare"  # bench/urls.py


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def ms(seconds: float) -> float:
    return seconds * 1000


async def open_many(count: int, port: int, at_once: int = 200) -> list[Http1]:
    """`count` connections, opened `at_once` at a time (a burst of thousands of SYNs overflows the
    listen backlog and costs seconds of retransmits)."""
    opened: list[Http1] = []
    for start in range(0, count, at_once):
        opened += await asyncio.gather(*(Http1(HOST, port).open() for _ in range(min(at_once, count - start))))
    return opened


# --- Throughput -----------------------------------------------------------------------------------


class IdleConnections:
    """Keep-alive connections held open and quiet: each sends one request (as a real client would
    before going quiet), then one every 25 s, within the server's 30 s keep-alive timeout, their
    phases spread evenly."""

    PING_SECONDS = 25

    def __init__(self, port: int, count: int):
        self.port, self.count = port, count
        self.served = self.failed = 0
        self.conns: list[Http1] = []
        self.tasks: list[asyncio.Task] = []
        self.all_served = asyncio.Event()

    async def start(self, timeout: float = 120):
        """Open them all and wait (up to `timeout`) until each has had its first answer."""
        if not self.count:
            return
        request = http_request("GET", "/v1/health")
        self.conns = await open_many(self.count, self.port)
        for i, conn in enumerate(self.conns):
            self.tasks.append(asyncio.create_task(self._hold(conn, request, phase=self.PING_SECONDS * i / self.count)))
        try:
            await asyncio.wait_for(self.all_served.wait(), timeout)
        except TimeoutError:
            pass

    async def _hold(self, conn: Http1, request: bytes, phase: float):
        first = True
        while True:
            try:
                status, _ = await conn.call(request)
            except (ConnectionError, OSError, asyncio.IncompleteReadError):
                self.failed += 1
                return
            if first:
                self.served += status == 200
                first = False
                if self.served + self.failed >= self.count:
                    self.all_served.set()
                await asyncio.sleep(phase)
                continue
            await asyncio.sleep(self.PING_SECONDS)

    def report(self, port: int) -> str:
        accepted, backlog = server_sockets(port)
        reopened = sum(1 for conn in self.conns if conn.opened > 1)
        return (
            f"{self.count} idle connections: {self.served} answered their first request, {reopened} were "
            f"closed by the server and reopened, {self.failed} failed; the server had accepted {accepted} "
            f"connections, {backlog} waited in its listen backlog; idle keep-alive pings "
            f"{self.count / self.PING_SECONDS:.0f}/s"
        )

    def stop(self):
        for task in self.tasks:
            task.cancel()


async def hammer(conns: list[Http1], requests: list[bytes], warmup: float, seconds: float, expect: int):
    """Each connection sends its request back to back; latencies of those started in the window."""
    loop = asyncio.get_running_loop()
    begin = loop.time() + warmup
    end = begin + seconds
    latencies: list[float] = []
    errors = [0]

    async def one(conn: Http1, request: bytes):
        clock = time.perf_counter
        while (now := loop.time()) < end:
            t0 = clock()
            status, body = await conn.call(request)
            if status != expect:
                errors[0] += 1
                if errors[0] == 1:
                    print(f"    unexpected {status}: {body[:200]!r}", file=sys.stderr)
            if now >= begin:
                latencies.append(clock() - t0)

    await asyncio.gather(*(one(conn, request) for conn, request in zip(conns, requests, strict=True)))
    return latencies, errors[0]


async def throughput(server: LiveServer, args, keys: list[str]):
    port = server.port
    worker_ids = [f"bench-{i}" for i in range(args.active)]
    endpoints = {
        "bare view": ([http_request("GET", BARE_PATH, key=k) for k in keys], 200),
        "GET /v1/account": ([http_request("GET", "/v1/account", key=k) for k in keys], 200),
        "GET /v1/health": ([http_request("GET", "/v1/health") for _ in keys], 200),
        "POST /v1/worker/heartbeat": (
            [
                http_request(
                    "POST",
                    "/v1/worker/heartbeat",
                    key=k,
                    json={
                        "worker_id": w,
                        "name": "bench",
                        "engine": "faster-whisper",
                        "model": "base",
                        "version": "1.3.0",
                        "status": "online",
                        "session_id": f"session-{w}",
                        "leases": [],
                        "max_jobs": 1,
                    },
                )
                for k, w in zip(keys, worker_ids, strict=True)
            ],
            200,
        ),
    }
    if args.endpoints:
        endpoints = {
            name: value
            for name, value in endpoints.items()
            if name == "bare view" or any(part in name for part in args.endpoints)
        }
    # The busy connections first: past gunicorn's worker_connections a new connection waits
    # in the listen backlog, unserved.
    conns = await open_many(args.active, port)
    idle = IdleConnections(port, max(0, args.connections - args.active))
    await idle.start()
    results: dict[str, dict] = {
        name: {"rates": [], "latencies": [], "server": 0.0, "pg": 0.0, "n": 0, "errors": 0} for name in endpoints
    }
    cpu0 = client_cpu()
    for _ in range(args.rounds):
        for name, (requests, expect) in endpoints.items():
            task = asyncio.create_task(hammer(conns, requests, args.warmup, args.seconds, expect))
            await asyncio.sleep(args.warmup)
            server0, pg0 = cpu_seconds_tree(server.proc.pid), postgres_cpu(server.db_name)
            await asyncio.sleep(args.seconds)
            server_cpu, pg_cpu = cpu_seconds_tree(server.proc.pid) - server0, postgres_cpu(server.db_name) - pg0
            latencies, errors = await task
            row = results[name]
            row["rates"].append(len(latencies) / args.seconds)
            row["latencies"] += latencies
            row["server"] += server_cpu
            row["pg"] += pg_cpu
            row["n"] += len(latencies)
            row["errors"] += errors
    used = client_cpu() - cpu0
    idle_report = idle.report(port) if idle.count else ""

    print(
        f"requests bench: gunicorn + uvicorn, {args.web_workers} processes on PostgreSQL + Redis, "
        f"{args.active} busy connections, {args.rounds} rounds of {args.seconds:g} s per endpoint"
    )
    if idle.count:
        print(f"  {idle_report}")
    print(
        f"  {'endpoint':28} {'req/s':>7} {'x bare':>7} {'p50 ms':>7} {'p99 ms':>7} {'server CPU ms/req':>18} "
        f"{'PG CPU ms/req':>14}  rounds req/s"
    )
    bare = statistics.median(results["bare view"]["rates"])
    for name, row in results.items():
        rate = statistics.median(row["rates"])
        n = max(1, row["n"])
        print(
            f"  {name:28} {rate:7.0f} {rate / bare:7.2f} {ms(statistics.median(row['latencies'])):7.1f} "
            f"{ms(percentile(row['latencies'], 99)):7.1f} {ms(row['server'] / n):18.2f} {ms(row['pg'] / n):14.2f}"
            f"  {' '.join(f'{r:.0f}' for r in row['rates'])}" + (f"  ({row['errors']} errors)" if row["errors"] else "")
        )
    total = sum(row["n"] for row in results.values())
    print(f"  load client CPU: {ms(used / max(1, total)):.2f} ms a request ({used:.1f} s over the run)")
    print("  targets (issue 16): keyed requests >= 0.5x the bare view, heartbeat >= 1,000/s")
    idle.stop()
    for conn in conns:
        conn.close()


# --- Idle long-polls ------------------------------------------------------------------------------


class Volunteers:
    """Simulated volunteers that only wait: each registers (a heartbeat), and once every volunteer
    of its step has, holds a claim, again and again. (A claim counts against its key's online
    workers: claiming before the others of the key registered would be refused.)"""

    def __init__(self, port: int, keys: list[str], claim_wait: float):
        self.port, self.keys, self.claim_wait = port, keys, claim_wait
        self.tasks: list[asyncio.Task] = []
        self.registered = 0
        self.step_registered = asyncio.Event()
        self.answered = self.refused = self.failed = 0
        self.claimed: dict[str, float] = {}  # job id: when a claim answered with it (loop time)

    def add(self, count: int):
        self.step_registered = asyncio.Event()
        for i in range(len(self.tasks), len(self.tasks) + count):
            self.tasks.append(asyncio.create_task(self._volunteer(i, self.step_registered)))

    def herd(self):
        """Every volunteer's connection drops at once (a proxy restarted, a network blip) and each
        claims again after the worker client's first backoff (0.5-1 s: worker_client.client.Backoff),
        already registered."""
        for task in self.tasks:
            task.cancel()
        registered = asyncio.Event()
        registered.set()
        self.tasks = [
            asyncio.create_task(self._volunteer(i, registered, after=random.uniform(0.5, 1.0)))
            for i in range(len(self.tasks))
        ]

    async def _volunteer(self, i: int, step_registered: asyncio.Event, after: float | None = None):
        key = self.keys[i // VOLUNTEERS_PER_KEY]
        worker_id = f"idle-{i}"
        beat = http_request(
            "POST",
            "/v1/worker/heartbeat",
            key=key,
            json={"worker_id": worker_id, "session_id": f"session-{i:08d}", "max_jobs": 1},
        )
        claim = http_request(
            "POST",
            "/v1/pool/claim",
            key=key,
            json={"worker_id": worker_id, "wait_seconds": self.claim_wait, "inline_audio": True},
        )
        # The first claim waits a part of the wait of its own (spread evenly over the volunteers), so
        # that their claims run out and are sent again spread over time, as independent volunteers'
        # would, not all in the same instant.
        first_claim = http_request(
            "POST",
            "/v1/pool/claim",
            key=key,
            json={"worker_id": worker_id, "wait_seconds": 1 + (self.claim_wait - 1) * ((i * 0.618034) % 1)},
        )
        conn = Http1(HOST, self.port)
        try:
            if after is None:
                await conn.call(beat)
                self.registered += 1
                if self.registered == len(self.tasks):
                    step_registered.set()
                await step_registered.wait()
                request = first_claim
            else:  # back after a dropped connection: registered already
                await asyncio.sleep(after)
                request = claim
            while True:
                status, body = await conn.call(request)
                request = claim
                if status == 200 and b'"job":null' not in body.replace(b" ", b""):
                    job = json.loads(body)["job"]
                    self.claimed[job["id"]] = asyncio.get_running_loop().time()
                    done = {"worker_id": worker_id, "lease_id": job["lease_id"], "text": "テスト", "segments": []}
                    await conn.call(
                        http_request(
                            "POST", f"/v1/pool/jobs/{job['id']}/complete", key=key, json=done | {"model": "bench"}
                        )
                    )
                elif status == 200:
                    self.answered += 1
                elif status == 409:  # registration ran out: register again
                    await conn.call(beat)
                else:
                    self.refused += 1
                    if self.refused <= 3:
                        print(f"    claim answered {status}: {body[:200]!r}", file=sys.stderr)
                    await asyncio.sleep(1)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            self.failed += 1
        finally:
            conn.close()

    def stop(self):
        for task in self.tasks:
            task.cancel()


class WaitingCount:
    """The server's own count of claims waiting (jptranscribe/places.py), summed over keys: a claim
    counts there only once a server thread holds it, not while it queues for one."""

    def __init__(self, cache_url: str, prefix: str):
        import redis

        self.redis = redis.Redis.from_url(cache_url)
        self.pattern = f"{prefix}:1:jpt:places:claims:*"

    def now(self) -> int:
        names = list(self.redis.scan_iter(self.pattern, count=1000))
        return sum(int(v) for v in self.redis.mget(names) if v is not None) if names else 0


class Prober:
    """GET /v1/health every 1/rate s from start to end (open loop), on keep-alive connections
    reused when free (a new one when none is); `window` reads the latencies of the probes due in a
    time span, counted from when each was due, so a stalled server is not sampled less."""

    def __init__(self, port: int, rate: float):
        self.port, self.rate = port, rate
        self.request = http_request("GET", "/v1/health")
        self.free: list[Http1] = []
        self.done: list[tuple[float, float]] = []  # (due, answered)
        self.waiting: set[float] = set()  # due times of probes not answered yet
        self.opened = 0
        self.tasks: set[asyncio.Task] = set()

    async def run(self):
        loop = asyncio.get_running_loop()
        start = loop.time()
        i = 0
        while True:
            due = start + i / self.rate
            await asyncio.sleep(max(0.0, due - loop.time()))
            task = asyncio.create_task(self._one(due))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
            i += 1

    async def _one(self, due: float):
        loop = asyncio.get_running_loop()
        if self.free:
            conn = self.free.pop()
        else:
            conn = Http1(HOST, self.port)
            self.opened += 1
        self.waiting.add(due)
        try:
            await conn.call(self.request)
        except (ConnectionError, OSError, asyncio.IncompleteReadError):
            conn.close()
            return
        finally:
            self.waiting.discard(due)
        self.done.append((due, loop.time()))
        self.free.append(conn)

    def window(self, begin: float, end: float) -> tuple[list[float], int]:
        """Latencies of the probes due in [begin, end); those still unanswered count until now."""
        now = asyncio.get_running_loop().time()
        answered = [t - due for due, t in self.done if begin <= due < end]
        waiting = [now - due for due in self.waiting if begin <= due < end]
        return answered + waiting, len(waiting)


def threads_tree(root_pid: int) -> int:
    """Threads of a process and its children (the gunicorn master and its workers)."""
    total = 0
    for pid in process_tree(root_pid):
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            continue
    return total


def upload_request(key: str) -> bytes:
    """POST /v1/transcribe of a 1 s clip, answered at once (202) while the job waits for a worker."""
    body, content_type = multipart_file("file", "a.wav", wav_bytes(1.0, rate=8000))
    head = (
        f"POST /v1/transcribe HTTP/1.1\r\nHost: {HOST}\r\nAuthorization: Bearer {key}\r\n"
        f"Prefer: respond-async\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n"
    )
    return head.encode() + body


async def dispatch(port: int, key: str, volunteers: Volunteers, samples: int) -> tuple[list[float], list[float]]:
    """(dispatch latencies, submit latencies) of `samples` clips sent one at a time: from sending
    the clip until a waiting volunteer's claim answers with it, and until the submit's own answer
    (the job is queued before that answer, so the first less the second is an upper bound of the
    wake-up alone, when positive)."""
    loop = asyncio.get_running_loop()
    conn = Http1(HOST, port)
    request = upload_request(key)
    latencies, submits = [], []
    for _ in range(samples):
        sent = loop.time()
        status, body = await conn.call(request)
        submits.append(loop.time() - sent)
        if status != 202:
            print(f"    transcribe answered {status}: {body[:200]!r}", file=sys.stderr)
            await asyncio.sleep(0.5)
            continue
        job_id = json.loads(body)["id"]
        while job_id not in volunteers.claimed and loop.time() - sent < 10:
            await asyncio.sleep(0.0005)
        latencies.append(volunteers.claimed.get(job_id, loop.time()) - sent)
        await asyncio.sleep(0.05)
    conn.close()
    return latencies, submits


async def herd(volunteers: Volunteers, prober: Prober, waiting: WaitingCount, args):
    """All volunteers' connections drop at once and they claim again within a second: /v1/health
    over the next --probe-seconds, and how long until the server holds them all again."""
    loop = asyncio.get_running_loop()
    target = len(volunteers.tasks)
    refused_before = volunteers.refused
    begin = loop.time()
    volunteers.herd()
    held_again = None
    while loop.time() < begin + args.probe_seconds:
        await asyncio.sleep(0.5)
        if held_again is None and await asyncio.to_thread(waiting.now) >= 0.99 * target:
            held_again = loop.time() - begin
    await asyncio.sleep(1)
    latencies, unanswered = prober.window(begin, begin + args.probe_seconds)
    print(
        f"  herd: {target} volunteers' connections dropped at once, each claiming again 0.5-1 s later: "
        f"/v1/health over the next {args.probe_seconds:g} s p50 {ms(statistics.median(latencies)):.1f} ms, "
        f"p99 {ms(percentile(latencies, 99)):.1f} ms, max {ms(max(latencies)):.0f} ms, unanswered {unanswered}; "
        f"99 % held again after {'-' if held_again is None else f'{held_again:.1f} s'}; "
        f"claims refused meanwhile {volunteers.refused - refused_before}",
        flush=True,
    )


async def long_polls(server: LiveServer, args, keys: list[str]):
    loop = asyncio.get_running_loop()
    waiting = WaitingCount(args.cache_url, server.env["JPT_CACHE_KEY_PREFIX"])
    volunteers = Volunteers(server.port, keys, args.claim_wait)
    prober = Prober(server.port, args.probe_rate)
    probing = asyncio.create_task(prober.run())
    await asyncio.sleep(2)
    rss0 = rss_bytes_tree(server.proc.pid)
    print(
        f"idle long-poll bench: gunicorn + uvicorn, {args.web_workers} processes on PostgreSQL + "
        f"Redis; volunteers hold claims of {args.claim_wait:g} s; /v1/health probed {args.probe_rate:g}/s "
        f"(latencies over {args.probe_seconds:g} s per step); server memory before: {rss0 / 2**20:.0f} MB"
    )
    print(
        f"  {'volunteers':>10} {'held min-max':>13} {'health p50 ms':>14} {'p99 ms':>8} {'max ms':>8} "
        f"{'unanswered':>10} {'server MB':>10} {'kB/held':>8} {'threads':>8} {'dispatch p50 ms':>16} {'p99 ms':>7} "
        f"{'submit p50 ms':>14}",
        flush=True,
    )
    rss_before, held_before = rss0, 0
    for target in args.long_polls:
        volunteers.add(target - len(volunteers.tasks))
        # Let them settle: until the server holds them all, or nearly all and the count has stopped
        # rising for 5 s (5,000 new volunteers' first heartbeats, registrations in a transaction
        # each, take the server 20-30 s here before the first claim is held; then all their first
        # claims arrive at once, and a claim running out meanwhile is missing from the count until
        # it is sent again). Probing while the last of those first claims were still coming in
        # measured the burst, not the volunteers waiting: /v1/health p99 50-92 ms instead of 20-37.
        best, since = held_before, time.monotonic()
        deadline = time.monotonic() + args.settle_seconds
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            held = await asyncio.to_thread(waiting.now)
            if held >= target:
                break
            if held > best:
                best, since = held, time.monotonic()
            elif best >= 0.98 * target and time.monotonic() - since > 5:
                break
        # Their registrations and first claims came in a burst no real pool sends: let it drain.
        await asyncio.sleep(args.calm_seconds)
        samples: list[int] = []
        begin = loop.time()
        while loop.time() < begin + args.probe_seconds:
            samples.append(await asyncio.to_thread(waiting.now))
            await asyncio.sleep(1)
        await asyncio.sleep(1)  # the last probes' answers
        latencies, unanswered = prober.window(begin, begin + args.probe_seconds)
        rss = rss_bytes_tree(server.proc.pid)
        threads = threads_tree(server.proc.pid)
        dispatched, submits = await dispatch(server.port, keys[0], volunteers, args.dispatch_jobs)
        held = statistics.median(samples)
        # Memory per claim held, from the step before (threads, stacks, connections).
        per_held = (rss - rss_before) / (held - held_before) / 1024 if held > held_before else float("nan")
        rss_before, held_before = rss, held
        print(
            f"  {target:10} {min(samples):6}-{max(samples):<6} {ms(statistics.median(latencies)):14.1f} "
            f"{ms(percentile(latencies, 99)):8.1f} {ms(max(latencies)):8.0f} {unanswered:10} "
            f"{rss / 2**20:10.0f} {per_held:8.0f} {threads:8} {ms(statistics.median(dispatched)):16.1f} "
            f"{ms(percentile(dispatched, 99)):7.1f} {ms(statistics.median(submits)):14.1f}",
            flush=True,
        )
    if args.herd:
        await herd(volunteers, prober, waiting, args)
    probing.cancel()
    print(
        f"  claims answered (no job) {volunteers.answered}, jobs taken {len(volunteers.claimed)}, refused {volunteers.refused}, volunteers' "
        f"connections failed {volunteers.failed}; probe connections opened {prober.opened}; "
        f"load client CPU {client_cpu():.1f} s"
    )
    print(
        "  targets (issue 16): 5,000 idle volunteers with /v1/health p99 <= 50 ms, and a new job reaching one "
        "of them with p50 <= 20 ms"
    )
    volunteers.stop()


# --- Main -----------------------------------------------------------------------------------------


def mint_keys(server: LiveServer, count: int) -> list[str]:
    return [server.mint_key() for _ in range(count)]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5, help="measured per endpoint and round")
    parser.add_argument("--warmup", type=float, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--active", type=int, default=16, help="busy connections")
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help=f"connections in all, up to {MAX_CONNECTIONS}: the busy ones, the rest held idle",
    )
    parser.add_argument(
        "--endpoints",
        type=lambda s: s.split(","),
        default=None,
        help="only these (words of their names, e.g. account,heartbeat) beside the bare view",
    )
    parser.add_argument(
        "--long-polls",
        type=lambda s: [int(n) for n in s.split(",")],
        default=None,
        help="idle long-poll mode: volunteers waiting at each step, e.g. 500,1000,2000",
    )
    parser.add_argument(
        "--claim-wait",
        type=float,
        default=CLAIM_WAIT_SECONDS,
        help=f"each volunteer's claim's wait_seconds (long-poll mode; the worker client's: {CLAIM_WAIT_SECONDS})",
    )
    parser.add_argument(
        "--herd",
        action="store_true",
        help="long-poll mode, after the last step: every volunteer's connection drops and claims again at once",
    )
    parser.add_argument("--probe-rate", type=float, default=20, help="health probes a second (long-poll mode)")
    parser.add_argument("--probe-seconds", type=float, default=30, help="probing per step (long-poll mode)")
    parser.add_argument(
        "--settle-seconds",
        type=float,
        default=90,
        help="longest wait for a step's volunteers to be held before probing",
    )
    parser.add_argument(
        "--calm-seconds", type=float, default=10, help="wait after a step's volunteers are held, before probing"
    )
    parser.add_argument("--dispatch-jobs", type=int, default=100, help="clips sent per step (long-poll mode)")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument(
        "--database-url", default=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jptranscribe")
    )
    parser.add_argument("--cache-url", default=os.environ.get("JPT_CACHE_URL", "redis://127.0.0.1:6379/14"))
    args = parser.parse_args()
    if not 1 <= args.active <= args.connections <= MAX_CONNECTIONS:
        parser.error(f"need 1 <= --active <= --connections <= {MAX_CONNECTIONS}")
    most = max(args.long_polls or [0]) + args.connections + 200
    # The server (a child) inherits the limit: it holds as many sockets as the client.
    if raise_open_files_limit(2 * most + 1000) < most + 500:
        sys.exit(f"open-files limit too low for {most} connections; raise the hard limit (ulimit -Hn)")

    # A bench stopped with SIGTERM still stops its server and drops its database.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = {
        "DJANGO_SETTINGS_MODULE": "bench.settings",
        "JPT_CACHE_URL": args.cache_url,
        "JPT_RATE_USER": "100000000/m",
        "JPT_RATE_WORKER": "100000000/m",
        "JPT_KEYS_PER_IP_PER_DAY": "100000",
        "JPT_CLAIMS_WAITING_PER_KEY": "100000",
        "LOG_LEVEL": "WARNING",
    }
    with LiveServer(database_url=args.database_url, workers=args.web_workers, env=env) as server:
        if args.long_polls:
            keys = mint_keys(server, -(-max(args.long_polls) // VOLUNTEERS_PER_KEY))
            asyncio.run(long_polls(server, args, keys))
        else:
            keys = mint_keys(server, args.active)
            asyncio.run(throughput(server, args, keys))


if __name__ == "__main__":
    main()
