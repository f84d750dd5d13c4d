"""The server measures audio by decoding it as the workers do: a header cannot lie about length."""
import io
import struct
import wave

import numpy as np
import pytest

from tests.clips import encode, wav_bytes
from worker_client import audio
from worker_client.worker import decode_limit


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
    container, _ = audio._open(data)
    with container:
        return sum(frame.samples / frame.sample_rate for frame in audio._frames(container))


def _wav_with_a_hidden_chunk(said_seconds, carried_seconds, rate=16000) -> bytes:
    """A WAV whose data chunk says `said_seconds`, followed by a second data chunk that FFmpeg
    (the workers' decoder) plays too, while a header-only reading stops at the first."""
    honest = _wav(said_seconds, rate)
    extra = (np.sin(np.arange(int(carried_seconds * rate)) * 0.05) * 100).astype(np.int16).tobytes()
    body = honest[12:] + b"data" + struct.pack("<I", len(extra)) + extra
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WAVE" + body


def _flac_declaring(seconds: float, actual_seconds: float) -> bytes:
    """A FLAC whose STREAMINFO says `seconds` (total samples, 36 bits at bytes 18-25) while its
    frames carry `actual_seconds`."""
    flac = bytearray(encode(wav_bytes(actual_seconds), "flac", "flac"))
    assert flac[:4] == b"fLaC"
    fields = int.from_bytes(flac[18:26], "big")
    flac[18:26] = ((fields >> 36 << 36) | int(seconds * 16000)).to_bytes(8, "big")
    return bytes(flac)


@pytest.mark.parametrize("seconds, rate, channels, width", [
    (1.0, 8000, 1, 2), (2.5, 16000, 1, 2), (1.25, 44100, 2, 2), (0.5, 22050, 1, 1), (1.0, 48000, 2, 4),
])
def test_wav_length_is_what_decoding_finds(seconds, rate, channels, width):
    probe = audio.probe(_wav(seconds, rate, channels, width))
    assert probe.format == "WAV"
    assert probe.duration_seconds == pytest.approx(seconds, abs=0.001)


def test_truncated_wav_counts_the_samples_present_not_the_header():
    data = wav_bytes(4.0)[: 44 + 16000 * 2]  # the header still claims 4 s
    assert audio.probe(data).duration_seconds == pytest.approx(1.0, abs=0.001)


def test_a_wav_is_measured_as_the_workers_decode_it_not_by_its_first_chunk():
    data = _wav_with_a_hidden_chunk(1.0, 10.0)
    assert audio.probe(data).duration_seconds == pytest.approx(_decoded_seconds(data), abs=0.01)
    assert audio.probe(data).duration_seconds >= 10, "charged for what a worker would decode"
    long = _wav_with_a_hidden_chunk(1.0, 100.0)
    assert audio.probe(long, max_seconds=90).duration_seconds > 90, "so the 90 s limit refuses it"


def test_a_file_that_decodes_to_more_than_its_header_declares_is_refused():
    with pytest.raises(audio.AudioError, match=r"more audio than its header declares \(1 s\)"):
        audio.probe(_flac_declaring(1.0, 3.0), max_seconds=90)
    assert audio.probe(_flac_declaring(3.0, 3.0)).duration_seconds == pytest.approx(3.0, abs=0.05)


def _wav_understating(said_seconds, carried_seconds, *, field) -> bytes:
    """A WAV carrying `carried_seconds` of samples whose `field` ("data" chunk size or "RIFF" size)
    says only `said_seconds`."""
    data = bytearray(_wav(carried_seconds))
    said = int(said_seconds * 16000) * 2
    if field == "data":
        data[40:44] = struct.pack("<I", said)
    else:
        data[4:8] = struct.pack("<I", 36 + said)
    return bytes(data)


@pytest.mark.parametrize("field", ["data", "RIFF"])
def test_a_wav_whose_sizes_understate_the_samples_that_follow_is_refused(field):
    """FFmpeg stops where the data chunk says (2 s) and would charge and transcribe 2 s of 60."""
    with pytest.raises(audio.AudioError, match="more audio than its header declares"):
        audio.probe(_wav_understating(2.0, 60.0, field=field), max_seconds=90)


def test_a_wav_with_a_tag_or_padding_past_its_declared_end_is_still_measured():
    """A few stray bytes are no hidden audio: an ID3v1 tag appended, a chunk after the samples
    without the RIFF size updated, or a file streamed with its sizes left unknown (0)."""
    tagged = wav_bytes(1.0) + b"TAG" + bytes(125)
    assert audio.probe(tagged).duration_seconds == 1.0
    listed = wav_bytes(1.0) + b"LIST" + struct.pack("<I", 26) + b"INFOISFT" + struct.pack("<I", 14) + b"Lavf58.76.100\0"
    assert audio.probe(listed).duration_seconds == 1.0
    streamed = bytearray(wav_bytes(3.0))
    streamed[4:8] = streamed[40:44] = bytes(4)
    assert audio.probe(bytes(streamed)).duration_seconds == 3.0


def test_sample_rates_outside_8_to_192_khz_and_over_8_channels_are_refused():
    with pytest.raises(audio.AudioError, match="sample rate is 4000 Hz"):
        audio.probe(_wav(1.0, rate=4000))
    with pytest.raises(audio.AudioError, match="9 channels"):
        audio.probe(_wav(0.5, rate=8000, channels=9))


def test_wav_with_no_samples_is_refused():
    with pytest.raises(audio.AudioError, match="no decodable audio"):
        audio.probe(_wav(0))


def test_wav_with_a_broken_header_is_refused():
    data = bytearray(wav_bytes(1.0))
    data[12:16] = b"junk"
    with pytest.raises(audio.AudioError):
        audio.probe(bytes(data))


def test_other_formats_decode():
    flac = encode(wav_bytes(1.5), "flac", "flac")
    assert audio.probe(flac) == audio.Probe(format="FLAC", duration_seconds=pytest.approx(1.5, abs=0.05),
                                            voiced_seconds=pytest.approx(1.5, abs=0.05))


def test_a_silent_clip_has_no_sound_and_a_tone_has_sound_throughout():
    """What an empty transcript is checked against: a silent clip may honestly have none."""
    assert audio.probe(wav_bytes(2.0, silent=True)).voiced_seconds == 0
    assert audio.probe(wav_bytes(2.0)).voiced_seconds == pytest.approx(2.0, abs=0.05)
    mp3 = encode(wav_bytes(2.0), "mp3", "libmp3lame")
    assert audio.probe(mp3).voiced_seconds == pytest.approx(2.0, abs=0.2)


def test_the_worker_stops_decoding_past_the_jobs_stated_length():
    data = wav_bytes(30.0)
    limit = decode_limit({"duration_seconds": 1.0})
    assert limit is not None and limit < 5
    with pytest.raises(audio.AudioError, match="runs past"):
        audio.decode_pcm16(data, max_seconds=limit)
    assert len(audio.decode_pcm16(wav_bytes(1.0), max_seconds=limit)) == 16000


def _ffmpeg_probe(data: bytes, monkeypatch, **kwargs) -> audio.Probe:
    with monkeypatch.context() as patched:
        patched.setattr(audio, "_plain_wav_layout", lambda data: None)
        return audio.probe(data, **kwargs)


def _extensible(wav: bytes) -> bytes:
    """The same samples under a WAVE_FORMAT_EXTENSIBLE header (as sox and FFmpeg write past two channels)."""
    channels, rate = struct.unpack_from("<HI", wav, 22)
    fmt = struct.pack("<HHIIHHHHI", 0xFFFE, channels, rate, rate * 2 * channels, 2 * channels, 16, 22, 16, 0)
    fmt += bytes.fromhex("0100000000001000800000aa00389b71")
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt + wav[36:]
    return b"RIFF" + struct.pack("<I", len(body)) + body


@pytest.mark.parametrize("rate, channels", [(8000, 1), (16000, 1), (22050, 2), (44100, 6), (48000, 2)])
def test_a_plain_wav_is_measured_as_ffmpeg_decodes_it_without_ffmpeg(rate, channels, monkeypatch):
    """Bursts of sound and silence at every loudness around the threshold, with a part-filled last
    packet: the length and the seconds of sound are FFmpeg's to the millisecond."""
    rng = np.random.default_rng(rate + channels)
    n = int(2.3 * rate) + 37
    burst = int(rate * 0.12)  # longer than a packet: some packets fall within one quiet burst
    loudness = np.repeat(rng.choice([0, 60, 150, 170, 4000], size=n // burst + 1), burst)[:n]
    samples = (rng.standard_normal((n, channels)) * loudness[:, None]).astype(np.int16)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(channels)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    plain = buf.getvalue()
    measured = _ffmpeg_probe(plain, monkeypatch)
    assert 0 < measured.voiced_seconds < measured.duration_seconds, "some packets loud, some quiet"
    assert audio._plain_wav_layout(plain) is not None
    assert audio.probe(plain) == measured
    assert audio.probe(_extensible(plain)) == measured
    assert audio.probe(plain, max_seconds=1.0).duration_seconds == measured.duration_seconds > 1.0


@pytest.mark.parametrize("change", ["truncated", "chunk after the data", "8-bit", "float"])
def test_a_wav_that_is_not_plain_goes_through_ffmpeg(change, monkeypatch):
    data = wav_bytes(1.0)
    if change == "truncated":
        data = data[:-1000]
    elif change == "chunk after the data":
        data = data + b"LIST" + struct.pack("<I", 4) + b"INFO"
    elif change == "8-bit":
        data = _wav(1.0, width=1)
    else:
        data = _wav(1.0, width=4)
        data = data[:20] + struct.pack("<H", 3) + data[22:]  # 32-bit IEEE float: the same bytes, other samples
    assert audio._plain_wav_layout(data) is None
    assert audio.probe(data) == _ffmpeg_probe(data, monkeypatch)


def test_a_wav_of_a_codec_ffmpeg_cannot_decode_is_refused_as_unsupported():
    data = wav_bytes(1.0)
    data = data[:20] + struct.pack("<H", 3) + data[22:]  # 16-bit float: no such decoder
    with pytest.raises(audio.AudioError, match="Unsupported audio format"):
        audio.probe(data)
