"""Translation ja→en on the server. No worker is involved, and a missing model is a
clear, actionable error rather than a failure of whatever asked for it."""

from __future__ import annotations

import datetime
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.conf import settings

from translation import preparing
from translation.engine import TranslationModel, is_model_dir, read_meta
from translation.splitting import join_text, split_text

INSTALL_HINT = "run `python manage.py translation_model fetch` (or `translation_model install PATH`)"


class TranslationUnavailable(Exception):
    """No model installed: the message says how to install one, and is fit for users."""


@dataclass
class Translation:
    text: str
    model: str


_model: TranslationModel | None = None
_lock = threading.Lock()


def model_path() -> Path:
    return Path(settings.JPT_TRANSLATION_MODEL)


def _preparation(path: Path) -> preparing.Preparation | None:
    """How far `serve`'s background preparation of the model is, from the shared cache (only looked
    up when it is on: nothing else publishes one)."""
    return preparing.published(path) if settings.JPT_TRANSLATION_AUTO_FETCH else None


def unavailable_message(path: Path, preparation: preparing.Preparation | None) -> str:
    """Why there is no translation, fit for users: being prepared (how far), failed (why, and when it
    is tried again), or not installed; the last two name the command that installs it."""
    if preparation is None:
        return f"No translation model is installed at {path}: {INSTALL_HINT}."
    if preparation.phase != preparing.FAILED:
        progress = preparation.progress
        how_far = ""
        if preparation.phase == preparing.DOWNLOADING and progress is not None:
            how_far = f", {progress * 100:.0f} %"
        return f"The translation model is being prepared ({preparation.phase}{how_far}); try again in a minute."
    then = f"To turn it on, {INSTALL_HINT}."
    if preparation.retry_at:
        retry = _utc(preparation.retry_at)
        day = "" if retry.date() == datetime.datetime.now(datetime.UTC).date() else f"{retry:%Y-%m-%d} "
        then = f"The server tries again at {day}{retry:%H:%M} UTC, or {INSTALL_HINT}."
    return f"Translation is off: {preparation.reason.rstrip('.')}. {then}"


def _utc(timestamp: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(timestamp, datetime.UTC)


def get_model() -> TranslationModel:
    """The process's model, loaded on first use (or at start with JPT_TRANSLATION_EAGER).

    A missing model is looked for again on every call, so a model installed while the server runs
    (by `serve`'s background preparation or the command) is used from the next request on."""
    global _model
    path = model_path()
    if _model is not None and _model.path == path:
        return _model
    with _lock:
        if _model is None or _model.path != path:
            if not is_model_dir(path):
                raise TranslationUnavailable(unavailable_message(path, _preparation(path)))
            _model = TranslationModel(
                path,
                inter_threads=settings.JPT_TRANSLATION_INTER_THREADS,
                intra_threads=settings.JPT_TRANSLATION_INTRA_THREADS,
                max_input_tokens=settings.JPT_TRANSLATION_MAX_INPUT_TOKENS,
                cache_size=settings.JPT_TRANSLATION_CACHE_SIZE,
                beam_size=settings.JPT_TRANSLATION_BEAM_SIZE,
                length_factor=settings.JPT_TRANSLATION_LENGTH_FACTOR,
            )
    return _model


def translate(text: str) -> Translation:
    """English for Japanese `text`, sentence by sentence, with its line breaks kept.
    Validating the text (empty, over JPT_TRANSLATION_MAX_CHARS, language pair) is the caller's job."""
    model = get_model()
    parts = split_text(text)
    sentences = [s for part in parts if isinstance(part, list) for s in part]
    translated = iter(model.translate_sentences(sentences)) if sentences else iter(())
    english = [part if isinstance(part, str) else [next(translated) for _ in part] for part in parts]
    return Translation(text=join_text(english), model=model.label)


def status() -> dict[str, bool | str | None]:
    """What is installed, read from disk, so that it never loads the model (the command's status;
    `health` adds what is under way)."""
    path = model_path()
    if not is_model_dir(path):
        return {"available": False, "model": None}
    meta = read_meta(path)
    return {"available": True, "model": meta["name"], "version": meta.get("version", "")}


def health() -> dict[str, Any]:
    """For /v1/health: ready, preparing (how far along) or unavailable (why), from the disk and the
    shared cache, so that it never loads the model."""
    installed: dict[str, Any] = dict(status())
    if installed["available"]:
        return {"status": "ready", **installed}
    path = model_path()
    preparation = _preparation(path)
    if preparation is not None and preparation.phase != preparing.FAILED:
        answer = {"status": "preparing", **installed, "phase": preparation.phase}
        if preparation.progress is not None:
            answer["progress"] = round(preparation.progress, 3)
        return answer
    answer = {"status": "unavailable", **installed, "reason": unavailable_message(path, preparation)}
    if preparation is not None and preparation.retry_at:
        answer["retry_at"] = _utc(preparation.retry_at)
    return answer
