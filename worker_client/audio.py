"""Audio decoding shared by the server's intake and the worker's engines.

PyAV bundles FFmpeg's libraries in its wheel, so nothing here needs a system
package. The server imports this module; it must never import the server.
"""

from __future__ import annotations

import io
import wave
from dataclasses import dataclass

import av
import numpy as np

SAMPLE_RATE = 16000

# FFmpeg demuxer names for the formats the API accepts (WAV, MP3, M4A, FLAC, OGG).
ACCEPTED_FORMATS = {
    "wav": "WAV",
    "mp3": "MP3",
    "mov,mp4,m4a,3gp,3g2,mj2": "M4A",
    "flac": "FLAC",
    "ogg": "OGG",
}


class AudioError(ValueError):
    """The bytes are not audio we can use; the message is safe to show a user."""


@dataclass(frozen=True)
class Probe:
    format: str  # one of ACCEPTED_FORMATS' values
    duration_seconds: float


def _open(data: bytes):
    if not data:
        raise AudioError("The file is empty.")
    try:
        container = av.open(io.BytesIO(data), mode="r")
    except (av.error.FFmpegError, ValueError, OSError):
        raise AudioError("The file is not audio we can decode (WAV, MP3, M4A, FLAC or OGG).")
    fmt = ACCEPTED_FORMATS.get(container.format.name)
    if fmt is None or not container.streams.audio:
        container.close()
        raise AudioError("Unsupported audio format; send WAV, MP3, M4A, FLAC or OGG.")
    return container, fmt


def _frames(container):
    stream = container.streams.audio[0]
    try:
        for packet in container.demux(stream):
            try:
                yield from packet.decode()
            except av.error.InvalidDataError:
                continue  # skip a damaged packet, as players do
    except av.error.FFmpegError:
        return


def probe(data: bytes, *, max_seconds: float | None = None) -> Probe:
    """Measure the real decoded length, not the header's claim.

    Headers lie and a corrupt MP3 decodes to nothing without raising, so the
    duration is the count of decoded samples. Decoding stops early once
    `max_seconds` is exceeded: the caller only needs to know it is too long.
    """
    seconds = _pcm_wav_seconds(data)
    if seconds is not None:
        if seconds <= 0:
            raise AudioError("The file contains no decodable audio.")
        return Probe(format="WAV", duration_seconds=round(seconds, 3))
    container, fmt = _open(data)
    with container:
        seconds = 0.0
        for frame in _frames(container):
            if frame.sample_rate:
                seconds += frame.samples / frame.sample_rate
            if max_seconds is not None and seconds > max_seconds:
                break
    if seconds <= 0:
        raise AudioError("The file contains no decodable audio.")
    return Probe(format=fmt, duration_seconds=round(seconds, 3))


def _pcm_wav_seconds(data: bytes) -> float | None:
    """A plain PCM WAV's length from the samples really present (a header may claim more).

    Every byte of PCM is a sample, so there is nothing to decode: this costs microseconds
    where decoding frame by frame cost ~1 ms a second of audio, and WAV is what the web page
    and most callers send. None for anything else (PyAV decides then).
    """
    if data[:4] != b"RIFF" or data[8:12] != b"WAVE":
        return None
    try:
        with wave.open(io.BytesIO(data)) as wav:
            frame_bytes = wav.getsampwidth() * wav.getnchannels()
            rate = wav.getframerate()
            if not frame_bytes or not 1000 <= rate <= 384_000:
                return None
            present = len(wav.readframes(wav.getnframes())) // frame_bytes
    except (wave.Error, EOFError, ValueError):
        return None
    return present / rate


def decode_pcm16(data: bytes, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode to mono signed 16-bit PCM at `sample_rate` (what Kaldi and Whisper want)."""
    container, _ = _open(data)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    chunks = []
    with container:
        for frame in _frames(container):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray().reshape(-1))
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray().reshape(-1))
    if not chunks:
        raise AudioError("The file contains no decodable audio.")
    pcm = np.concatenate(chunks).astype(np.int16, copy=False)
    if pcm.size == 0:
        raise AudioError("The file contains no decodable audio.")
    return pcm


def decode_float32(data: bytes, sample_rate: int = SAMPLE_RATE) -> np.ndarray:
    """Mono float32 in [-1, 1], the input faster-whisper takes."""
    return decode_pcm16(data, sample_rate).astype(np.float32) / 32768.0
