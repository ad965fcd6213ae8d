import pytest

from rlhf_ray.models import TinyModelSpec, build_tiny_models


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The default tiny model family, built once per test session."""
    return build_tiny_models(TinyModelSpec(), tmp_path_factory.mktemp("tiny") / "models")
