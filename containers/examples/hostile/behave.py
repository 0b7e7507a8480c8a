"""Hostile and broken submissions, one behaviour per image, to prove the sandbox contains them.

Each behaviour is what a buggy or malicious participant container might do; the harness must
contain it and report it precisely without losing anything else. Selected by the first argument.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import SimpleITK as sitk

OUT = Path("/output/images/abdominal-organ-segmentation")


def the_input() -> Path:
    inputs = json.loads(Path("/input/inputs.json").read_text())
    folder = Path("/input") / inputs[0]["interface"]["relative_path"]
    return next(folder.glob("*.mha"))


def write_labels(array: np.ndarray, reference: sitk.Image, *, spacing=None, direction=None) -> None:
    image = sitk.GetImageFromArray(array)
    image.CopyInformation(reference)
    if spacing is not None:
        image.SetSpacing(spacing)
    if direction is not None:
        image.SetDirection(direction)
    OUT.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(OUT / "out.mha"))


def write_input() -> None:
    target = the_input()
    with open(target, "r+b") as handle:  # raises: /input is mounted read-only
        handle.write(b"corrupted")


def fork_bomb() -> None:
    children = 0
    try:
        while True:
            if os.fork() == 0:
                time.sleep(60)
                os._exit(0)
            children += 1
    except OSError as exc:
        sys.exit(f"fork failed after {children} processes: {exc.strerror}")


def memory_hog() -> None:
    hoard = []
    while True:
        hoard.append(np.ones(64 * 1024 * 1024, dtype=np.uint8))  # touch every page


def never_exit() -> None:
    while True:
        time.sleep(1)


def write_nothing() -> None:
    print("done, but wrote nothing")


def float_output() -> None:
    reference = sitk.ReadImage(str(the_input()))
    write_labels(np.full(sitk.GetArrayViewFromImage(reference).shape, 1.5, dtype=np.float32), reference)


def wrong_geometry() -> None:
    reference = sitk.ReadImage(str(the_input()))
    shape = sitk.GetArrayViewFromImage(reference).shape
    flipped = [-d for d in reference.GetDirection()]
    write_labels(np.zeros(shape, dtype=np.uint8), reference, direction=flipped)


def symlink_out() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    os.symlink("/etc/passwd", OUT / "out.mha")


def two_outputs() -> None:
    reference = sitk.ReadImage(str(the_input()))
    write_labels(np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint8), reference)
    sitk.WriteImage(sitk.ReadImage(str(OUT / "out.mha")), str(OUT / "second.mha"))


def list_network() -> None:
    interfaces = sorted(os.listdir("/sys/class/net"))
    print("INTERFACES=" + json.dumps(interfaces))
    reference = sitk.ReadImage(str(the_input()))
    write_labels(np.zeros(sitk.GetArrayViewFromImage(reference).shape, dtype=np.uint8), reference)


def crash() -> None:
    print("loading model", file=sys.stderr)
    raise RuntimeError("CUDA error: no kernel image is available for execution on the device")


BEHAVIOURS = {f.__name__: f for f in (write_input, fork_bomb, memory_hog, never_exit, write_nothing, float_output,
                                      wrong_geometry, symlink_out, two_outputs, list_network, crash)}

if __name__ == "__main__":
    BEHAVIOURS[sys.argv[1]]()
