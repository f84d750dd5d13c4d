"""Speech engines behind one interface, shared by volunteers' workers and the server demo.

An engine loads its model once and is reused for every clip; `transcribe` takes the
uploaded bytes (any accepted format) and returns text, timed segments and the model name.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from pathlib import Path

from worker_client import audio
from worker_client.japanese import Word, join_words, sentences_from_words


@dataclass
class Result:
    text: str
    segments: list[dict] = field(default_factory=list)  # [{"start", "end", "text"}]
    model: str = ""


class Engine:
    name = "engine"

    def __init__(self, model_path: Path, model_name: str, threads: int = 0):
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.threads = threads

    def transcribe(self, data: bytes, *, max_seconds: float | None = None) -> Result:
        """The clip's text; decoding stops with an AudioError past `max_seconds`."""
        raise NotImplementedError


class VoskEngine(Engine):
    """Kaldi via Vosk: 16 kHz PCM fed in chunks, word timings on, one recognizer per thread
    (a fresh recognizer per clip ran at RTF 0.39 here, a reused one at 0.12)."""

    name = "vosk"
    CHUNK_FRAMES = 8000  # half a second

    def __init__(self, model_path, model_name, threads=0):
        super().__init__(model_path, model_name, threads)
        import vosk

        vosk.SetLogLevel(-1)
        self._vosk = vosk
        self._model = vosk.Model(str(self.model_path))
        self._local = threading.local()

    def _recognizer(self):
        rec = getattr(self._local, "recognizer", None)
        if rec is None:
            rec = self._vosk.KaldiRecognizer(self._model, audio.SAMPLE_RATE)
            rec.SetWords(True)
            self._local.recognizer = rec
        return rec

    def words(self, data: bytes, *, max_seconds: float | None = None) -> list[Word]:
        pcm = audio.decode_pcm16(data, max_seconds=max_seconds)
        rec = self._recognizer()
        words: list[Word] = []

        def collect(result_json):
            for w in json.loads(result_json).get("result", []):
                words.append(Word(w["word"], float(w["start"]), float(w["end"])))

        try:
            for offset in range(0, len(pcm), self.CHUNK_FRAMES):
                if rec.AcceptWaveform(pcm[offset : offset + self.CHUNK_FRAMES].tobytes()):
                    collect(rec.Result())  # must be read, or AcceptWaveform keeps answering True
            collect(rec.FinalResult())
        finally:
            rec.Reset()
        return words

    def transcribe(self, data: bytes, *, max_seconds: float | None = None) -> Result:
        sentences = sentences_from_words(self.words(data, max_seconds=max_seconds))
        return Result(
            text="".join(text for _, _, text in sentences),
            segments=[{"start": s, "end": e, "text": t} for s, e, t in sentences],
            model=self.model_name,
        )


class WhisperEngine(Engine):
    """Whisper on CTranslate2 (faster-whisper), int8 on the CPU, Japanese only.

    Voice-activity filtering keeps silence from turning into invented text, and the
    temperature fallback is bounded: on garbage audio the full fallback ran slower
    than real time here.
    """

    name = "whisper"

    def __init__(self, model_path, model_name, threads=0, beam_size=1):
        super().__init__(model_path, model_name, threads)
        from faster_whisper import WhisperModel

        self.beam_size = beam_size
        self._model = WhisperModel(str(self.model_path), device="cpu", compute_type="int8", cpu_threads=threads or 0)

    def transcribe(self, data: bytes, *, max_seconds: float | None = None) -> Result:
        samples = audio.decode_float32(data, max_seconds=max_seconds)
        segments, _ = self._model.transcribe(
            samples,
            language="ja",
            task="transcribe",
            beam_size=self.beam_size,
            vad_filter=True,
            condition_on_previous_text=False,
            temperature=(0.0, 0.4),
            compression_ratio_threshold=2.4,
            no_speech_threshold=0.6,
        )
        length = len(samples) / audio.SAMPLE_RATE
        segs = [
            # Whisper's timestamps can overshoot the end of the audio, and it spaces Japanese
            # sentences apart; neither should reach the user.
            {
                "start": round(min(s.start, length), 3),
                "end": round(min(s.end, length), 3),
                "text": join_words(s.text.split()),
            }
            for s in segments
        ]
        segs = [s for s in segs if s["text"]]
        return Result(text="".join(s["text"] for s in segs), segments=segs, model=self.model_name)


def load_engine(engine: str, model_path, model_name: str, *, threads: int = 0, beam_size: int = 1) -> Engine:
    if engine == "vosk":
        return VoskEngine(model_path, model_name, threads)
    if engine == "whisper":
        return WhisperEngine(model_path, model_name, threads, beam_size=beam_size)
    raise ValueError(f"unknown engine {engine!r}: use vosk or whisper")
