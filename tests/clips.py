"""Test audio made in code, with no Django import (benches use it too)."""
import io
import wave

import numpy as np


def wav_bytes(seconds=3.0, rate=16000, silent=False):
    """A real WAV clip of `seconds` (a tone unless silent)."""
    n = int(seconds * rate)
    samples = np.zeros(n) if silent else np.sin(np.arange(n) * 2 * np.pi * 440 / rate) * 8000
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.astype(np.int16).tobytes())
    return buf.getvalue()


def encode(wav: bytes, container: str, codec: str) -> bytes:
    """Re-encode a WAV clip with PyAV (MP3, FLAC, Ogg/Opus, M4A/AAC)."""
    import av

    from worker_client.audio import decode_pcm16

    pcm = decode_pcm16(wav, 48000 if codec == "libopus" else 16000)
    rate = 48000 if codec == "libopus" else 16000
    out = io.BytesIO()
    with av.open(out, "w", format=container) as c:
        stream = c.add_stream(codec, rate=rate)
        stream.layout = "mono"
        frame = av.AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            c.mux(packet)
        for packet in stream.encode(None):
            c.mux(packet)
    return out.getvalue()
