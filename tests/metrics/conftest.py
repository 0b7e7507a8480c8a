"""Test settings for tests/metrics only."""

from __future__ import annotations

from pathlib import Path

import pytest

_HERE = Path(__file__).parent


def pytest_collection_modifyitems(items):
    # surface-distance 0.1 (the reference) imports from deprecated scipy.ndimage namespaces.
    ignore = pytest.mark.filterwarnings("ignore::DeprecationWarning:surface_distance.*")
    for item in items:
        if _HERE in Path(str(item.fspath)).parents:
            item.add_marker(ignore)
