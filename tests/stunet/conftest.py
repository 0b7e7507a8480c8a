"""Make the container's package importable as ``stunet`` and share small fixtures."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_ROOT = REPO_ROOT / "containers" / "stunet"
if str(PACKAGE_ROOT) not in sys.path:
    sys.path.insert(0, str(PACKAGE_ROOT))

#: Copy of the spec's stunet_layout.json (produced from the official STUNet class), kept
#: beside the tests so that they run wherever the repository is checked out.
LAYOUT_FILE = Path(__file__).parent / "data" / "stunet_layout.json"


@pytest.fixture(scope="session")
def layout() -> dict:
    """The parameter layout of the official checkpoints (keys, order, shapes, counts)."""
    return json.loads(LAYOUT_FILE.read_text())
