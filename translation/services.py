"""Translation ja→en on the server. No worker is involved, and a missing model is a
clear, actionable error rather than a failure of whatever asked for it."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from django.conf import settings

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


def get_model() -> TranslationModel:
    """The process's model, loaded on first use (or at start with JPT_TRANSLATION_EAGER)."""
    global _model
    path = model_path()
    if _model is not None and _model.path == path:
        return _model
    with _lock:
        if _model is None or _model.path != path:
            if not is_model_dir(path):
                raise TranslationUnavailable(f"No translation model is installed at {path}: {INSTALL_HINT}.")
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
    """For /v1/health: what is installed, read from disk, so that it never loads the model."""
    path = model_path()
    if not is_model_dir(path):
        return {"available": False, "model": None}
    meta = read_meta(path)
    return {"available": True, "model": meta["name"], "version": meta.get("version", "")}
