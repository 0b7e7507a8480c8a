"""Shared fixtures: the synthetic benchmark generated once per test session."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def synthetic_root(tmp_path_factory) -> Path:
    """A data root holding the whole synthetic benchmark (generated once, ~15 s)."""
    from harness.data.synth import synthesize

    root = tmp_path_factory.mktemp("synthetic")
    synthesize(root)
    return root
