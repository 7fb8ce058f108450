"""Shared test fixtures: where ../shared lives, and tiny recipes."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SIMGEN_SHARED", REPO.parent / "shared"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or a clean skip naming what is missing."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"{p} not found: the shared data/reference folder is absent (set SIMGEN_SHARED)")
    return p


@pytest.fixture
def shared():
    return shared_path
