"""Shared helpers of the data-preparation tests: prepare a set and read what it wrote."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from harness.data.prepare import prepare
from harness.jsonio import read_json


@pytest.fixture()
def run_prepare(tmp_path):
    """prepare(key) from a source into tmp/root with the count check overridden (fixtures are tiny)."""
    root = tmp_path / "root"

    def _run(key: str, source: Path, **options):
        options.setdefault("allow_count_mismatch", True)
        return prepare(key, source=source, data_root=root, **options)

    _run.root = root
    return _run


def manifest_of(root: Path, key: str) -> dict:
    return read_json(root / "manifests" / f"{key}.json", "manifest")


def label_of(root: Path, key: str, case_id: str) -> tuple[np.ndarray, sitk.Image]:
    image = sitk.ReadImage(str(root / key / "labels" / f"{case_id}.nii.gz"))
    return sitk.GetArrayFromImage(image), image
