import pytest

from tests.translation.tiny_model import converted_model, write_opus_mt_release


@pytest.fixture(scope="session")
def opus_release(tmp_path_factory):
    return write_opus_mt_release(tmp_path_factory.mktemp("opus") / "release")


@pytest.fixture(scope="session")
def tiny_model_dir(opus_release, tmp_path_factory):
    return converted_model(opus_release, tmp_path_factory.mktemp("ct2") / "opus-mt-tiny")


@pytest.fixture
def with_model(settings, tiny_model_dir):
    """Serve the tiny model through the real loading code, as JPT_TRANSLATION_MODEL."""
    settings.JPT_TRANSLATION_MODEL = str(tiny_model_dir)
    from translation import services

    return services.get_model()
