import os

import pytest

# Nothing in these tests may reach a hub; set before transformers is imported by a test module.
os.environ["HF_HUB_OFFLINE"] = "1"

from rlhf_ray.models import TinyModelSpec, build_tiny_models  # noqa: E402


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory):
    """The default tiny model family, built once per test session."""
    return build_tiny_models(TinyModelSpec(), tmp_path_factory.mktemp("tiny") / "models")
