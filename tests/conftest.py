"""Shared fixtures: where the shared data lives, and skips with a reason when it does not."""

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = ROOT / "tests" / "golden"
SHARED = ROOT.parent / "shared"
VOCAB = SHARED / "vocab" / "bert-base-uncased-vocab.txt"


def shared_path(*parts):
    """Path under ../shared, or skip the test saying what is missing."""
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared material not found at {path} (it lives beside the project root, not in it)")
    return path


@pytest.fixture
def vocab_file():
    return shared_path("vocab", "bert-base-uncased-vocab.txt")
