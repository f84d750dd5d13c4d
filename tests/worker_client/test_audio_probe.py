"""Probing a WAV reads its header instead of decoding: it must agree with decoding."""
import io
import wave

import numpy as np
import pytest

from tests.clips import encode, wav_bytes
from worker_client import audio


def _wav(seconds, rate=16000, channels=1, width=2) -> bytes:
    n = int(seconds * rate)
    samples = (np.sin(np.arange(n * channels) * 0.05) * 100).astype({1: np.uint8, 2: np.int16, 4: np.int32}[width])
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(width)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return buf.getvalue()


def _decoded_seconds(data: bytes) -> float:
    """What the slow path (PyAV, frame by frame) measures."""
    container, _ = audio._open(data)
    with container:
        return sum(frame.samples / frame.sample_rate for frame in audio._frames(container))


@pytest.mark.parametrize("seconds, rate, channels, width", [
    (1.0, 8000, 1, 2), (2.5, 16000, 1, 2), (1.25, 44100, 2, 2), (0.5, 22050, 1, 1), (1.0, 48000, 2, 4),
])
def test_wav_length_matches_decoding(seconds, rate, channels, width):
    data = _wav(seconds, rate, channels, width)
    assert audio._pcm_wav_seconds(data) is not None
    probe = audio.probe(data)
    assert probe.format == "WAV"
    assert probe.duration_seconds == pytest.approx(_decoded_seconds(data), abs=0.001)
    assert probe.duration_seconds == pytest.approx(seconds, abs=0.001)


def test_truncated_wav_counts_the_samples_present_not_the_header():
    data = wav_bytes(4.0)[: 44 + 16000 * 2]  # the header still claims 4 s
    assert audio.probe(data).duration_seconds == pytest.approx(1.0, abs=0.001)


def test_wav_with_no_samples_is_refused():
    with pytest.raises(audio.AudioError, match="no decodable audio"):
        audio.probe(_wav(0))


def test_wav_with_a_broken_header_falls_back_to_decoding():
    data = bytearray(wav_bytes(1.0))
    data[12:16] = b"junk"  # no fmt chunk where the header parser expects one
    assert audio._pcm_wav_seconds(bytes(data)) is None
    with pytest.raises(audio.AudioError):
        audio.probe(bytes(data))


def test_other_formats_still_decode():
    flac = encode(wav_bytes(1.5), "flac", "flac")
    assert audio._pcm_wav_seconds(flac) is None
    assert audio.probe(flac) == audio.Probe(format="FLAC", duration_seconds=pytest.approx(1.5, abs=0.05))
