"""One source per fact: the JSON schemas and shipped manifests agree with the Python definitions."""

from __future__ import annotations

import json
from importlib import resources

import pytest

from harness.gc_interface import DEFAULT_OUTPUT_RELATIVE_PATH, is_output_image, one_image_message
from harness.jsonio import load_schema
from harness.manifest import INPUT_SOCKETS, load_benchmark
from harness.results import METRIC_NAMES, RANKED_METRICS, case_mean, mean_or_none
from metrics.case import DEFAULT_METRICS


@pytest.mark.parametrize("schema", ["results", "gc_metrics"])
def test_schemas_list_the_metrics_the_library_computes(schema):
    assert load_schema(schema)["properties"]["settings"]["properties"]["metrics"]["items"]["enum"] \
        == list(METRIC_NAMES) == list(DEFAULT_METRICS)
    assert RANKED_METRICS == ("dice", "nsd")


@pytest.mark.parametrize("benchmark", ["synthetic", "a-eval"])
def test_every_shipped_manifest_uses_its_modality_socket(benchmark):
    manifests = load_benchmark(benchmark)
    assert manifests
    for manifest in manifests:
        assert manifest.input_socket == INPUT_SOCKETS[manifest.modality], manifest.key


def test_gc_output_rule(tmp_path):
    images = [tmp_path / "a.mha", tmp_path / "b.tif"]
    assert all(is_output_image(p) for p in images) and not is_output_image(tmp_path / "x.nii.gz")
    assert one_image_message(images, relative_path=DEFAULT_OUTPUT_RELATIVE_PATH) == (
        "Only 1 image should be produced in 'images/abdominal-organ-segmentation', found 2: a.mha, b.tif")


def test_one_mean():
    assert mean_or_none([1.0, None, float("nan"), 0.0]) == 0.5
    assert mean_or_none([None]) is None
    record = {"metrics": {"liver": {"dice": 0.5, "nsd": None}, "spleen": {"dice": 1.0, "nsd": None}}}
    assert case_mean(record, "dice") == 0.75 and case_mean(record, "nsd") is None
