"""Webhook delivery: how fast a backlog of pending events drains, and how long after a
transcription ends its event reaches a receiver on this machine.

    .venv/bin/python bench/webhooks.py            # PostgreSQL + Redis (DATABASE_URL, JPT_CACHE_URL)
    .venv/bin/python bench/webhooks.py --sqlite   # the embedded set-up

1. Backlog: `--events` transcriptions end while no process delivers (JPT_WEBHOOK_DELIVERY=false),
   then `manage.py webhooks deliver` starts: deliveries per second until the last one arrives.
2. Steady: the app servers deliver (their own loops), transcriptions end at `--rate` a second:
   the delay from each one's end (`completed_at`, stored by the server) to its arrival.
"""
import argparse
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.figures import Client, multipart_file, percentile  # noqa: E402
from tests.clips import wav_bytes  # noqa: E402
from tests.live import ROOT, LiveServer  # noqa: E402
from tests.receiver import Receiver  # noqa: E402

UPLOAD, UPLOAD_TYPE = multipart_file("file", "a.wav", wav_bytes(1.0, rate=8000))


def with_field(body: bytes, content_type: str, name: str, value: str) -> bytes:
    """The multipart body with one more (text) field before its end."""
    boundary = content_type.split("boundary=", 1)[1]
    end = f"--{boundary}--\r\n".encode()
    part = f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
    return body[: -len(end)] + part + end


def checked(answer, status=200):
    if answer[0] != status:
        raise RuntimeError(f"{answer[0]}: {answer[1]!r:.300}")
    return answer[1]


def transcriptions_end(server, key, webhook_url, count, rate=None, workers=4):
    """Send `count` clips naming `webhook_url`; the key's own workers finish them (at `rate` a
    second, or as fast as they can)."""
    for i in range(workers):  # online first: the clips go to the key's own workers
        checked(Client(server.url, key).call("POST", "/v1/worker/heartbeat", json={"worker_id": f"w{i}"}))
    submit = Client(server.url, key)
    upload = with_field(UPLOAD, UPLOAD_TYPE, "webhook_url", webhook_url)
    for _ in range(count):
        checked(submit.call("POST", "/v1/transcribe", body=upload,
                            headers={"Content-Type": UPLOAD_TYPE, "Prefer": "respond-async"}), 202)
    left = [count]
    lock = threading.Lock()
    interval = workers / rate if rate else 0.0

    def work(worker_id):
        client = Client(server.url, key)
        next_at = time.monotonic()
        while True:
            with lock:
                if left[0] == 0:
                    return
                left[0] -= 1
            job = checked(client.call("POST", "/v1/pool/claim", json={"worker_id": worker_id, "wait_seconds": 5,
                                                                      "inline_audio": True}))["job"]
            if interval:
                next_at += interval
                time.sleep(max(0.0, next_at - time.monotonic()))
            checked(client.call("POST", f"/v1/pool/jobs/{job['id']}/complete",
                                json={"worker_id": worker_id, "lease_id": job["lease_id"], "text": "テスト",
                                      "model": "bench"}))

    threads = [threading.Thread(target=work, args=(f"w{i}",)) for i in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def arrival_delays_ms(deliveries):
    delays = []
    for delivery in deliveries:
        ended = datetime.fromisoformat(delivery.event["data"]["completed_at"].replace("Z", "+00:00")).timestamp()
        delays.append((delivery.received_wall - ended) * 1000)
    return delays


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50, help="transcriptions ending per second, steady run")
    parser.add_argument("--concurrency", type=int, default=16, help="deliveries in flight per process")
    parser.add_argument("--database-url", default=os.environ.get("DATABASE_URL",
                                                                 "postgres://postgres@127.0.0.1:5432/jptranscribe"))
    parser.add_argument("--cache-url", default=os.environ.get("JPT_CACHE_URL", "redis://127.0.0.1:6379/14"))
    parser.add_argument("--sqlite", action="store_true")
    args = parser.parse_args()

    env = {
        "JPT_CACHE_URL": "" if args.sqlite else args.cache_url,
        "JPT_RATE_USER": "10000000/m",
        "JPT_RATE_WORKER": "10000000/m",
        "JPT_URL_FETCH_ALLOW_HTTP": "true",
        "JPT_URL_FETCH_ALLOWED_NETWORKS": "127.0.0.0/8",
        "JPT_WEBHOOK_CONCURRENCY": str(args.concurrency),
        "JPT_WEBHOOK_DELIVERY": "false",
        "JPT_WORKER_MAX_JOBS": "4",
        "LOG_LEVEL": "WARNING",
    }
    mode = "SQLite" if args.sqlite else "PostgreSQL"
    with LiveServer(database_url=None if args.sqlite else args.database_url, workers=1 if args.sqlite else 2,
                    env=env) as server, Receiver() as receiver:
        key = server.mint_key()
        Client(server.url, key).call("POST", "/v1/webhook-secret")

        # 1. A backlog.
        transcriptions_end(server, key, receiver.url, args.events)
        started = time.monotonic()
        deliverer = subprocess.Popen([sys.executable, "manage.py", "webhooks", "deliver"], cwd=ROOT, env=server.env)
        try:
            arrived = receiver.wait_for(args.events, timeout=600)
        finally:
            deliverer.terminate()
            deliverer.wait(30)
        took = arrived[-1].received_at - started
        flowing = arrived[-1].received_at - arrived[0].received_at
        after_start = [(d.received_at - started) * 1000 for d in arrived]
        print(f"webhook bench on {mode}, receiver on this machine, {args.concurrency} deliveries in flight per process")
        print(f"  backlog of {args.events} pending events: all delivered in {took:.2f} s "
              f"= {args.events / took:.0f} deliveries/s (from the deliverer's start, its own start-up included)")
        print(f"    from the first arrival to the last: {flowing:.2f} s = {(args.events - 1) / flowing:.0f} deliveries/s")
        print(f"    time to arrive after the deliverer started, ms   p50 {statistics.median(after_start):7.0f}"
              f"   p99 {percentile(after_start, 99):7.0f}")

        # 2. Steady: the app servers' own loops.
        server.stop_process()
        server.env["JPT_WEBHOOK_DELIVERY"] = "true"
        server.start_process()
        time.sleep(1)
        before = len(receiver.deliveries)
        transcriptions_end(server, key, receiver.url, args.events, rate=args.rate)
        arrived = receiver.wait_for(before + args.events, timeout=120)[before:]
        delays = arrival_delays_ms(arrived)
        print(f"  {args.events} transcriptions ending at {args.rate:g}/s, delivered by the app servers' loops:")
        print(f"    delay from a transcription's end to its arrival, ms   p50 {statistics.median(delays):6.1f}"
              f"   p99 {percentile(delays, 99):6.1f}   max {max(delays):6.1f}")
        print(f"  every event delivered once: {len({d.headers['webhook-id'] for d in receiver.deliveries})} ids "
              f"for {len(receiver.deliveries)} deliveries")


if __name__ == "__main__":
    main()
