"""Build the example and test submission images locally (no registry needed).

    python containers/examples/build.py threshold            # the correct example algorithm
    python containers/examples/build.py all                  # + label-map variant + hostile test images

The base image is $AEVAL_PYTHON_BASE, else aeval/python-sci:bookworm when the local engine has it
(built by containers/base/build_bases.sh), else the public python:3.11-slim-bookworm.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

import docker
import docker.errors

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
LOCAL_BASE = "aeval/python-sci:bookworm"
PUBLIC_BASE = "python:3.11-slim-bookworm"
THRESHOLD = "aeval-example/threshold:latest"
THRESHOLD_STUNET_IDS = "aeval-example/threshold-stunet-ids:latest"
HOSTILE_BEHAVIOURS = ("write_input", "fork_bomb", "memory_hog", "never_exit", "write_nothing", "float_output",
                      "wrong_geometry", "symlink_out", "two_outputs", "list_network", "crash")
HOSTILE_ROOT = "aeval-test/hostile-root:latest"
#: Outputs that attack the harness's reading of them: host-file headers, bombs, hostile trees, escapes.
HOSTILE_OUTPUT_BEHAVIOURS = ("mha_host_file", "mhd_list", "mhd_device", "mha_huge", "mhd_huge", "deep_tree",
                             "long_path", "many_files", "escape_names", "ansi_crash")
HOSTILE_FLARE_BOMB = "aeval-test/hostile-flare-gzip-bomb:latest"
HOSTILE_OUTPUT_CLIMB = "aeval-test/hostile-output-path-climb:latest"
#: Image labels of the variants built from the same hostile context (labels set at build time).
HOSTILE_LABELLED = {
    HOSTILE_FLARE_BOMB: ("flare_gzip_bomb", {"org.a-eval.protocol": "flare",
                                             "org.a-eval.flare-command": "python3 /opt/app/behave.py flare_gzip_bomb"}),
    HOSTILE_OUTPUT_CLIMB: ("write_nothing", {"org.a-eval.output-relative-path": "../../../other-run/output"}),
}


def hostile_tag(behaviour: str) -> str:
    return f"aeval-test/hostile-{behaviour.replace('_', '-')}:latest"


def base_image(client: docker.DockerClient) -> str:
    if os.environ.get("AEVAL_PYTHON_BASE"):
        return os.environ["AEVAL_PYTHON_BASE"]
    try:
        client.images.get(LOCAL_BASE)
        return LOCAL_BASE
    except docker.errors.ImageNotFound:
        return PUBLIC_BASE


def _build(client: docker.DockerClient, context: Path, tag: str, buildargs: dict[str, str],
           labels: dict[str, str] | None = None) -> str:
    try:
        image, _ = client.images.build(path=str(context), tag=tag, buildargs=buildargs, rm=True, network_mode="host",
                                       labels=labels)
    except docker.errors.BuildError as exc:
        log = "".join(chunk.get("stream", "") + chunk.get("error", "") for chunk in exc.build_log)
        raise SystemExit(f"building {tag} failed:\n{log[-3000:]}") from None
    return image.id


def build_threshold(client: docker.DockerClient, *, label_map: str = "a-eval", tag: str = THRESHOLD) -> str:
    """The threshold algorithm, writing the ids of shipped label map `label_map` and declaring it."""
    with tempfile.TemporaryDirectory() as scratch:
        context = Path(scratch)
        for name in ("Dockerfile", "segment.py", "predict.sh"):
            shutil.copy(HERE / "threshold" / name, context / name)
        shutil.copy(REPO / "harness" / "data" / "synthetic_appearance.json", context)
        document = json.loads((REPO / "ground_truth_manifests" / "label_maps" / f"{label_map}.json").read_text())
        (context / "label_map.json").write_text(json.dumps(document, indent=2))
        return _build(client, context, tag, {"BASE_IMAGE": base_image(client)})


def build_hostile(client: docker.DockerClient, behaviour: str, *, run_as: str = "algorithm", tag: str | None = None,
                  labels: dict[str, str] | None = None) -> str:
    with tempfile.TemporaryDirectory() as scratch:
        context = Path(scratch)
        for name in ("Dockerfile", "behave.py"):
            shutil.copy(HERE / "hostile" / name, context / name)
        return _build(client, context, tag or hostile_tag(behaviour),
                      {"BASE_IMAGE": base_image(client), "BEHAVIOUR": behaviour, "RUN_AS": run_as}, labels)


def build_all(client: docker.DockerClient) -> dict[str, str]:
    built = {THRESHOLD: build_threshold(client),
             THRESHOLD_STUNET_IDS: build_threshold(client, label_map="stunet_totalseg_v1", tag=THRESHOLD_STUNET_IDS)}
    for behaviour in HOSTILE_BEHAVIOURS:
        built[hostile_tag(behaviour)] = build_hostile(client, behaviour)
    built[HOSTILE_ROOT] = build_hostile(client, "list_network", run_as="root", tag=HOSTILE_ROOT)
    for behaviour in HOSTILE_OUTPUT_BEHAVIOURS:
        built[hostile_tag(behaviour)] = build_hostile(client, behaviour)
    for tag, (behaviour, labels) in HOSTILE_LABELLED.items():
        built[tag] = build_hostile(client, behaviour, tag=tag, labels=labels)
    return built


def main(argv: list[str]) -> int:
    client = docker.from_env()
    which = argv[0] if argv else "threshold"
    built = {THRESHOLD: build_threshold(client)} if which == "threshold" else build_all(client)
    for tag, image_id in built.items():
        print(f"{tag}  {image_id[:19]}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
