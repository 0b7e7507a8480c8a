"""`harness run` with correct submissions: both protocols, label mapping, tarballs, resume, cleanup."""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import time

import pytest

from harness.errors import HarnessError
from harness.runner.images import check_tarball

pytestmark = pytest.mark.docker


@pytest.mark.parametrize("protocol", ["gc", "flare"])
def test_correct_algorithm_scores_dice_one_in_both_protocols(run_harness, example_images, protocol):
    code, results, out = run_harness("--image", example_images.THRESHOLD, "--protocol", protocol,
                                     datasets="word,totalseg_mr", cases=2)
    assert code == 0
    for key in ("word", "totalseg_mr"):
        dataset = results["datasets"][key]
        assert dataset["n_cases"] == 2 and dataset["n_failed"] == 0
        assert dataset["dice"] == pytest.approx(1.0) and dataset["nsd"] == pytest.approx(1.0)
        for case in dataset["cases"]:
            assert case["runtime"]["exit_code"] == 0 and case["runtime"]["peak_memory_bytes"] > 0
    assert results["submission"]["protocol"] == protocol
    assert len(list((out / "predictions" / "word").iterdir())) == 2
    assert (out / "summary.csv").read_text().startswith("dataset,organ,dice,nsd")


def test_label_map_layer_maps_an_image_writing_stunet_ids(run_harness, example_images):
    """The image writes STU-Net's alphabetical ids and declares them: scores are still perfect."""
    code, results, _ = run_harness("--image", example_images.THRESHOLD_STUNET_IDS, datasets="flare22", cases=1)
    assert code == 0 and results["datasets"]["flare22"]["dice"] == pytest.approx(1.0)
    assert results["submission"]["label_map"] == "stunet_totalseg_v1"
    assert any("not benchmark organs, scored as background" in note for note in results["notes"])


def test_wrong_label_map_flag_is_caught_not_scored_as_garbage(run_harness, example_images):
    """Overriding the declared map with the wrong one: undeclared ids fail the case loudly."""
    code, results, _ = run_harness("--image", example_images.THRESHOLD_STUNET_IDS, "--label-map", "btcv",
                                   datasets="flare22", cases=1)
    case = results["datasets"]["flare22"]["cases"][0]
    assert code == 1 and case["error_kind"] == "unknown_labels" and "not declared by label map" in case["error"]


def _save(client, references, path, *, compress):
    """What participants do: `docker save IMAGE | gzip -c > IMAGE.tar.gz` (the real CLI)."""
    data = subprocess.run(["docker", "save", *references], check=True, capture_output=True).stdout
    path.write_bytes(gzip.compress(data, compresslevel=1) if compress else data)
    return path


def test_image_tarball_is_loaded_by_id_and_cannot_repoint_a_tag(docker_client, example_images, run_harness, tmp_path):
    threshold = docker_client.images.get(example_images.THRESHOLD)
    victim = "aeval-test/victim:latest"
    threshold.tag(victim)
    tarball = _save(docker_client, [victim], tmp_path / "submission.tar.gz", compress=True)
    crash = docker_client.images.get(example_images.hostile_tag("crash"))
    crash.tag(victim)  # the engine's tag now points elsewhere; loading the tarball must not move it back
    code, results, _ = run_harness("--image-tar", str(tarball), datasets="btcv", cases=1)
    assert code == 0 and results["submission"]["image_id"] == threshold.id
    assert docker_client.images.get(victim).id == crash.id
    assert check_tarball(tarball).repo_tags == [victim]


def test_tarball_with_two_images_is_refused(docker_client, example_images, tmp_path):
    tarball = _save(docker_client, [example_images.THRESHOLD, example_images.hostile_tag("crash")],
                    tmp_path / "two.tar", compress=False)
    with pytest.raises(HarnessError, match="exactly one image; its manifest.json lists 2"):
        check_tarball(tarball)


def test_rerun_resumes_without_running_finished_cases(run_harness, example_images, tmp_path):
    out = tmp_path / "resume"
    _, first, _ = run_harness("--image", example_images.THRESHOLD, datasets="btcv", cases=2, out=out)
    _, second, _ = run_harness("--image", example_images.THRESHOLD, datasets="btcv", cases=3, out=out)
    first_cases = {c["case_id"]: c for c in first["datasets"]["btcv"]["cases"]}
    second_cases = {c["case_id"]: c for c in second["datasets"]["btcv"]["cases"]}
    assert set(second_cases) == {"img0001", "img0002", "img0003"}
    for case_id in first_cases:  # identical records, runtime included: the container did not run again
        assert second_cases[case_id] == first_cases[case_id]


def test_interrupt_leaves_no_container_and_no_scratch(docker_client, example_images, synthetic_root, tmp_path):
    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    env = {**os.environ, "TMPDIR": str(scratch_root)}
    process = subprocess.Popen(
        [sys.executable, "-m", "harness.cli", "run", "--image", example_images.hostile_tag("never_exit"),
         "--benchmark", "synthetic", "--data-root", str(synthetic_root), "--out", str(tmp_path / "out"),
         "--datasets", "btcv", "--cases", "1", "--no-progress", "--memory", "256m"], env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    ours = {"label": f"org.a-eval.owner-pid={process.pid}"}  # not the job containers of other harnesses
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not docker_client.containers.list(filters=ours):
        time.sleep(0.2)
    assert docker_client.containers.list(filters=ours), "the job container never started"
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "rerun the same command to resume" in stderr
    assert not docker_client.containers.list(all=True, filters=ours)
    assert not list(scratch_root.iterdir())


def test_missing_label_map_declaration_is_a_clear_error(docker_client, example_images, run_harness, capsys):
    """An image with an empty label-map label (a derived image cannot unset a label) declares nothing."""
    image = docker_client.images.get(example_images.hostile_tag("crash"))
    dockerfile = f"FROM {image.id}\nLABEL org.a-eval.label-map=\"\"\n"
    docker_client.images.build(fileobj=io.BytesIO(dockerfile.encode()), tag="aeval-test/nomap:latest")
    code, results, _ = run_harness("--image", "aeval-test/nomap:latest")
    assert code == 2 and "declares no label map" in capsys.readouterr().err
