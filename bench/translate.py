"""Translation speed with a random-weight model of OPUS-MT ja-en's exact size (6+6 layers,
d_model 512, 8 heads, FFN 2048, 32k vocabulary, int8), served by the real server.

Random weights never stop early, so decoding is capped at 1.5x the source length (as the
engine always does). Prints single-sentence latency through the API, sentences per second
for a 50-sentence request and for 8 concurrent clients, and the server's peak memory.

    .venv/bin/python bench/translate.py [--requests 100]
"""
import argparse
import concurrent.futures
import statistics
import sys
import tempfile
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import percentile  # noqa: E402
from tests.live import LiveServer  # noqa: E402
from tests.translation.tiny_model import converted_model, write_opus_mt_release  # noqa: E402


def corpus_sentences():
    """Real Japanese sentences: the speech corpus's text, split at 。！？."""
    import csv
    import re

    with open(ROOT / "tests" / "speech" / "sentences.tsv", encoding="utf-8") as f:
        text = "".join(row["text"] for row in csv.DictReader(f, delimiter="\t"))
    return [s for s in re.findall(r"[^。！？]+[。！？]", text) if len(s) > 3]


SENTENCES = corpus_sentences()


def sentences(n, offset=0):
    return [SENTENCES[(offset + i) % len(SENTENCES)] for i in range(n)]


def peak_rss_mb(root_pid):
    """Highest peak resident memory among the server's processes."""
    import os

    peaks = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            status = Path(f"/proc/{entry}/status").read_text()
            ppid = int(next(line.split()[1] for line in status.splitlines() if line.startswith("PPid:")))
            if int(entry) == root_pid or ppid == root_pid:
                peaks.append(int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))))
        except (OSError, StopIteration, ValueError):
            continue
    return max(peaks) / 1024


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=100)
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="jpt-translate-bench-"))
    started = time.perf_counter()
    # SentencePiece trained on our Japanese text: sentences come out in realistic numbers of pieces.
    release = write_opus_mt_release(work / "release", vocab_size=32000, d_model=512, heads=8, ffn=2048, layers=6,
                                    spm_vocab=1500, spm_lines=SENTENCES)
    model = converted_model(release, work / "opus-mt-ja-en")
    size_mb = (model / "model.bin").stat().st_size / 1e6
    print(f"model: OPUS-MT-sized random transformer, int8 {size_mb:.0f} MB on disk "
          f"(built in {time.perf_counter() - started:.0f} s)")

    # No sentence cache: every sentence is really translated.
    env = {"JPT_TRANSLATION_MODEL": str(model), "JPT_TRANSLATION_EAGER": "True", "JPT_RATE_USER": "1000000/m",
           "JPT_TRANSLATION_CACHE_SIZE": "0",
           "LOG_LEVEL": "WARNING"}
    with LiveServer(workers=1, threads=32, env=env) as server:
        key = server.mint_key()
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"

        def translate(texts):
            t0 = time.perf_counter()
            response = session.post(f"{server.url}/v1/translate", json={"text": "".join(texts)}, timeout=120)
            response.raise_for_status()
            return time.perf_counter() - t0

        translate(sentences(5, offset=10**6))  # warm up
        single = [translate(sentences(1, offset=i)) * 1000 for i in range(args.requests)]
        print(f"  one sentence through the API      p50 {statistics.median(single):6.1f} ms   "
              f"p99 {percentile(single, 99):6.1f} ms")

        fifty = [translate(sentences(50, offset=10_000 + 50 * i)) for i in range(5)]
        print(f"  50-sentence request               {50 / statistics.median(fifty):6.1f} sentences/s   "
              f"({statistics.median(fifty) * 1000:.0f} ms each)")

        with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
            t0 = time.perf_counter()
            list(pool.map(lambda i: translate(sentences(50, offset=100_000 + 50 * i)), range(16)))
            elapsed = time.perf_counter() - t0
        print(f"  8 concurrent clients              {16 * 50 / elapsed:6.1f} sentences/s")
        print(f"  server peak RSS with the model    {peak_rss_mb(server.proc.pid):6.0f} MB")


if __name__ == "__main__":
    main()
