import pytest


@pytest.fixture
def with_model(settings, tiny_model_dir):
    """Serve the tiny model through the real loading code, as JPT_TRANSLATION_MODEL."""
    settings.JPT_TRANSLATION_MODEL = str(tiny_model_dir)
    from translation import services

    return services.get_model()
