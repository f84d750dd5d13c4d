"""Turning an upload or a URL into checked audio bytes, before anything is queued."""

from __future__ import annotations

from dataclasses import dataclass
from typing import IO

from django.conf import settings
from django.core.files.uploadedfile import UploadedFile
from django.core.files.uploadhandler import MemoryFileUploadHandler

from jptranscribe.errors import FileTooLarge, InvalidAudio, InvalidRequest
from transcription.urlfetch import fetch_audio
from worker_client import audio as audio_lib

CONTENT_TYPES = {"WAV": "audio/wav", "MP3": "audio/mpeg", "M4A": "audio/mp4", "FLAC": "audio/flac", "OGG": "audio/ogg"}
# Room for the multipart framing and the small form fields around the file.
MULTIPART_OVERHEAD = 64 * 1024


def too_large_message() -> str:
    return f"The audio is over the {settings.JPT_MAX_UPLOAD_BYTES // 1_048_576} MB limit."


class SizeLimitedUploadHandler(MemoryFileUploadHandler):
    """Keeps an upload in memory and refuses it as soon as it passes the limit.

    Counting while streaming means an oversized body is never buffered whole,
    whatever its Content-Length claimed (or whether it sent one).
    """

    def handle_raw_input(
        self,
        input_data: IO[bytes],
        META: dict[str, str],
        content_length: int,
        boundary: str,
        encoding: str | None = None,
    ) -> None:
        limit = settings.JPT_MAX_UPLOAD_BYTES
        if content_length and content_length > limit + MULTIPART_OVERHEAD:
            raise FileTooLarge(too_large_message(), param="file")
        self.activated = True  # always in memory: the limit keeps it small

    def new_file(
        self,
        field_name: str,
        file_name: str,
        content_type: str,
        content_length: int | None,
        charset: str | None = None,
        content_type_extra: dict[str, bytes] | None = None,
    ) -> None:
        self.received = 0
        super().new_file(field_name, file_name, content_type, content_length, charset, content_type_extra)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > settings.JPT_MAX_UPLOAD_BYTES:
            raise FileTooLarge(too_large_message(), param="file")
        return super().receive_data_chunk(raw_data, start)


@dataclass(frozen=True)
class CheckedAudio:
    data: bytes
    content_type: str
    format: str
    duration_seconds: float
    voiced_seconds: float = 0.0  # louder than near-silence (worker_client.audio.probe)


def read_upload(upload: UploadedFile[bytes]) -> bytes:
    if (upload.size or 0) > settings.JPT_MAX_UPLOAD_BYTES:  # the handler has counted it: the size is known
        raise FileTooLarge(too_large_message(), param="file")
    return upload.read()


def read_url(url: str) -> bytes:
    data, _ = fetch_audio(url, max_bytes=settings.JPT_MAX_UPLOAD_BYTES)
    return data


def check_audio(data: bytes, *, param: str = "file") -> CheckedAudio:
    """Decode enough to know the clip is real audio within the length limit. A refusal names
    `param`, the request field the audio came in (`file`, or `url` for a fetched clip)."""
    limit = settings.JPT_MAX_CLIP_SECONDS
    try:
        probe = audio_lib.probe(data, max_seconds=limit)
    except audio_lib.AudioError as exc:
        raise InvalidAudio(str(exc), param=param)
    if probe.duration_seconds > limit:
        raise InvalidRequest(
            f"The clip is longer than the {limit:g} s limit; split it into shorter clips.", param=param
        )
    return CheckedAudio(
        data=data,
        content_type=CONTENT_TYPES[probe.format],
        format=probe.format,
        duration_seconds=probe.duration_seconds,
        voiced_seconds=probe.voiced_seconds,
    )


def read_checked(data: dict) -> CheckedAudio:
    """The checked clip of a request's validated fields: its upload (`file`) or its `url`, fetched."""
    if "file" in data:
        return check_audio(read_upload(data["file"]))
    return check_audio(read_url(data["url"]), param="url")
