"""Speech engines behind one interface, shared by volunteers' workers and the server demo.

An engine loads its model once and is reused for every clip; `transcribe` takes the
uploaded bytes (any accepted format) and the caller's options, and returns text, timed
segments (with Whisper's statistics for each, and its words when asked), the model name and
what it could not do of what was asked.
"""

from __future__ import annotations

import json
import math
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from worker_client import audio
from worker_client.japanese import Word, join_words, sentence_words, whole_words

# Whisper's default: greedy first, one retry warmer when the text repeats itself or is unlikely.
TEMPERATURE_FALLBACK = (0.0, 0.4)


class Stopped(Exception):
    """The engine stopped before the end of the clip, as its `should_stop` asked."""


def _stop_if_asked(should_stop: Callable[[], bool] | None) -> None:
    if should_stop is not None and should_stop():
        raise Stopped("stopped before the end of the clip")


@dataclass
class Result:
    text: str
    # [{"start", "end", "text", "seek", "tokens", "temperature", "avg_logprob", "compression_ratio",
    #   "no_speech_prob", "words"?: [{"word", "start", "end"}]}]; join_words of a segment's words is its text.
    segments: list[dict] = field(default_factory=list)
    model: str = ""
    # What the engine did not do of what the caller asked ("prompt ignored: …").
    warnings: list[str] = field(default_factory=list)


class Engine:
    name = "engine"

    def __init__(self, model_path: Path, model_name: str, threads: int = 0):
        self.model_path = Path(model_path)
        self.model_name = model_name
        self.threads = threads

    def transcribe(
        self,
        data: bytes,
        *,
        max_seconds: float | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
        word_timestamps: bool = False,
        should_stop: Callable[[], bool] | None = None,
    ) -> Result:
        """The clip's text; decoding stops with an AudioError past `max_seconds`.

        `prompt` is text the speech is likely to resemble (names, spellings), `temperature` a
        single sampling temperature instead of the engine's default, `word_timestamps` asks for
        each segment's timed words. `should_stop` is asked as the work goes on (between Vosk's
        half-second chunks, between Whisper's segments): when it says so, Stopped is raised."""
        raise NotImplementedError


def compression_ratio(text: str) -> float:
    """How well the text compresses, as Whisper measures it (a repeating text scores high)."""
    encoded = text.encode()
    return len(encoded) / len(zlib.compress(encoded)) if encoded else 0.0


def _timed_words(words: list[Word], start: float, end: float) -> list[dict]:
    """Words as the protocol sends them, their times rounded and inside their segment's."""
    timed = []
    for w in words:
        w_start = round(min(max(w.start, start), end), 3)
        timed.append({"word": w.text, "start": w_start, "end": round(min(max(w.end, w_start), end), 3)})
    return timed


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

    def words(
        self, data: bytes, *, max_seconds: float | None = None, should_stop: Callable[[], bool] | None = None
    ) -> list[Word]:
        pcm = audio.decode_pcm16(data, max_seconds=max_seconds)
        rec = self._recognizer()
        words: list[Word] = []

        def collect(result_json):
            for w in json.loads(result_json).get("result", []):
                conf = w.get("conf")
                words.append(
                    Word(w["word"], float(w["start"]), float(w["end"]), float(conf) if conf is not None else None)
                )

        try:
            for offset in range(0, len(pcm), self.CHUNK_FRAMES):
                _stop_if_asked(should_stop)
                if rec.AcceptWaveform(pcm[offset : offset + self.CHUNK_FRAMES].tobytes()):
                    collect(rec.Result())  # must be read, or AcceptWaveform keeps answering True
            collect(rec.FinalResult())
        finally:
            rec.Reset()
        return words

    def transcribe(
        self,
        data: bytes,
        *,
        max_seconds: float | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
        word_timestamps: bool = False,
        should_stop: Callable[[], bool] | None = None,
    ) -> Result:
        """Vosk times every word anyway, so segments always carry their words. It takes no
        prompt and does not sample (it decodes as Whisper does at temperature 0): asking for
        either is answered with a warning."""
        segments = [
            self._segment(group)
            for group in sentence_words(self.words(data, max_seconds=max_seconds, should_stop=should_stop))
        ]
        warnings = []
        if prompt:
            warnings.append("prompt ignored: the Vosk engine takes no prompt")
        if temperature:
            warnings.append(
                f"temperature {temperature:g} ignored: the Vosk engine does not sample (it decodes as at 0)"
            )
        return Result(
            text="".join(s["text"] for s in segments), segments=segments, model=self.model_name, warnings=warnings
        )

    @staticmethod
    def _segment(words: list[Word]) -> dict:
        """A sentence with stand-ins for Whisper's statistics, true to what Vosk knows: no tokens,
        one window from the start (`seek` 0), temperature 0, the mean log of its words'
        confidences as `avg_logprob` (null without them), the text's own compression ratio, and
        no no-speech estimate (null)."""
        start, end = round(words[0].start, 3), round(words[-1].end, 3)
        text = join_words([w.text for w in words])
        confs = [w.conf for w in words if w.conf is not None]
        avg_logprob = sum(math.log(max(c, 1e-6)) for c in confs) / len(confs) if len(confs) == len(words) else None
        return {
            "start": start,
            "end": end,
            "text": text,
            "seek": 0,
            "tokens": [],
            "temperature": 0.0,
            "avg_logprob": round(avg_logprob, 4) if avg_logprob is not None else None,
            "compression_ratio": round(compression_ratio(text), 4),
            "no_speech_prob": None,
            "words": _timed_words(words, start, end),
        }


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

    def transcribe(
        self,
        data: bytes,
        *,
        max_seconds: float | None = None,
        prompt: str | None = None,
        temperature: float | None = None,
        word_timestamps: bool = False,
        should_stop: Callable[[], bool] | None = None,
    ) -> Result:
        """A caller's temperature replaces the fallback (one pass at that temperature)."""
        samples = audio.decode_float32(data, max_seconds=max_seconds)
        _stop_if_asked(should_stop)
        segments, _ = self._model.transcribe(
            samples,
            language="ja",
            task="transcribe",
            beam_size=self.beam_size,
            vad_filter=True,
            condition_on_previous_text=False,
            initial_prompt=prompt or None,
            temperature=TEMPERATURE_FALLBACK if temperature is None else temperature,
            compression_ratio_threshold=2.4,
            no_speech_threshold=0.6,
            word_timestamps=word_timestamps,
        )
        length = len(samples) / audio.SAMPLE_RATE
        segs = []
        for s in segments:  # decoded as they are asked for: each window after the last
            _stop_if_asked(should_stop)
            seg = self._segment(s, length, word_timestamps)
            if seg["text"]:
                segs.append(seg)
        return Result(text="".join(s["text"] for s in segs), segments=segs, model=self.model_name)

    @staticmethod
    def _segment(s, length: float, word_timestamps: bool) -> dict:
        """Whisper's timestamps can overshoot the end of the audio, and it spaces Japanese
        sentences apart; neither should reach the user. With word timings the text is made from
        the words, so that joining them gives it back exactly."""
        start = round(min(s.start, length), 3)
        end = round(min(max(s.end, s.start), length), 3)
        segment: dict = {"start": start, "end": end, "text": join_words(s.text.split())}
        if word_timestamps:
            words = whole_words([Word(w.word, w.start, w.end) for w in s.words or ()])
            if words:
                segment["text"] = join_words([w.text for w in words])
            segment["words"] = _timed_words(words, start, end)
        return {
            **segment,
            "seek": int(s.seek),
            "tokens": [int(t) for t in s.tokens],
            "temperature": float(s.temperature) if s.temperature is not None else None,
            "avg_logprob": float(s.avg_logprob),
            "compression_ratio": float(s.compression_ratio),
            "no_speech_prob": float(s.no_speech_prob),
        }


def load_engine(engine: str, model_path, model_name: str, *, threads: int = 0, beam_size: int = 1) -> Engine:
    if engine == "vosk":
        return VoskEngine(model_path, model_name, threads)
    if engine == "whisper":
        return WhisperEngine(model_path, model_name, threads, beam_size=beam_size)
    raise ValueError(f"unknown engine {engine!r}: use vosk or whisper")
