"""Pool throughput and dispatch latency against the real server (gunicorn on PostgreSQL).

Submitters POST clips to /v1/transcribe and wait for the answer; simulated workers
long-poll /v1/pool/claim (asking for the audio in the answer, as the worker client does)
and complete with a stand-in transcript, asking for their next job in the completion as the
worker client does (claim_next, waiting for one as a claim would; with --claim-each every job is
claimed on its own). A full
cycle is submit -> claim (or the previous completion) -> complete -> response (with
--fetch-audio, the audio is a request of its own). Dispatch latency is from
the moment a submitter starts its POST until a worker holds the job; at light load it is also
printed from the moment the job entered the queue (the upload's own work left out). First, unless
--one-at-a-time 0, the CPU of a cycle with nothing else running (one caller, one worker).

    .venv/bin/python bench/pool.py [--workers 8] [--submitters 16] [--seconds 20] [--claim-each] [--one-at-a-time 300]
"""
import argparse
import multiprocessing as mp
import os
import re
import resource
import statistics
import sys
import threading
import time
import urllib.parse
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.clips import wav_bytes  # noqa: E402
from bench.figures import Client, cpu_seconds_tree, multipart_file, percentile, postgres_cpu  # noqa: E402
from tests.live import LiveServer  # noqa: E402

CLIP = wav_bytes(1.0, rate=8000)
UPLOAD, UPLOAD_TYPE = multipart_file("file", "a.wav", CLIP)


def checked(answer):
    status, body = answer
    if status != 200:
        raise RuntimeError(f"{status}: {body!r:.200}")
    return body


def work(s, worker_id, keep_going, *, wait_seconds, claim_next, inline_audio=True, on_claim=None):
    """A simulated worker (registered already) taking jobs while `keep_going()`: a claim
    long-polled `wait_seconds`, the audio from the claim or fetched, a stand-in transcript, and
    (with `claim_next`, as the worker client does) the next job asked for in the completion,
    which waits for one as a claim would. A job handed over is always done. `on_claim(job)` is
    called as each job is held."""
    job = None
    while job is not None or keep_going():
        if job is None:
            job = checked(s.call("POST", "/v1/pool/claim", json={"worker_id": worker_id, "wait_seconds": wait_seconds,
                                                                 "inline_audio": inline_audio}))["job"]
        if not job:
            continue
        if on_claim is not None:
            on_claim(job)
        params = {"worker_id": worker_id, "lease_id": job["lease_id"]}
        if job.get("audio_base64") is None:
            checked(s.call("GET", f"{job['audio_url']}?{urllib.parse.urlencode(params)}"))
        ask = claim_next and keep_going()
        job = checked(s.call("POST", f"/v1/pool/jobs/{job['id']}/complete",
                             json={**params, "text": "テスト", "segments": [], "model": "bench",
                                   "claim_next": ask, "wait_seconds": wait_seconds if ask else 0,
                                   "inline_audio": inline_audio})).get("next_job")


def registered(url, key, worker_id):
    s = Client(url, key)
    checked(s.call("POST", "/v1/worker/heartbeat", json={"worker_id": worker_id}))
    return s


def worker_process(url, keys, deadline, inline_audio, claim_next, out):
    claimed = []

    def run(key, worker_id):
        work(registered(url, key, worker_id), worker_id, lambda: time.monotonic() < deadline, wait_seconds=2,
             claim_next=claim_next, inline_audio=inline_audio,
             on_claim=lambda job: claimed.append((job["id"], time.monotonic())))

    threads = [threading.Thread(target=run, args=(key, f"bench-{os.getpid()}-{i}")) for i, key in enumerate(keys)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(("claims", claimed))
    out.put(("cpu", cpu_seconds_self()))


def submitter_process(url, keys, start, deadline, out):
    done, submitted, unwaited = [], [], []

    def run(key):
        s = Client(url, key)
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            status, body = s.call("POST", "/v1/transcribe", body=UPLOAD, headers={"Content-Type": UPLOAD_TYPE})
            t1 = time.monotonic()
            if status in (200, 202):  # 202: queued with nobody waiting (no place to wait): not a cycle
                submitted.append(body["id"])
            if status == 200 and t0 >= start:
                done.append((body["id"], t0, t1))
            elif status == 202:
                unwaited.append(body["id"])
            elif status != 200:
                print("submit failed:", status, repr(body)[:200], file=sys.stderr)

    threads = [threading.Thread(target=run, args=(key,)) for key in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.put(("cycles", done))
    out.put(("submitted", submitted))
    out.put(("unwaited", unwaited))
    out.put(("cpu", cpu_seconds_self()))


def light_load_dispatch(url, submit_key, worker_key, samples=200):
    """Dispatch latency with idle workers waiting in long-polls: the wake-up path, not queueing.

    Two figures a clip: from the start of its POST (the upload, its measuring decode, routing and
    the insert, then the wake-up) and from the moment the job entered the queue (its `created_at`,
    stamped by the server on this machine's clock) until a waiting worker holds it."""
    worker_ids = [f"idle-{i}" for i in range(4)]
    claimed, stop = {}, threading.Event()
    s = Client(url, worker_key)
    for worker_id in worker_ids:  # all online first: a key may have as many claims waiting as its workers
        checked(s.call("POST", "/v1/worker/heartbeat", json={"worker_id": worker_id}))

    def run(worker_id):
        work(Client(url, worker_key), worker_id, lambda: not stop.is_set(), wait_seconds=1, claim_next=False,
             on_claim=lambda job: claimed.__setitem__(job["id"], (time.monotonic(), time.time())))

    threads = [threading.Thread(target=run, args=(w,)) for w in worker_ids]
    for t in threads:
        t.start()
    time.sleep(1)
    s = Client(url, submit_key)
    from_post, from_queue = [], []
    for _ in range(samples):
        t0 = time.monotonic()
        status, body = s.call("POST", "/v1/transcribe", body=UPLOAD,
                              headers={"Content-Type": UPLOAD_TYPE, "Prefer": "respond-async"})
        job_id = body["id"]
        while job_id not in claimed and time.monotonic() - t0 < 10:
            time.sleep(0.0005)
        held, held_wall = claimed.get(job_id, (time.monotonic(), time.time()))
        from_post.append((held - t0) * 1000)
        queued = datetime.fromisoformat(body["created_at"]).timestamp()
        from_queue.append((held_wall - queued) * 1000)
        time.sleep(0.02)
    stop.set()
    for t in threads:
        t.join()
    return from_post, from_queue


def one_at_a_time(server, submit_key, worker_key, cycles=300):
    """Whole cycles with nothing else running: one caller waits for each clip's text, one worker
    takes each job (its completion asking for the next, as in the saturated run). Against the
    saturated figure it shows what contention adds to a cycle's CPU (measured: nothing; the cost
    is the requests' own work). Its few spot checks are left to the saturated run's workers.
    (wall ms a cycle, server CPU ms a cycle, PostgreSQL CPU ms a cycle)"""
    stop = threading.Event()
    worker_client = registered(server.url, worker_key, "alone-0")
    worker = threading.Thread(target=work, args=(worker_client, "alone-0", lambda: not stop.is_set()),
                              kwargs={"wait_seconds": 1, "claim_next": True})
    worker.start()
    s = Client(server.url, submit_key)

    def submit():
        checked(s.call("POST", "/v1/transcribe", body=UPLOAD, headers={"Content-Type": UPLOAD_TYPE}))

    for _ in range(20):  # the worker is online and waiting, the statements prepared
        submit()
    server_cpu0, pg_cpu0, t0 = cpu_seconds_tree(server.proc.pid), postgres_cpu(), time.monotonic()
    for _ in range(cycles):
        submit()
    wall = time.monotonic() - t0
    server_cpu, pg_cpu = cpu_seconds_tree(server.proc.pid) - server_cpu0, postgres_cpu() - pg_cpu0
    stop.set()
    worker.join()
    return wall * 1000 / cycles, server_cpu * 1000 / cycles, pg_cpu * 1000 / cycles


def trust(server, keys):
    """Long-standing trusted volunteers: results delivered at once and spot-checked at the floor
    rate (JPT_SPOT_CHECK_MIN_RATE, 5 %), the pool's steady state. Each spot check is one more run
    of a clip, which the workers do without it counting as a cycle. (A key trusted a moment ago
    would be checked at 1 in 10; a new key's every result waits for a check by another key.)"""
    code = ("from accounts.models import ApiKey; from pool.models import KeyTrust\n"
            "from pool.verification import trust_grant\n"
            f"for raw in {keys!r}:\n"
            "    pk = ApiKey.objects.for_bearer(raw).pk; trust_grant(key_id=pk)\n"
            "    KeyTrust.objects.filter(key_id=pk).update(consecutive_agreements=1000)")
    server.manage("shell", "-c", code)


def server_errors(server):
    """The server's logged errors with their tracebacks: a bench run should have none."""
    log = (Path(server.tmp.name) / "server.log").read_text(errors="replace")
    records = re.split(r"\n(?=\d{4}-\d\d-\d\d \d\d:)", log)  # a record starts with its time
    return [record for record in records if " ERROR " in record.split("\n", 1)[0]]


def cpu_seconds_self():
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def transactions(server):
    """Committed transactions in the bench database so far (each autocommit query is one)."""
    if not server.db_name:
        return 0
    import psycopg

    with psycopg.connect(server.env["DATABASE_URL"].replace("postgres://", "postgresql://")) as conn:
        return conn.execute("SELECT xact_commit FROM pg_stat_database WHERE datname = %s",
                            [server.db_name]).fetchone()[0]


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--submitters", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=3)
    parser.add_argument("--processes", type=int, default=2, help="client processes of each kind")
    parser.add_argument("--web-workers", type=int, default=2)
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/jptranscribe"))
    parser.add_argument("--cache-url", default=os.environ.get("JPT_CACHE_URL", "redis://127.0.0.1:6379/14"),
                        help="shared cache for rate-limit counters ('' for the database cache)")
    parser.add_argument("--sqlite", action="store_true", help="bench the embedded SQLite set-up instead")
    parser.add_argument("--fetch-audio", action="store_true",
                        help="workers fetch audio with its own request instead of taking it from the claim")
    parser.add_argument("--one-at-a-time", type=int, default=300, metavar="CYCLES",
                        help="first, that many cycles with one caller and one worker, nothing else running (0: skip)")
    parser.add_argument("--claim-each", action="store_true",
                        help="workers claim every job with a request of its own (no claim_next in the completion)")
    args = parser.parse_args()

    env = {"JPT_CACHE_URL": args.cache_url, "JPT_RATE_USER": "10000000/m", "JPT_RATE_WORKER": "10000000/m", "JPT_KEYS_PER_IP_PER_DAY": "100000",
           "JPT_TRANSCRIBE_WAIT_SECONDS": "30", "LOG_LEVEL": "WARNING",
           # Every submitter calls from this machine's one address: each needs a place to wait there
           # (else its call is answered 202 at once and the job runs with nobody waiting for it).
           "JPT_TRANSCRIBE_WAITING_PER_ADDRESS": str(max(16, args.submitters)),
           # The stand-in workers answer at once, which a real engine could not: not a strike here.
           "JPT_MIN_SECONDS_PER_AUDIO_SECOND": "0"}
    with LiveServer(database_url=None if args.sqlite else args.database_url, workers=args.web_workers,
                    env=env) as server:
        worker_keys = [server.mint_key() for _ in range(args.workers)]
        trust(server, worker_keys)
        submit_keys = [server.mint_key() for _ in range(args.submitters)]
        for key in submit_keys:
            server.manage("credits", "grant", key, "1000000", "--reason", "bench")
        alone = None
        if args.one_at_a_time:  # first: queued spot checks of another phase's results would be its worker's too
            alone_keys = [server.mint_key(), server.mint_key()]
            trust(server, alone_keys[1:])
            server.manage("credits", "grant", alone_keys[0], "1000000", "--reason", "bench")
            alone = one_at_a_time(server, *alone_keys, cycles=args.one_at_a_time)
        out = mp.Queue()
        now = time.monotonic()
        start, deadline = now + args.warmup, now + args.warmup + args.seconds
        procs = [mp.Process(target=worker_process, args=(server.url, worker_keys[i::args.processes], deadline + 3,
                                                        not args.fetch_audio, not args.claim_each, out))
                 for i in range(args.processes)]
        procs += [mp.Process(target=submitter_process, args=(server.url, submit_keys[i::args.processes], start,
                                                             deadline, out)) for i in range(args.processes)]
        for p in procs:
            p.start()
        time.sleep(max(0.0, start - time.monotonic()))
        server_cpu0, pg_cpu0 = cpu_seconds_tree(server.proc.pid), postgres_cpu()
        xacts0 = transactions(server)
        time.sleep(max(0.0, deadline - time.monotonic()))
        server_cpu = cpu_seconds_tree(server.proc.pid) - server_cpu0
        pg_cpu = postgres_cpu() - pg_cpu0
        xacts = transactions(server) - xacts0
        claims, cycles, submitted, unwaited, client_cpu = {}, [], set(), [], 0.0
        for _ in range(len(procs) * 2 + args.processes * 2):
            kind, rows = out.get()
            if kind == "claims":
                claims.update({job_id: t for job_id, t in rows})
            elif kind == "cycles":
                cycles.extend(rows)
            elif kind == "submitted":
                submitted.update(rows)
            elif kind == "unwaited":
                unwaited.extend(rows)
            else:
                client_cpu += rows
        for p in procs:
            p.join()
        errors = server_errors(server)
        light_key = server.mint_key()
        trust(server, [light_key])
        light, light_queued = light_load_dispatch(server.url, submit_keys[0], light_key)

    dispatch = [(claims[job_id] - t0) * 1000 for job_id, t0, _ in cycles if job_id in claims]
    cycle_ms = [(t1 - t0) * 1000 for _, t0, t1 in cycles]
    mode = "SQLite" if args.sqlite else "PostgreSQL"
    print(f"pool bench on {mode}: {args.web_workers} gunicorn processes, {args.workers} workers "
          f"(audio {'fetched' if args.fetch_audio else 'in the claim'}), {args.submitters} submitters, "
          f"{args.seconds:g} s measured")
    print(f"  job cycles/s      {len(cycles) / args.seconds:8.1f}   ({len(cycles)} cycles)")
    print(f"  cycle latency ms  p50 {statistics.median(cycle_ms):6.1f}   p99 {percentile(cycle_ms, 99):6.1f}")
    print(f"  dispatch ms, saturated  p50 {statistics.median(dispatch):6.1f}   p99 {percentile(dispatch, 99):6.1f}")
    print(f"  dispatch ms, light load (one clip at a time, idle workers long-polling)   "
          f"p50 {statistics.median(light):6.1f}   p99 {percentile(light, 99):6.1f}")
    print(f"    of which from entering the queue to a worker holding it                     "
          f"p50 {statistics.median(light_queued):6.1f}   p99 {percentile(light_queued, 99):6.1f}")
    per_cycle = 1000 / max(1, len(cycles))
    print(f"  CPU per cycle ms  server {server_cpu * per_cycle:5.1f}   PostgreSQL {pg_cpu * per_cycle:5.1f}   "
          f"(clients used {client_cpu:.1f} s over the whole run)")
    if alone:
        print(f"  one at a time (one caller, one worker)   {alone[0]:5.1f} ms a cycle   CPU per cycle ms  "
              f"server {alone[1]:5.1f}   PostgreSQL {alone[2]:5.1f}")
    if xacts:
        print(f"  database transactions per cycle {xacts / max(1, len(cycles)):.1f}")
    if errors:
        print(f"  SERVER ERRORS: {len(errors)} (the first below)\n{errors[0][-4000:]}")
    if unwaited:
        print(f"  NOT CYCLES: {len(unwaited)} submissions answered 202 (no place to wait), run with nobody waiting")
    checks = len(set(claims) - submitted)
    print(f"  spot checks run  {checks} ({checks / max(1, len(claims)) * 100:.1f} % of the workers' runs)")


if __name__ == "__main__":
    main()
