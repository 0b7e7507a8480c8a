"""The built image in both protocols, under Grand-Challenge-like restrictions (no network, read-only inputs).

Needs a Docker engine and the CPU base image ``aeval/torch-cpu:2.13.0``
(``containers/base/build_bases.sh``); skipped otherwise. The image is (re)built
from a context holding only the files the Dockerfile copies, so the legacy
builder does not upload the whole repository (``.venv`` included).
"""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path

import pytest
import SimpleITK as sitk

pytest.importorskip("torch")  # the stunet package needs torch

from stunet.checkpoint import random_stunet

from .conftest import REPO_ROOT
from .synthetic import ct_like_image, write_v1_checkpoint

pytestmark = pytest.mark.docker

BASE_IMAGE = "aeval/torch-cpu:2.13.0"
IMAGE = "aeval/stunet:cpu"
CONTEXT_FILES = [
    "containers/stunet/Dockerfile",
    "containers/stunet/pyproject.toml",
    "containers/stunet/predict.sh",
    "containers/stunet/stunet",
    "ground_truth_manifests/label_maps/stunet_totalseg_v1.json",
]
FAST = ["-e", "STUNET_PATCH_SIZE=32", "-e", "STUNET_TARGET_SPACING_MM=3"]


def _docker(*args: str, stdin: bytes | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(["docker", *args], input=stdin, capture_output=True, timeout=timeout)


def _context_tar() -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz", format=tarfile.GNU_FORMAT) as tar:
        for name in CONTEXT_FILES:
            tar.add(REPO_ROOT / name, arcname=name, filter=lambda info: None if "__pycache__" in info.name else info)
    return buffer.getvalue()


@pytest.fixture(scope="module")
def image() -> str:
    if shutil.which("docker") is None or _docker("version").returncode != 0:
        pytest.skip("no Docker engine answers")
    if _docker("image", "inspect", BASE_IMAGE).returncode != 0:
        pytest.skip(f"base image {BASE_IMAGE} is missing (containers/base/build_bases.sh builds it)")
    result = _docker(
        "build", "-q", "-f", "containers/stunet/Dockerfile", "--build-arg", f"BASE_IMAGE={BASE_IMAGE}", "-t", IMAGE, "-",
        stdin=_context_tar(), timeout=900,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    return IMAGE


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model folder holding a v1 checkpoint, readable by the image's non-root user."""
    folder = tmp_path_factory.mktemp("model")
    write_v1_checkpoint(folder / "small_ep4k.model", random_stunet(size="small", seed=2))
    for path in (folder.parent, folder, folder / "small_ep4k.model"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return folder


@pytest.fixture()
def folders(tmp_path: Path, model_dir: Path) -> dict[str, Path]:
    """Input and output folders readable and writable by the image's non-root user."""
    paths = {name: tmp_path / name for name in ("gc_in", "gc_out", "flare_in", "flare_out")}
    for path in paths.values():
        path.mkdir()
    for path in [tmp_path, *paths.values()]:
        path.chmod(0o777)
    return {**paths, "model": model_dir}


def _same_geometry(a: sitk.Image, b: sitk.Image) -> bool:
    return (a.GetSize(), a.GetSpacing(), a.GetOrigin(), a.GetDirection()) == (b.GetSize(), b.GetSpacing(), b.GetOrigin(), b.GetDirection())


def test_gc_protocol_in_the_container(image: str, folders: dict[str, Path]) -> None:
    source = ct_like_image(size_xyz=(40, 36, 14), spacing_xyz=(2.0, 2.2, 5.0))
    socket = folders["gc_in"] / "images" / "ct-image"
    socket.mkdir(parents=True)
    sitk.WriteImage(source, str(socket / f"{uuid.uuid4()}.mha"))
    interface = {"slug": "ct-image", "kind": "Image", "super_kind": "Image", "relative_path": "images/ct-image"}
    (folders["gc_in"] / "inputs.json").write_text(json.dumps([{"interface": interface, "image": {"name": "c.nii.gz"}}]))
    for path in [socket.parent, socket, *socket.iterdir(), folders["gc_in"] / "inputs.json"]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    result = _docker(
        "run", "--rm", "--network", "none", "--cap-drop=ALL", "--security-opt=no-new-privileges", *FAST,
        "-v", f"{folders['gc_in']}:/input:ro", "-v", f"{folders['gc_out']}:/output",
        "-v", f"{folders['model']}:/opt/ml/model:ro", image,
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    outputs = list((folders["gc_out"] / "images" / "abdominal-organ-segmentation").glob("*.mha"))
    assert len(outputs) == 1
    labels = sitk.ReadImage(str(outputs[0]))
    assert labels.GetPixelID() == sitk.sitkUInt8 and _same_geometry(labels, source)


def test_flare_protocol_in_the_container(image: str, folders: dict[str, Path]) -> None:
    source = ct_like_image(size_xyz=(33, 30, 10), spacing_xyz=(2.5, 2.5, 6.0), seed=4)
    sitk.WriteImage(source, str(folders["flare_in"] / "case_0a1b_0000.nii.gz"))
    (folders["flare_in"] / "case_0a1b_0000.nii.gz").chmod(0o644)
    result = _docker(
        "run", "--rm", "--network", "none", *FAST,
        "-v", f"{folders['flare_in']}:/workspace/inputs/:ro", "-v", f"{folders['flare_out']}:/workspace/outputs/",
        "-v", f"{folders['model']}:/opt/ml/model:ro", image, "/bin/bash", "-c", "sh predict.sh",
    )
    assert result.returncode == 0, result.stderr.decode()[-2000:]
    assert [p.name for p in folders["flare_out"].iterdir()] == ["case_0a1b.nii.gz"]
    labels = sitk.ReadImage(str(folders["flare_out"] / "case_0a1b.nii.gz"))
    assert labels.GetPixelID() == sitk.sitkUInt8
    reread = sitk.ReadImage(str(folders["flare_in"] / "case_0a1b_0000.nii.gz"))
    assert _same_geometry(labels, reread)


def test_image_user_and_labels(image: str) -> None:
    config = json.loads(_docker("image", "inspect", image).stdout)[0]["Config"]
    assert config["User"] not in ("", "0", "root")
    assert config["Labels"]["org.a-eval.protocol"] == "gc,flare"
    assert config["Labels"]["org.a-eval.label-map-file"] == "/opt/app/label_map.json"
    # Fast by default: glibc keeps the network's large buffers instead of unmapping them per tile.
    assert {"MALLOC_MMAP_MAX_=0", "MALLOC_TRIM_THRESHOLD_=68719476736"} <= set(config["Env"])
    shown = _docker("run", "--rm", "--network", "none", image, "python", "-c", "import json; print(len(json.load(open('/opt/app/label_map.json'))['labels']))")
    assert shown.returncode == 0 and int(shown.stdout) == 104
