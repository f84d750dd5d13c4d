"""Translation speed with a random-weight model of OPUS-MT ja-en's exact size (6+6 layers,
d_model 512, 8 heads, FFN 2048, 32k vocabulary, int8).

Random weights never say "stop", so here each sentence is stopped at 1.5x its own length,
about where a real model stops by itself (the server's default bound, 3x, is only a safety
bound; both are per sentence). Prints CTranslate2's own speed on the same sentences (what
the engine and the API are measured against), then, for the engine in this process:
sentences per second for a 50-sentence request, for 8 concurrent clients sending 50, 5 or 1
sentences (with and without sharing calls between requests), and this process's peak memory.

    .venv/bin/python bench/translate.py                   # the engine, in this process
    .venv/bin/python bench/translate.py --threads 1,2     # inter_threads,intra_threads
    .venv/bin/python bench/translate.py --serve           # also through the real server's API
    .venv/bin/python bench/translate.py --url URL --key jpt_…   # a server already running
"""
import argparse
import concurrent.futures
import csv
import gc
import multiprocessing
import re
import resource
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.figures import percentile  # noqa: E402

CLIENTS = 8
LENGTH_FACTOR = 1.5


def corpus_sentences():
    """Real Japanese sentences: the speech corpus's text, split at 。！？."""
    with open(ROOT / "tests" / "speech" / "sentences.tsv", encoding="utf-8") as f:
        text = "".join(row["text"] for row in csv.DictReader(f, delimiter="\t"))
    return [s for s in re.findall(r"[^。！？]+[。！？]", text) if len(s) > 3]


SENTENCES = corpus_sentences()


def cut_sentences(model_dir: Path, tokens: int):
    """The corpus's sentences cut to about `tokens` source pieces each (the last one is 。), to
    measure at a chosen length: OPUS-MT's own 32k SentencePiece cuts Japanese coarser than
    the bench's, which was trained on this small corpus."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_file=str(model_dir / "source.spm"))
    cut = [sp.decode(sp.encode(s.rstrip("。！？"), out_type=str)[: tokens - 1]) + "。" for s in SENTENCES]
    return [s for s in cut if len(sp.encode(s)) >= tokens - 1]


def sentences(n, offset=0):
    return [SENTENCES[(offset + i) % len(SENTENCES)] for i in range(n)]


def build_model(work: Path) -> Path:
    """OPUS-MT-sized release, converted as `translation_model fetch` does. Run in a child
    process so that building it does not count in this process's peak memory."""
    from tests.translation.tiny_model import converted_model, write_opus_mt_release

    # SentencePiece trained on the corpus's own text, which cuts it finer than OPUS-MT's
    # 32k pieces would: the sentences here are longer in tokens than in real use.
    release = write_opus_mt_release(work / "release", vocab_size=32000, d_model=512, heads=8, ffn=2048, layers=6,
                                    spm_vocab=1500, spm_lines=SENTENCES)
    return converted_model(release, work / "opus-mt-ja-en")


def bench_raw(model_dir: Path, sentences: list[str], inter_threads: int, intra_threads: int):
    """CTranslate2 by itself on the same sentences, with the engine's translators and decoding
    options but nothing around them (no sharing, no SentencePiece decoding, no server): what
    the engine and the API add or save. Run in a child process, so that its copies of the
    model do not count in this one's memory."""
    from translation.engine import TranslationModel

    model = TranslationModel(model_dir, inter_threads=inter_threads, intra_threads=intra_threads, cache_size=0,
                             length_factor=LENGTH_FACTOR)
    tokens = [model.source.encode(s, out_type=str) for s in sentences]

    def run(translator, batch, **more):
        return translator.translate_batch(batch, **model.decoding_options(batch), **more)

    run(model.solo, tokens[:2])
    single = []
    for i in range(30):
        t0 = time.perf_counter()
        run(model.solo, [tokens[i % len(tokens)]])
        single.append((time.perf_counter() - t0) * 1000)

    def fifty(offset):
        batch = [tokens[(offset + i) % len(tokens)] for i in range(50)]
        half = len(batch) // inter_threads
        t0 = time.perf_counter()
        parts = [run(model.translator, batch[i:i + half], asynchronous=True) for i in range(0, len(batch), half)]
        [r.result() for part in parts for r in part]
        return time.perf_counter() - t0

    rates = [50 / fifty(50 * i) for i in range(3)]
    del model
    gc.collect()
    return statistics.median(single), statistics.median(rates)


def clients(translate, per_request, rounds):
    """CLIENTS threads each sending `rounds` requests: sentences/s, sentences per CPU-second
    of this process (steadier than the first when something else shares the machine), and
    the mean latency in ms."""
    latencies = []

    def client(c):
        for r in range(rounds):
            t0 = time.perf_counter()
            translate(sentences(per_request, offset=(c * rounds + r) * per_request))
            latencies.append((time.perf_counter() - t0) * 1000)

    t0, cpu0 = time.perf_counter(), time.process_time()
    with concurrent.futures.ThreadPoolExecutor(max_workers=CLIENTS) as pool:
        list(pool.map(client, range(CLIENTS)))
    count = CLIENTS * rounds * per_request
    return count / (time.perf_counter() - t0), count / (time.process_time() - cpu0), statistics.mean(latencies)


def bench_engine(model_dir: Path, inter_threads: int, intra_threads: int):
    from translation.engine import TranslationModel

    # Random weights never say "stop": each sentence stops at 1.5x its own length, as the server's
    # per-sentence bound does with JPT_TRANSLATION_LENGTH_FACTOR=1.5.
    model = TranslationModel(model_dir, inter_threads=inter_threads, intra_threads=intra_threads, cache_size=0,
                             length_factor=LENGTH_FACTOR)
    shared_pieces = model.shared.max_pieces
    tokens = [len(model.source.encode(s)) for s in SENTENCES]
    print(f"engine: inter_threads {inter_threads}, intra_threads {intra_threads}; "
          f"{statistics.mean(tokens):.0f} source tokens a sentence on average")
    model.translate_sentences(sentences(5))  # warm up

    print(f"  {'':34s}sentences/s  per CPU-second  ms a request")
    times, cpu = [], []
    for i in range(5):
        t0, cpu0 = time.perf_counter(), time.process_time()
        model.translate_sentences(sentences(50, offset=50 * i))
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - cpu0)
    print(f"  {'one 50-sentence request':34s}{50 / statistics.median(times):11.1f}  {50 / statistics.median(cpu):14.1f}"
          f"  {statistics.median(times) * 1000:12.0f}")
    for per_request, rounds in ((50, 2), (5, 4), (1, 8)):
        for shared in (True, False):
            model.shared.max_pieces = shared_pieces if shared else 0
            rate, per_cpu, latency = clients(model.translate_sentences, per_request, rounds)
            label = f"{CLIENTS} clients x {per_request:2d} sentences" + ("" if shared else ", unshared")
            print(f"  {label:34s}{rate:11.1f}  {per_cpu:14.1f}  {latency:12.0f}")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"  peak RSS of this process: {peak:.0f} MB")
    # A translator that ran Python callbacks aborts the interpreter if it is still there at exit.
    del model
    gc.collect()


def bench_http(url: str, key: str, requests_count: int):
    import requests

    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"

    def translate(texts):
        t0 = time.perf_counter()
        response = session.post(f"{url}/v1/translate", json={"text": "".join(texts)}, timeout=300)
        response.raise_for_status()
        return time.perf_counter() - t0

    print(f"HTTP: {url}/v1/translate")
    translate(sentences(5, offset=10**6))  # warm up
    single = [translate(sentences(1, offset=i)) * 1000 for i in range(requests_count)]
    print(f"  one sentence                      p50 {statistics.median(single):6.1f} ms   "
          f"p99 {percentile(single, 99):6.1f} ms")
    fifty = [translate(sentences(50, offset=10_000 + 50 * i)) for i in range(3)]
    print(f"  one 50-sentence request           {50 / statistics.median(fifty):6.1f} sentences/s")
    for per_request, rounds in ((5, 4), (50, 1)):
        rate, _, latency = clients(translate, per_request, rounds)
        print(f"  {CLIENTS} clients x {per_request:2d} sentences         {rate:6.1f} sentences/s   "
              f"({latency:.0f} ms a request)")


def serve(model_dir: Path, requests_count: int):
    """The real server (gunicorn) with this model; its sentence cache off."""
    from tests.live import LiveServer, children_of

    env = {"JPT_TRANSLATION_MODEL": str(model_dir), "JPT_TRANSLATION_EAGER": "True", "JPT_RATE_USER": "1000000/m",
           "JPT_TRANSLATION_CACHE_SIZE": "0", "LOG_LEVEL": "WARNING",
           # As in the engine figures: stop near where a real model would (the default bound is 3x).
           "JPT_TRANSLATION_LENGTH_FACTOR": str(LENGTH_FACTOR)}
    with LiveServer(workers=1, env=env) as server:
        bench_http(server.url, server.mint_key(), requests_count)
        peaks = [int(line.split()[1]) for pid in [server.proc.pid, *children_of(server.proc.pid)]
                 for line in Path(f"/proc/{pid}/status").read_text().splitlines() if line.startswith("VmHWM:")]
        print(f"  server peak RSS                   {max(peaks) / 1024:6.0f} MB")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", default="2,1", help="inter_threads,intra_threads (default 2,1)")
    parser.add_argument("--serve", action="store_true", help="also measure through the real server's API")
    parser.add_argument("--url", help="measure only a running server's POST /v1/translate (needs --key)")
    parser.add_argument("--key", help="an API key of that server")
    parser.add_argument("--requests", type=int, default=50, help="single-sentence requests over HTTP")
    parser.add_argument("--source-tokens", type=int,
                        help="cut each sentence to about this many source pieces (the issue's reference: 16)")
    args = parser.parse_args()
    if args.url:
        if not args.key:
            parser.error("--url needs --key")
        bench_http(args.url.rstrip("/"), args.key, args.requests)
        return

    inter_threads, intra_threads = (int(n) for n in args.threads.split(","))
    with tempfile.TemporaryDirectory(prefix="jpt-translate-bench-") as work:
        started = time.perf_counter()
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            model_dir = pool.apply(build_model, (Path(work),))
        if args.source_tokens:
            global SENTENCES
            SENTENCES = cut_sentences(model_dir, args.source_tokens)
        print(f"model: OPUS-MT-sized random transformer, int8, {(model_dir / 'model.bin').stat().st_size / 1e6:.0f} "
              f"MB on disk (built in {time.perf_counter() - started:.0f} s)")
        with multiprocessing.get_context("spawn").Pool(1) as pool:
            single, fifty = pool.apply(bench_raw, (model_dir, SENTENCES, inter_threads, intra_threads))
        print(f"CTranslate2 alone: one sentence on every core p50 {single:.1f} ms; "
              f"50 sentences split by count over {inter_threads} replicas {fifty:.1f} sentences/s")
        bench_engine(model_dir, inter_threads, intra_threads)
        if args.serve:
            serve(model_dir, args.requests)


if __name__ == "__main__":
    main()
