from pathlib import Path

import pytest

from tests.support.tiny import CRANFIELD, SHARED, build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory) -> Path:
    """A tiny random LLaMA-family model dir, built once per test session."""
    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), "llama")


@pytest.fixture(scope="session")
def cranfield_dir() -> Path:
    if not (CRANFIELD / "corpus.jsonl").exists():
        pytest.skip(f"shared data not found at {SHARED}")
    return CRANFIELD
