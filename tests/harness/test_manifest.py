import json

import pytest

from harness.errors import ManifestError
from harness.manifest import case_file, load_benchmark, load_manifest_file, resolve_data_root

PAPER_COUNTS = {"flare22": 50, "amos_ct": 40, "word": 30, "totalseg_ct": 89, "btcv": 30, "amos_mr": 20, "totalseg_mr": 30}


def test_real_benchmark_has_the_seven_sets_with_paper_counts():
    manifests = load_benchmark("a-eval")
    assert [m.key for m in manifests] == list(PAPER_COUNTS)
    assert {m.key: m.expected_case_count for m in manifests} == PAPER_COUNTS
    assert sum(m.expected_case_count for m in manifests if m.modality == "CT") == 239
    assert sum(m.expected_case_count for m in manifests if m.modality == "MR") == 50


def test_unprepared_real_set_is_a_clear_error():
    manifest = load_benchmark("a-eval", keys=["word"])[0]
    with pytest.raises(ManifestError, match="harness data prepare word"):
        manifest.check_complete()


def test_synthetic_manifests_are_complete_and_relative():
    for manifest in load_benchmark("synthetic"):
        manifest.check_complete()
        for case in manifest.cases:
            assert not case.image.startswith("/") and ".." not in case.image


def test_unknown_key_lists_available():
    with pytest.raises(ManifestError, match="available: flare22"):
        load_benchmark("synthetic", keys=["nope"])


def _write(tmp_path, **overrides):
    doc = json.loads(load_benchmark("synthetic", keys=["btcv"])[0].path.read_text())
    doc.update(overrides)
    path = tmp_path / f"{doc['key']}.json"
    path.write_text(json.dumps(doc))
    load_manifest_file.cache_clear()
    return path


def test_absolute_or_climbing_paths_are_refused(tmp_path):
    doc = json.loads(load_benchmark("synthetic", keys=["btcv"])[0].path.read_text())
    doc["cases"][0]["image"] = "../../etc/passwd"
    with pytest.raises(ManifestError, match="cases/0/image"):
        load_manifest_file(_write(tmp_path, cases=doc["cases"]))


def test_duplicate_case_ids_are_refused(tmp_path):
    doc = json.loads(load_benchmark("synthetic", keys=["btcv"])[0].path.read_text())
    cases = doc["cases"] + [doc["cases"][0]]
    with pytest.raises(ManifestError, match="duplicate case ids img0001"):
        load_manifest_file(_write(tmp_path, cases=cases, expected_case_count=5))


def test_data_root_from_flag_or_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("AEVAL_DATA_ROOT", raising=False)
    with pytest.raises(ManifestError, match="--data-root or set AEVAL_DATA_ROOT"):
        resolve_data_root(None)
    monkeypatch.setenv("AEVAL_DATA_ROOT", str(tmp_path))
    assert resolve_data_root(None) == tmp_path.resolve()


def test_case_file_refuses_symlink_escape(tmp_path):
    (tmp_path / "root").mkdir()
    (tmp_path / "secret.nii.gz").write_text("x")
    (tmp_path / "root" / "link.nii.gz").symlink_to(tmp_path / "secret.nii.gz")
    with pytest.raises(ManifestError, match="outside the data root"):
        case_file((tmp_path / "root").resolve(), "link.nii.gz")


def test_default_benchmark_prefers_prepared_manifests_in_the_data_root(tmp_path, monkeypatch):
    from harness.manifest import default_benchmark

    monkeypatch.delenv("AEVAL_BENCHMARK", raising=False)
    assert default_benchmark(tmp_path) == "a-eval"
    (tmp_path / "manifests").mkdir()
    assert default_benchmark(tmp_path) == str(tmp_path / "manifests")
    monkeypatch.setenv("AEVAL_BENCHMARK", "synthetic")
    assert default_benchmark(tmp_path) == "synthetic"
