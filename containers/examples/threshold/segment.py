"""A correct (if trivial) algorithm for the synthetic benchmark: organs from intensity bands.

The synthetic benchmark gives every organ its own intensity band (harness/data/synthetic_appearance.json),
so thresholding recovers the ground truth exactly. The image speaks both protocols of the harness:
- gc: /input/inputs.json + one image under /input/images/<socket>/ -> one .mha under
  /output/<AEVAL_OUTPUT_RELATIVE_PATH>/ (Grand-Challenge's layout);
- flare: every /workspace/inputs/<case>_0000.nii.gz -> /workspace/outputs/<case>.nii.gz.
Output ids follow the label map in label_map.json (organ name -> id), so the same code can write
the benchmark's ids or any other convention, to exercise the harness's label-mapping layer.
Only numpy and SimpleITK: it runs in the tiny test images and on the host in tests.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import SimpleITK as sitk

HERE = Path(__file__).resolve().parent


def load_tables(appearance_path: Path, label_map_path: Path) -> list[tuple[float, float, int]]:
    """(low, high, output id) per organ band, for both modalities."""
    look = json.loads(appearance_path.read_text())
    names = {name: int(i) for i, name in json.loads(label_map_path.read_text())["labels"].items()}
    half = look["band_half_width"]
    bands = []
    for modality in ("CT", "MR"):
        for organ, value in look[modality]["organs"].items():
            if organ in names:
                bands.append((value - half, value + half, names[organ]))
    return bands


def segment(image: sitk.Image, bands: list[tuple[float, float, int]]) -> sitk.Image:
    values = sitk.GetArrayViewFromImage(image)
    out = np.zeros(values.shape, dtype=np.uint8)
    for low, high, label in bands:
        out[(values >= low) & (values <= high)] = label
    result = sitk.GetImageFromArray(out)
    result.CopyInformation(image)
    return result


def run_gc(bands, input_dir: Path, output_dir: Path) -> None:
    inputs = json.loads((input_dir / "inputs.json").read_text())
    sockets = [entry["interface"]["relative_path"] for entry in inputs if entry["interface"]["kind"] == "Image"]
    if len(sockets) != 1:
        sys.exit(f"expected one image socket in inputs.json, found {sockets}")
    files = sorted((input_dir / sockets[0]).glob("*.mha")) + sorted((input_dir / sockets[0]).glob("*.tif"))
    if len(files) != 1:
        sys.exit(f"expected one image in {input_dir / sockets[0]}, found {len(files)}")
    relative = os.environ.get("AEVAL_OUTPUT_RELATIVE_PATH", "images/abdominal-organ-segmentation")
    target = output_dir / relative / f"{files[0].stem}.mha"
    target.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(segment(sitk.ReadImage(str(files[0])), bands), str(target), useCompression=True)


def run_flare(bands, input_dir: Path, output_dir: Path) -> None:
    output_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(input_dir.glob("*_0000.nii.gz")):
        case = path.name[: -len("_0000.nii.gz")]
        sitk.WriteImage(segment(sitk.ReadImage(str(path)), bands), str(output_dir / f"{case}.nii.gz"))


def main() -> None:
    bands = load_tables(Path(os.environ.get("APPEARANCE", HERE / "synthetic_appearance.json")),
                        Path(os.environ.get("LABEL_MAP", HERE / "label_map.json")))
    protocol = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("AEVAL_PROTOCOL", "gc")
    if protocol == "gc":
        run_gc(bands, Path(os.environ.get("AEVAL_INPUT_DIR", "/input")), Path(os.environ.get("AEVAL_OUTPUT_DIR", "/output")))
    elif protocol == "flare":
        run_flare(bands, Path(os.environ.get("AEVAL_INPUT_DIR", "/workspace/inputs")),
                  Path(os.environ.get("AEVAL_OUTPUT_DIR", "/workspace/outputs")))
    else:
        sys.exit(f"unknown protocol {protocol}")


if __name__ == "__main__":
    main()
