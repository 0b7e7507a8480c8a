"""A Grand-Challenge evaluation input laid out exactly as the platform writes it, plus its ground truth.

Two test sets (BTCV CT, AMOS MR) of tiny label volumes in their native ids, a ground-truth folder
built by the organizer's tool (`build_ground_truth`) from a manifest folder and data root, and
/input with predictions.json (jobs shuffled, pks as UUIDs, inputs with interface/image/name,
outputs entries) and /input/<pk>/output/images/abdominal-organ-segmentation/<uuid>.mha.

The predictions are chosen so that every expected number is known by hand: a perfect prediction
scores 1 for all ten organs; one that leaves out the left kidney scores 0 there and 1 elsewhere
(case mean 0.9); every failure scores 0.
"""

from __future__ import annotations

import json
import random
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from harness.manifest import load_benchmark
from harness.publish.gc_ground_truth import build_ground_truth

RELATIVE_PATH = "images/abdominal-organ-segmentation"
SHAPE = (12, 20, 20)  # z, y, x
SPACING_XYZ = (2.0, 2.0, 3.0)
#: benchmark id -> native id, for the organs painted (others are absent from GT and prediction)
BTCV_IDS = {1: 1, 2: 2, 3: 3, 5: 6}   # spleen, kidney R, kidney L, liver
AMOS_IDS = {1: 1, 2: 2, 3: 3, 5: 6}
BOXES = {1: (slice(2, 6), slice(2, 7), slice(2, 7)), 2: (slice(3, 8), slice(10, 15), slice(2, 6)),
         3: (slice(3, 8), slice(10, 15), slice(13, 17)), 5: (slice(4, 10), slice(3, 9), slice(10, 18))}
KIDNEY_LEFT = 3


def benchmark_volume(shift: int = 0) -> np.ndarray:
    volume = np.zeros(SHAPE, dtype=np.uint8)
    for organ, box in BOXES.items():
        z = slice(box[0].start + shift, box[0].stop + shift)
        volume[(z, box[1], box[2])] = organ
    return volume


def write(array: np.ndarray, path: Path, *, origin=(0.0, 0.0, 0.0)) -> None:
    image = sitk.GetImageFromArray(array)
    image.SetSpacing(SPACING_XYZ)
    image.SetOrigin(origin)
    path.parent.mkdir(parents=True, exist_ok=True)
    sitk.WriteImage(image, str(path), useCompression=True)


def _native(volume: np.ndarray, ids: dict[int, int]) -> np.ndarray:
    out = np.zeros_like(volume)
    for benchmark_id, native in ids.items():
        out[volume == benchmark_id] = native
    return out


def _manifest(key: str, dataset: str, modality: str, label_map: str, case_ids: list[str]) -> dict:
    socket = {"slug": f"{modality.lower()}-image", "title": f"{modality} Image",
              "relative_path": f"images/{modality.lower()}"}
    return {"schema_version": 1, "key": key, "dataset": dataset, "modality": modality,
            "source_label_map": label_map, "gt_label_map": label_map, "expected_case_count": len(case_ids),
            "input_socket": socket,
            "cases": [{"case_id": c, "image": f"images/{key}/{c}.nii.gz", "label": f"labels/{key}/{c}.nii.gz"}
                      for c in case_ids]}


@dataclass
class GcLayout:
    input_dir: Path
    ground_truth_dir: Path
    output_dir: Path
    index: dict
    #: (test set, case id) -> (expected status, expected case Dice mean, error kind)
    expected: dict[tuple[str, str], tuple[str, float, str | None]] = field(default_factory=dict)
    job_of_case: dict[tuple[str, str], str] = field(default_factory=dict)
    unmatched_pks: list[str] = field(default_factory=list)


def _job(pk: str, *, image_name: str, modality: str, status: str = "Succeeded") -> dict:
    slug = f"{modality.lower()}-image"
    return {
        "pk": pk, "api_url": f"https://grand-challenge.org/api/v1/algorithms/jobs/{pk}/",
        "url": f"https://grand-challenge.org/algorithms/a-eval/jobs/{pk}/", "status": status,
        "rendered_result_text": "", "algorithm_image": "https://grand-challenge.org/api/v1/algorithms/images/x/",
        "started_at": "2026-01-01T00:00:00Z", "completed_at": "2026-01-01T00:05:00Z", "hanging_protocol": None,
        "inputs": [{"pk": random.randint(1, 10**6), "file": None, "value": None,
                    "image": {"pk": str(uuid.uuid4()), "name": image_name},
                    "interface": {"pk": 11, "title": f"{modality} Image", "slug": slug, "kind": "Image",
                                  "super_kind": "Image", "relative_path": f"images/{modality.lower()}",
                                  "default_value": None, "look_up_table": None, "overlay_segments": []}}],
        "outputs": [{"pk": random.randint(1, 10**6), "file": None, "value": None,
                     "image": {"pk": str(uuid.uuid4()), "name": f"{uuid.uuid4()}.mha"},
                     "interface": {"pk": 12, "title": "Abdominal organ segmentation",
                                   "slug": "abdominal-organ-segmentation", "kind": "Segmentation",
                                   "super_kind": "Image", "relative_path": RELATIVE_PATH,
                                   "overlay_segments": [{"name": "spleen", "visible": True, "voxel_value": 1}]}}],
    }


def make_gc_layout(root: Path, *, seed: int = 7) -> GcLayout:
    """The organizer's ground truth and one submission's evaluation input, with known outcomes."""
    random.seed(seed)
    benchmark_dir, data_root = root / "benchmark", root / "data"
    benchmark_dir.mkdir(parents=True)
    sets = {"btcv": ("BTCV", "CT", "btcv", BTCV_IDS, ["img0001", "img0002", "img0003", "img0004"]),
            "amos_mr": ("AMOS 2022", "MR", "amos", AMOS_IDS, ["amos_0507", "amos_0508", "amos_0510"])}
    for key, (dataset, modality, label_map, ids, case_ids) in sets.items():
        (benchmark_dir / f"{key}.json").write_text(json.dumps(_manifest(key, dataset, modality, label_map, case_ids)))
        for case_id in case_ids:
            native = _native(benchmark_volume(), ids)
            write(native, data_root / "labels" / key / f"{case_id}.nii.gz")
            write(np.zeros(SHAPE, dtype=np.int16), data_root / "images" / key / f"{case_id}.nii.gz")
    index = build_ground_truth(manifests=load_benchmark(str(benchmark_dir)), data_root=data_root,
                               benchmark="gc-test", out=root / "organizer")
    layout = GcLayout(input_dir=root / "input", ground_truth_dir=root / "organizer" / "ground_truth",
                      output_dir=root / "output", index=index)
    name_of = {(c["test_set"], c["case_id"]): c["image_name"] for c in index["cases"]}
    modality_of = {k: v[1] for k, v in sets.items()}
    # What each case's job does: (prediction array or None, job status, expected (status, case mean, kind))
    perfect = benchmark_volume()
    no_left_kidney = np.where(perfect == KIDNEY_LEFT, 0, perfect).astype(np.uint8)
    plan = {
        ("btcv", "img0001"): ("perfect", perfect, ("ok", 1.0, None)),
        ("btcv", "img0002"): ("missing kidney", no_left_kidney, ("ok", 0.9, None)),
        ("btcv", "img0003"): ("wrong geometry", perfect, ("failed", 0.0, "geometry_mismatch")),
        ("btcv", "img0004"): ("float pixels", perfect.astype(np.float32), ("failed", 0.0, "non_integer_labels")),
        ("amos_mr", "amos_0507"): ("perfect, name as .mha", perfect, ("ok", 1.0, None)),
        ("amos_mr", "amos_0508"): ("job failed", None, ("failed", 0.0, "job_failed")),
        ("amos_mr", "amos_0510"): ("no job", None, ("failed", 0.0, "missing_prediction")),
    }
    jobs = []
    layout.input_dir.mkdir(parents=True)
    for (key, case_id), (what, array, expected) in plan.items():
        layout.expected[(key, case_id)] = expected
        if what == "no job":
            continue
        pk = str(uuid.uuid4())
        name = name_of[(key, case_id)]
        if what.endswith("as .mha"):
            name = name.removesuffix(".nii.gz") + ".mha"  # the platform may store uploads converted
        job = _job(pk, image_name=name, modality=modality_of[key],
                   status="Failed" if what == "job failed" else "Succeeded")
        jobs.append(job)
        layout.job_of_case[(key, case_id)] = pk
        if array is not None:
            origin = (5.0, 0.0, 0.0) if what == "wrong geometry" else (0.0, 0.0, 0.0)
            write(array, layout.input_dir / pk / "output" / RELATIVE_PATH / f"{uuid.uuid4()}.mha", origin=origin)
    stray = _job(str(uuid.uuid4()), image_name="not-in-the-archive.mha", modality="CT")
    jobs.append(stray)
    layout.unmatched_pks.append(stray["pk"])
    random.shuffle(jobs)
    (layout.input_dir / "predictions.json").write_text(json.dumps(jobs, indent=2))
    for path in [root, *root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)  # the container's non-root user reads them
    layout.output_dir.mkdir()
    layout.output_dir.chmod(0o777)
    return layout
