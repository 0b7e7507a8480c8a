"""The locally built base images (containers/base/build_bases.sh) exist and work.

Needs a Docker engine (scripts/ensure_docker.sh) and the images
(containers/base/build_bases.sh). Without an engine the tests skip; with one
but without the images they fail, saying how to build them.
"""

from __future__ import annotations

import io
import re
import tarfile
from pathlib import Path

import pytest

docker = pytest.importorskip("docker", reason="the docker SDK is not installed")

pytestmark = pytest.mark.docker

DEBIAN_PYTHON = "aeval/debian-python:bookworm"
PYTHON_SCI = "aeval/python-sci:bookworm"
TORCH_CPU = "aeval/torch-cpu:2.13.0"
ALL_IMAGES = [DEBIAN_PYTHON, PYTHON_SCI, TORCH_CPU]

CA_BUNDLE = "/etc/ssl/certs/ca-certificates.crt"
HOST_CA_BUNDLE = Path(CA_BUNDLE)
BUILD_HINT = "build it with: containers/base/build_bases.sh (after scripts/ensure_docker.sh)"

_PEM = re.compile(r"-----BEGIN CERTIFICATE-----(.+?)-----END CERTIFICATE-----", re.S)


@pytest.fixture(scope="module")
def client():
    try:
        c = docker.from_env()
        c.ping()
    except Exception as exc:  # no socket, daemon down, permission denied, ...
        pytest.skip(f"no Docker engine answers ({exc.__class__.__name__}: {exc}); "
                    "run scripts/ensure_docker.sh")
    yield c
    c.close()


def run(client, image: str, *cmd: str) -> str:
    """Run cmd in a throwaway container with no network; return its stdout+stderr.

    The output goes to a file in the container, read back with get_archive:
    with Docker 20.10 the logs of a container that has just exited can come
    back truncated (seen with a ~440 kB `cat`).
    """
    try:
        client.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {image} not found; {BUILD_HINT}")
    container = client.containers.create(
        image, ["sh", "-c", '"$@" >/tmp/.aeval-test-out 2>&1', "sh", *cmd],
        network_mode="none")
    try:
        container.start()
        status = container.wait(timeout=300)["StatusCode"]
        out = read_file(container, "/tmp/.aeval-test-out")
    finally:
        container.remove(force=True)
    assert status == 0, f"{cmd!r} in {image} exited with {status}:\n{out}"
    return out


def read_file(container, path: str) -> str:
    stream, _ = container.get_archive(path)
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        member = tar.next()
        return tar.extractfile(member).read().decode()


def pem_set(text: str) -> set[str]:
    return {"".join(m.split()) for m in _PEM.findall(text)}


@pytest.mark.parametrize("image", ALL_IMAGES)
def test_image_exists(client, image):
    try:
        img = client.images.get(image)
    except docker.errors.ImageNotFound:
        pytest.fail(f"image {image} not found; {BUILD_HINT}")
    env = dict(e.split("=", 1) for e in img.attrs["Config"]["Env"])
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert env["PIP_CERT"] == CA_BUNDLE


@pytest.mark.parametrize("image", ALL_IMAGES)
def test_python_runs_from_the_venv_without_network(client, image):
    out = run(client, image, "python", "-c",
              "import os, sys; print(sys.prefix); print(sys.version_info[:2]); "
              "print(sorted(os.listdir('/sys/class/net')))")
    prefix, version, nics = out.splitlines()
    assert prefix == "/opt/venv"
    assert version == "(3, 11)"
    assert nics == "['lo']", "--network none should leave only the loopback interface"


@pytest.mark.parametrize("image", ALL_IMAGES)
def test_ca_bundle_present_and_holds_the_hosts(client, image):
    bundle = run(client, image, "cat", CA_BUNDLE)
    inside = pem_set(bundle)
    assert len(inside) > 100, "the image's CA bundle looks empty"
    out = run(client, image, "python", "-c",
              "import os, ssl; print(os.path.isfile('/usr/local/share/ca-certificates/host.crt')); "
              "print(ssl.create_default_context().cert_store_stats()['x509_ca'])")
    host_crt, n_ca = out.split()
    assert host_crt == "True"
    assert int(n_ca) > 100, "Python's ssl does not load the CA bundle"
    if HOST_CA_BUNDLE.is_file():
        missing = pem_set(HOST_CA_BUNDLE.read_text(errors="replace")) - inside
        assert not missing, (f"{len(missing)} CA certificate(s) of this host are not in {image}'s "
                             f"bundle (pip would fail behind the TLS proxy); rebuild with "
                             f"containers/base/build_bases.sh --force")


@pytest.mark.parametrize("image", [PYTHON_SCI, TORCH_CPU])
def test_numpy_and_simpleitk(client, image):
    out = run(client, image, "python", "-c",
              "import numpy, SimpleITK as sitk; "
              "img = sitk.GetImageFromArray(numpy.arange(24, dtype=numpy.uint8).reshape(2, 3, 4)); "
              "print(img.GetSize(), int(sitk.GetArrayFromImage(img).sum()))")
    assert out.strip() == "(4, 3, 2) 276"


def test_torch_cpu(client):
    out = run(client, TORCH_CPU, "python", "-c",
              "import torch; print(torch.__version__); print(torch.cuda.is_available()); "
              "print(int((torch.ones(3, 3) @ torch.ones(3, 3)).sum()))")
    version, cuda, total = out.split()
    assert version == "2.13.0+cpu"
    assert cuda == "False"
    assert total == "27"


def test_torch_cpu_pip_consistent(client):
    out = run(client, TORCH_CPU, "python", "-m", "pip", "check")
    assert "No broken requirements" in out
