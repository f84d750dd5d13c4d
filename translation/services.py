"""Translation ja→en. Until the CTranslate2 engine lands (issue "Translation ja→en"),
only the no-model path exists: callers get TranslationUnavailable with the install hint."""
from dataclasses import dataclass

MAX_CHARS = 5000


class TranslationUnavailable(Exception):
    pass


@dataclass
class Translation:
    text: str
    model: str


def translate(text: str) -> Translation:
    raise TranslationUnavailable(
        "No translation model is installed: run `python manage.py translation_model fetch`."
    )


def status() -> dict:
    return {"available": False, "model": None}
