"""The container entry point in both protocols, run as a process on tiny synthetic cases.

Temp folders stand in for ``/input``, ``/output``, ``/workspace/*`` and ``/opt/ml/model``
through the documented environment variables; patch and spacing are shrunk so that
a case takes a second on CPU.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

pytest.importorskip("torch")  # the stunet package needs torch

from stunet.checkpoint import random_stunet

from .conftest import PACKAGE_ROOT
from .synthetic import Payload, ct_like_image, write_v1_checkpoint

FAST = {"STUNET_PATCH_SIZE": "32", "STUNET_TARGET_SPACING_MM": "3", "STUNET_DEVICE": "cpu"}


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith(("AEVAL_", "STUNET_"))}
    full_env.update(env)
    full_env["PYTHONPATH"] = str(PACKAGE_ROOT)
    full_env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{full_env.get('PATH', '')}"
    return subprocess.run(command, env=full_env, cwd=PACKAGE_ROOT, capture_output=True, text=True, timeout=120)


def _predict(env: dict[str, str]) -> subprocess.CompletedProcess:
    return _run([sys.executable, "-m", "stunet.predict"], env)


def _last_stderr_line(result: subprocess.CompletedProcess) -> str:
    return [line for line in result.stderr.splitlines() if line.strip()][-1]


def _assert_same_geometry(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    np.testing.assert_allclose(a.GetSpacing(), b.GetSpacing(), atol=1e-6)
    np.testing.assert_allclose(a.GetOrigin(), b.GetOrigin(), atol=1e-5)
    np.testing.assert_allclose(a.GetDirection(), b.GetDirection(), atol=1e-6)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder as an organizer would upload it: a v1 checkpoint and its plans file."""
    folder = tmp_path_factory.mktemp("model")
    write_v1_checkpoint(folder / "small_ep4k.model", random_stunet(size="small", seed=5))
    (folder / "small_ep4k.model.pkl").write_bytes(b"plans are ignored")
    return folder


def _gc_input(root: Path, images: int = 1) -> tuple[Path, sitk.Image]:
    folder = root / "images" / "ct-image"
    folder.mkdir(parents=True)
    image = ct_like_image(size_xyz=(40, 36, 14), spacing_xyz=(2.0, 2.2, 5.0), direction=(0, 1, 0, 1, 0, 0, 0, 0, -1))
    for _ in range(images):
        sitk.WriteImage(image, str(folder / f"{uuid.uuid4()}.mha"))
    socket = {"title": "CT Image", "slug": "ct-image", "kind": "Image", "super_kind": "Image", "relative_path": "images/ct-image"}
    entries = [{"interface": socket, "image": {"pk": str(uuid.uuid4()), "name": "case.nii.gz"}, "value": None, "file": None, "pk": 1}]
    (root / "inputs.json").write_text(json.dumps(entries))
    return root, image


def test_gc_protocol_writes_one_uint8_mha_with_the_input_geometry(tmp_path: Path, model_dir: Path) -> None:
    input_dir, image = _gc_input(tmp_path / "input")
    output_dir = tmp_path / "output"
    result = _predict({"AEVAL_INPUT_DIR": str(input_dir), "AEVAL_OUTPUT_DIR": str(output_dir), "STUNET_MODEL_DIR": str(model_dir), **FAST})
    assert result.returncode == 0, result.stderr
    assert "loaded" in result.stderr and "size small" in result.stderr
    outputs = list(output_dir.rglob("*"))
    files = [p for p in outputs if p.is_file()]
    assert len(files) == 1 and files[0].parent == output_dir / "images" / "abdominal-organ-segmentation"
    uuid.UUID(files[0].name.removesuffix(".mha"))
    labels = sitk.ReadImage(str(files[0]))
    assert labels.GetPixelID() == sitk.sitkUInt8 and labels.GetNumberOfComponentsPerPixel() == 1
    _assert_same_geometry(labels, image)


def test_gc_output_relative_path_comes_from_the_environment(tmp_path: Path) -> None:
    input_dir, _ = _gc_input(tmp_path / "input")
    output_dir = tmp_path / "output"
    env = {
        "AEVAL_INPUT_DIR": str(input_dir),
        "AEVAL_OUTPUT_DIR": str(output_dir),
        "AEVAL_OUTPUT_RELATIVE_PATH": "images/organs",
        "STUNET_MODEL_DIR": str(tmp_path / "no-model"),
        "STUNET_RANDOM_WEIGHTS": "1",
        **FAST,
    }
    result = _predict(env)
    assert result.returncode == 0, result.stderr
    assert "RANDOM small weights" in result.stderr
    assert len(list((output_dir / "images" / "organs").glob("*.mha"))) == 1


def test_gc_with_two_images_fails_with_a_clear_last_line(tmp_path: Path, model_dir: Path) -> None:
    input_dir, _ = _gc_input(tmp_path / "input", images=2)
    result = _predict({"AEVAL_INPUT_DIR": str(input_dir), "AEVAL_OUTPUT_DIR": str(tmp_path / "out"), "STUNET_MODEL_DIR": str(model_dir), **FAST})
    assert result.returncode == 1
    assert "expected exactly one input image" in _last_stderr_line(result)


def test_flare_protocol_via_predict_sh(tmp_path: Path) -> None:
    inputs, outputs = tmp_path / "inputs", tmp_path / "outputs"
    inputs.mkdir()
    cases = {
        "FLARE22_Tr_0001": ct_like_image(size_xyz=(30, 34, 12), spacing_xyz=(2.5, 2.5, 5.0), seed=1),
        "FLARE22_Tr_0002": ct_like_image(size_xyz=(37, 29, 9), spacing_xyz=(3.0, 2.0, 6.0), origin=(1, 2, 3), seed=2),
    }
    for case, image in cases.items():
        sitk.WriteImage(image, str(inputs / f"{case}_0000.nii.gz"))
    (inputs / "notes.txt").write_text("not an image")
    env = {"AEVAL_INPUT_DIR": str(inputs), "AEVAL_OUTPUT_DIR": str(outputs), "STUNET_MODEL_DIR": str(tmp_path / "none"), "STUNET_RANDOM_WEIGHTS": "1", **FAST}
    result = _run(["sh", str(PACKAGE_ROOT / "predict.sh")], env)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in outputs.iterdir()) == [f"{case}.nii.gz" for case in sorted(cases)]
    for case, image in cases.items():
        labels = sitk.ReadImage(str(outputs / f"{case}.nii.gz"))
        assert labels.GetPixelID() == sitk.sitkUInt8
        _assert_same_geometry(labels, sitk.ReadImage(str(inputs / f"{case}_0000.nii.gz")))


def test_malicious_checkpoint_stops_the_run_before_it_executes(tmp_path: Path) -> None:
    model = tmp_path / "model"
    model.mkdir()
    marker = tmp_path / "payload_ran"
    import torch

    torch.save({"state_dict": {}, "plot_stuff": Payload(marker)}, model / "evil.model")
    input_dir, _ = _gc_input(tmp_path / "input")
    result = _predict({"AEVAL_INPUT_DIR": str(input_dir), "AEVAL_OUTPUT_DIR": str(tmp_path / "out"), "STUNET_MODEL_DIR": str(model), "STUNET_RANDOM_WEIGHTS": "1", **FAST})
    assert result.returncode == 1
    assert "refusing to load" in _last_stderr_line(result) and "evil.model" in _last_stderr_line(result)
    assert not marker.exists()
    assert not (tmp_path / "out").exists()
