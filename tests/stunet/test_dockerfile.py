"""Static checks of the image recipe: the labels the harness reads, a non-root user, sources that exist.

Building the image needs a Docker engine and the base image; these checks need neither.
"""

from __future__ import annotations

import json
import re

from .conftest import PACKAGE_ROOT, REPO_ROOT

DOCKERFILE = (PACKAGE_ROOT / "Dockerfile").read_text()


def _instructions(name: str) -> list[str]:
    joined = re.sub(r"\\\n", " ", DOCKERFILE)
    return [line.strip()[len(name) :].strip() for line in joined.splitlines() if line.strip().startswith(name + " ")]


def test_labels_announce_protocols_output_path_and_label_map() -> None:
    labels = " ".join(_instructions("LABEL"))
    assert 'org.a-eval.protocol="gc,flare"' in labels
    assert 'org.a-eval.output-relative-path="images/abdominal-organ-segmentation"' in labels
    assert 'org.a-eval.label-map-file="/opt/app/label_map.json"' in labels


def test_copied_sources_exist_and_the_label_map_is_the_stunet_one() -> None:
    copies = [c.split() for c in _instructions("COPY") if not c.startswith("--from")]
    for source, _ in copies:
        assert (REPO_ROOT / source).exists(), source
    label_map = [src for src, dest in copies if dest == "/opt/app/label_map.json"]
    assert label_map == ["ground_truth_manifests/label_maps/stunet_totalseg_v1.json"]
    labels = json.loads((REPO_ROOT / label_map[0]).read_text())["labels"]
    assert (labels["1"], labels["40"], labels["77"], labels["78"]) == ("adrenal_gland_left", "liver", "spleen", "stomach")


def test_runs_as_a_named_non_root_user_with_a_gc_default_command() -> None:
    users = _instructions("USER")
    assert users and users[-1] not in {"root", "0", ""}
    assert _instructions("CMD")[-1] == '["python", "-m", "stunet.predict", "--protocol", "gc"]'
    assert not _instructions("ENTRYPOINT")  # FLARE's "sh predict.sh" command must replace the CMD
    assert _instructions("ARG")[0].startswith("BASE_IMAGE=")
