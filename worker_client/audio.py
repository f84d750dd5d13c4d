"""Audio decoding shared by the server's intake and the worker's engines.

PyAV bundles FFmpeg's libraries in its wheel, so nothing here needs a system
package. The server imports this module; it must never import the server.
"""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Iterator
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
    # Seconds of frames louder than near-silence (VOICED_RMS): a clip with none has nothing to
    # transcribe, so an empty transcript of one with some is implausible.
    voiced_seconds: float = 0.0


# A frame's RMS (full scale 1.0) above this is not silence: about -46 dBFS.
VOICED_RMS = 0.005


# A WAV's header says all a stream's parameters; FFmpeg would still read and analyse up to 5 MB
# of it before the first packet (1-2 ms a request, most of measuring a short clip), and even 4 kB
# cost 0.1 ms of the 0.38 ms a 1 s clip takes to measure. 32 bytes is FFmpeg's least. Its samples
# are then counted by decoding every packet, as for any format.
WAV_OPEN_OPTIONS = {"probesize": "32", "analyzeduration": "0"}


def _open(data: bytes):
    if not data:
        raise AudioError("The file is empty.")
    is_wav = data[:4] == b"RIFF" and data[8:12] == b"WAVE"
    try:
        container = av.open(
            io.BytesIO(data), mode="r", format="wav" if is_wav else None, options=WAV_OPEN_OPTIONS if is_wav else None
        )
    except (av.error.FFmpegError, ValueError, OSError):
        raise AudioError("The file is not audio we can decode (WAV, MP3, M4A, FLAC or OGG).")
    fmt = ACCEPTED_FORMATS.get(container.format.name)
    if fmt is None or not container.streams.audio or container.streams.audio[0].codec_context is None:
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


# Formats whose header states their exact length: a file must not decode to more than it says.
EXACT_LENGTH_HEADERS = ("WAV", "FLAC", "M4A")
# Decoders may add a frame or two of padding to what a header says.
DECLARED_MARGIN_SECONDS = 0.5
MAX_CHANNELS = 8
SAMPLE_RATES = (8_000, 192_000)


def probe(data: bytes, *, max_seconds: float | None = None) -> Probe:
    """Measure the real decoded length, by decoding as the workers do, not the header's claim.

    Headers lie (a WAV may say 1 s and carry ten minutes in later chunks, which FFmpeg plays, or
    in bytes after its data chunk, which FFmpeg skips: refused) and a corrupt MP3 decodes to nothing without raising, so the duration is the count of
    decoded samples. Decoding stops early once `max_seconds` is exceeded (the caller only
    needs to know it is too long) or once it runs past what an exact header declared.
    """
    _refuse_undeclared_wav_bytes(data)
    plain = _probe_plain_wav(data, max_seconds)
    if plain is not None:
        return plain
    container, fmt = _open(data)
    with container:
        _check_layout(container.streams.audio[0])
        declared = container.duration / 1_000_000 if container.duration and fmt in EXACT_LENGTH_HEADERS else None
        seconds = voiced = 0.0
        for frame in _frames(container):
            if frame.sample_rate:
                length = frame.samples / frame.sample_rate
                seconds += length
                if _is_voiced(frame):
                    voiced += length
            if declared is not None and seconds > declared + DECLARED_MARGIN_SECONDS:
                raise AudioError(
                    f"The file decodes to more audio than its header declares ({declared:g} s); "
                    "re-encode it and send it again."
                )
            if max_seconds is not None and seconds > max_seconds:
                break
    if seconds <= 0:
        raise AudioError("The file contains no decodable audio.")
    return Probe(format=fmt, duration_seconds=round(seconds, 3), voiced_seconds=round(voiced, 3))


# Size fields a writer streaming to a pipe leaves unknown: FFmpeg reads such a file to its end.
_UNKNOWN_SIZES = (0, 0xFFFFFFFF)
# Bytes a WAV may carry past what its header accounts for: a pad byte, an ID3v1 tag, a chunk
# appended without updating the RIFF size. At 16 kHz mono this is 32 ms of audio.
WAV_UNDECLARED_BYTES = 1024
# A WAV has a handful of chunks; past this many the rest is not walked, and counts as undeclared.
_WAV_CHUNKS = 256


def _is_wav(data: bytes) -> bool:
    return len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def _riff_chunks(data: bytes) -> Iterator[tuple[bytes, int, int]]:
    """(id, offset of its body, size as its header says) of each chunk of a RIFF file, in order,
    while a chunk header fits in the file (a size may claim more than the file holds)."""
    position = 12
    while position + 8 <= len(data):
        size = int.from_bytes(data[position + 4 : position + 8], "little")
        yield data[position : position + 4], position + 8, size
        position += 8 + size + (size & 1)


def _refuse_undeclared_wav_bytes(data: bytes) -> None:
    """Refuse a WAV holding more audio than its header declares: bytes past the end its RIFF size
    states, or after its samples where no chunk is.

    FFmpeg stops at the data chunk's end, so a file whose data chunk says 2 s while 60 s of samples
    follow would be measured, charged and transcribed as 2 s while other players play all 60. A
    header that overstates (a truncated file) is measured by what is there, as before."""
    if not _is_wav(data):
        return
    riff_size = int.from_bytes(data[4:8], "little")
    undeclared = 0 if riff_size in _UNKNOWN_SIZES else len(data) - (8 + riff_size)
    if undeclared <= WAV_UNDECLARED_BYTES:
        undeclared = _bytes_after_the_samples(data)
    if undeclared > WAV_UNDECLARED_BYTES:
        raise AudioError(
            f"The file holds more audio than its header declares ({undeclared:,} bytes past its declared end); "
            "re-encode it and send it again."
        )


def _bytes_after_the_samples(data: bytes) -> int:
    """The bytes after the last data chunk that no chunk holds (0 when the chunks run to the end)."""
    end, after_samples = 12, False  # where the chunks walked so far end
    for chunk, body, size in itertools.islice(_riff_chunks(data), _WAV_CHUNKS):
        if chunk == b"data" and size == 0:
            return 0  # a streamed file: its samples run to the end, and FFmpeg measures them all
        runs_past = body + size > len(data)
        if not all(32 <= byte < 127 for byte in chunk) or (runs_past and after_samples):
            break  # samples, not a chunk (a chunk's id is four printable characters, and fits the file)
        if runs_past:
            return 0  # a truncated file: what is there is measured
        after_samples = after_samples or chunk == b"data"
        end = body + size + (size & 1)
    return max(0, len(data) - end) if after_samples else 0


# A plain 16-bit PCM WAV is measured from its bytes, not through FFmpeg (measured: 1 s at 8 kHz
# 0.56 ms -> 0.02 ms, 30 s at 16 kHz 5.8 ms -> 0.24 ms). Only a file whose one data chunk runs to its very end
# qualifies: what FFmpeg would decode is then exactly those samples. Anything else (another
# sample format, a truncated or padded file, chunks after the data) goes through FFmpeg as before.
_PCM_SUBFORMAT = bytes.fromhex("0100000000001000800000aa00389b71")  # WAVE_FORMAT_EXTENSIBLE's PCM GUID
_CHUNK_FRAMES = 1 << 16  # sample frames squared at a time, so a long clip is never copied whole


def _plain_wav_layout(data: bytes) -> tuple[int, int, int] | None:
    """(channels, sample rate, offset of the samples), or None unless the file is plain (above)."""
    if not _is_wav(data):
        return None
    layout = None
    for chunk, body, size in _riff_chunks(data):
        if chunk == b"fmt ":
            if layout is not None or size < 16 or body + size > len(data):
                return None
            tag, channels, rate, _, block_align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == 0xFFFE:  # WAVE_FORMAT_EXTENSIBLE: PCM only, every bit of the 16 valid
                if (
                    size < 40
                    or data[body + 24 : body + 40] != _PCM_SUBFORMAT
                    or data[body + 18 : body + 20] != b"\x10\x00"
                ):
                    return None
            elif tag != 1:
                return None
            in_range = 1 <= channels <= MAX_CHANNELS and SAMPLE_RATES[0] <= rate <= SAMPLE_RATES[1]
            if bits != 16 or block_align != 2 * channels or not in_range:
                return None  # FFmpeg's path says what is wrong
            layout = (channels, rate)
        elif chunk == b"data":
            if layout is None or body + size != len(data) or size % (2 * layout[0]):
                return None
            return layout[0], layout[1], body
    return None


def _probe_plain_wav(data: bytes, max_seconds: float | None) -> Probe | None:
    """The probe of a plain WAV, counted as FFmpeg decodes it: its packets are the largest power
    of two of frames within a tenth of a second, and a packet is voiced as a decoded frame is."""
    layout = _plain_wav_layout(data)
    if layout is None:
        return None
    channels, rate, start = layout
    samples = np.frombuffer(data, dtype="<i2", offset=start)
    frames = samples.size // channels
    if not frames:
        raise AudioError("The file contains no decodable audio.")
    packet = 1 << ((rate // 10).bit_length() - 1)
    looked_at = frames
    if max_seconds is not None:  # past the limit the clip is refused: its sound does not matter
        looked_at = min(frames, (int(max_seconds * rate) // packet + 1) * packet)
    threshold = (VOICED_RMS * 32768.0) ** 2 * packet * channels
    voiced_frames = 0
    for first in range(0, looked_at - looked_at % packet, _CHUNK_FRAMES):
        last = min(first + _CHUNK_FRAMES, looked_at - looked_at % packet)
        block = samples[first * channels : last * channels].astype(np.float32).reshape(-1, packet * channels)
        voiced_frames += int(np.count_nonzero(np.einsum("ij,ij->i", block, block) > threshold)) * packet
    tail = samples[(looked_at - looked_at % packet) * channels : looked_at * channels].astype(np.float32)
    if tail.size and float(np.dot(tail, tail)) > (VOICED_RMS * 32768.0) ** 2 * tail.size:
        voiced_frames += tail.size // channels
    return Probe(format="WAV", duration_seconds=round(frames / rate, 3), voiced_seconds=round(voiced_frames / rate, 3))


def _is_voiced(frame) -> bool:
    """The frame's RMS is above VOICED_RMS, compared as sums of squares (every clip's every frame
    passes here: a few numpy calls a frame, not a dozen)."""
    samples = frame.to_ndarray()
    if not samples.size:
        return False
    if samples.dtype.kind in "iu":  # integers: full scale is the type's peak, unsigned ones centred on it
        peak = float(2 ** (samples.dtype.itemsize * 8 - 1))
        values = samples.astype(np.float32).ravel()
        if samples.dtype.kind == "u":
            values -= peak
    else:
        peak, values = 1.0, samples.ravel()
    return float(np.dot(values, values)) > (VOICED_RMS * peak) ** 2 * values.size


def _check_layout(stream) -> None:
    channels = stream.codec_context.channels
    rate = stream.codec_context.sample_rate
    if channels > MAX_CHANNELS:
        raise AudioError(f"The audio has {channels} channels; at most {MAX_CHANNELS} are taken.")
    if not SAMPLE_RATES[0] <= rate <= SAMPLE_RATES[1]:
        raise AudioError(f"The audio's sample rate is {rate} Hz; 8 to 192 kHz are taken.")


def decode_pcm16(data: bytes, sample_rate: int = SAMPLE_RATE, *, max_seconds: float | None = None) -> np.ndarray:
    """Decode to mono signed 16-bit PCM at `sample_rate` (what Kaldi and Whisper want).

    With `max_seconds` (a job's stated length and a margin), decoding stops with an error once
    the audio runs past it: a file that decodes to hours is refused, not held in memory."""
    container, _ = _open(data)
    resampler = av.AudioResampler(format="s16", layout="mono", rate=sample_rate)
    chunks = []
    seconds = 0.0
    with container:
        _check_layout(container.streams.audio[0])
        for frame in _frames(container):
            if frame.sample_rate:
                seconds += frame.samples / frame.sample_rate
            if max_seconds is not None and seconds > max_seconds:
                raise AudioError(f"The audio runs past the {max_seconds:g} s it was stated to last.")
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


def decode_float32(data: bytes, sample_rate: int = SAMPLE_RATE, *, max_seconds: float | None = None) -> np.ndarray:
    """Mono float32 in [-1, 1], the input faster-whisper takes."""
    return decode_pcm16(data, sample_rate, max_seconds=max_seconds).astype(np.float32) / 32768.0
