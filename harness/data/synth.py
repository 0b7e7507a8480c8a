"""`harness data synth`: the embedded miniature benchmark, generated deterministically.

Seven test sets in miniature, named, laid out and labelled like their sources (the case lists and
paths come from ground_truth_manifests/synthetic/, the one source of truth), so every command of the
harness runs with no download. Each case is the phantom of `phantom.py` sampled on a grid with the
source's typical anisotropic spacing and orientation (RAS-stored NIfTI, LPS, oblique, coronal MR),
a field of view that sometimes leaves organs out, and organ-specific intensities (HU for CT, MR-like
units for MR) from synthetic_appearance.json, so that a correct algorithm can recover the organs.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from harness.data.phantom import AORTA, paint
from harness.imageio import Geometry, write_image_atomic
from harness.manifest import Case, Manifest, load_benchmark
from harness.taxonomy import load_taxonomy, normalize_name


@dataclass(frozen=True)
class GridProfile:
    """How a source's scans look: spacing (x, y, z) in mm, in-plane matrix, orientations per case."""

    spacing_xyz: tuple[float, float, float]
    inplane: int
    orientations: tuple[str, ...]  # cycled over the cases
    fovs: tuple[tuple[float, float], ...]  # superior-inferior extent (z_low, z_high) in mm, cycled


_FULL = (-95.0, 125.0)
_UPPER_CUT = (-95.0, 25.0)      # top cut: adrenals, esophagus, most of the spleen absent
_LOWER_CUT = (30.0, 150.0)      # bottom cut: kidneys, gallbladder mostly absent
_CHEST = (95.0, 160.0)          # almost no abdomen: most organs absent from GT

PROFILES: dict[str, GridProfile] = {
    "flare22": GridProfile((3.6, 3.6, 5.0), 96, ("ras", "ras", "lps", "ras"), (_FULL, _FULL, _UPPER_CUT, _FULL)),
    "amos_ct": GridProfile((3.4, 3.4, 5.0), 96, ("lps", "oblique", "lps", "ras"), (_FULL, _FULL, _FULL, _LOWER_CUT)),
    "word": GridProfile((3.5, 3.5, 4.5), 96, ("ras", "lps", "ras", "ras"), (_FULL, _FULL, _FULL, _UPPER_CUT)),
    "totalseg_ct": GridProfile((4.0, 4.0, 4.0), 88, ("ras", "ras", "oblique", "ras"), (_FULL, _LOWER_CUT, _FULL, _CHEST)),
    "btcv": GridProfile((3.8, 3.8, 5.0), 96, ("ras", "ras", "ras", "lps"), (_FULL, _FULL, _UPPER_CUT, _FULL)),
    "amos_mr": GridProfile((3.6, 3.6, 6.0), 88, ("ras", "ras", "lps", "oblique"), (_FULL, _UPPER_CUT, _FULL, _FULL)),
    "totalseg_mr": GridProfile((4.0, 4.0, 5.0), 88, ("coronal", "ras", "coronal", "ras"),
                               (_FULL, _CHEST, _LOWER_CUT, _UPPER_CUT)),
}


def appearance() -> dict:
    return json.loads(resources.files("harness.data").joinpath("synthetic_appearance.json").read_text())


def _direction(orientation: str, rng: np.random.Generator) -> np.ndarray:
    """Direction cosines (columns = physical direction of index axes i, j, k) in LPS."""
    if orientation == "lps":
        return np.eye(3)
    if orientation == "ras":  # what most NIfTI files from scanners look like through ITK
        return np.diag([-1.0, -1.0, 1.0])
    if orientation == "oblique":
        angle = np.deg2rad(rng.uniform(6, 12))
        rotation = np.array([[np.cos(angle), -np.sin(angle), 0], [np.sin(angle), np.cos(angle), 0], [0, 0, 1]])
        return rotation @ np.diag([-1.0, -1.0, 1.0])
    if orientation == "coronal":  # i: right->left, j: superior->inferior, k: anterior->posterior
        return np.array([[1.0, 0, 0], [0, 0, 1.0], [0, -1.0, 0]])
    raise ValueError(f"unknown orientation {orientation}")


def case_grid(profile: GridProfile, index: int, rng: np.random.Generator) -> Geometry:
    """The image grid of one case: the SI-aligned index axis spans the case's field of view."""
    orientation = profile.orientations[index % len(profile.orientations)]
    z_low, z_high = profile.fovs[index % len(profile.fovs)]
    direction = _direction(orientation, rng)
    sx, sy, sz = profile.spacing_xyz
    # Physical extent and spacing per index axis: the axis that runs along physical z gets the FOV.
    si_index_axis = int(np.argmax(np.abs(direction[2, :])))
    spacing = [sx, sy, sy]
    spacing[si_index_axis] = sz
    size = [profile.inplane] * 3
    size[si_index_axis] = int(np.ceil((z_high - z_low) / sz))
    center = np.array([0.0, 10.0, (z_low + z_high) / 2]) + rng.uniform(-5, 5, size=3) * [1, 1, 0]
    half = direction @ (np.array(spacing) * (np.array(size) - 1) / 2)
    origin = center - half
    return Geometry(size_xyz=tuple(size), spacing_xyz=tuple(float(s) for s in spacing),
                    origin_xyz=tuple(float(o) for o in origin), direction=tuple(float(d) for d in direction.ravel()))


def physical_points(geometry: Geometry) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical (x, y, z) of every voxel, as arrays in numpy (z, y, x) index order."""
    nk, nj, ni = geometry.shape_array
    k, j, i = np.ogrid[0:nk, 0:nj, 0:ni]
    d = np.asarray(geometry.direction).reshape(3, 3)
    s = geometry.spacing_xyz
    o = geometry.origin_xyz
    return tuple(o[r] + d[r, 0] * s[0] * i + d[r, 1] * s[1] * j + d[r, 2] * s[2] * k for r in range(3))


def _native_lut(manifest: Manifest) -> np.ndarray:
    """Benchmark id (and the aorta marker) -> the source's native id in its label map."""
    mapping = manifest.gt_mapping
    lut = np.zeros(256, dtype=np.uint16)
    for native, benchmark in mapping.native_to_benchmark.items():
        lut[benchmark] = native
    for native, name in mapping.label_map.labels.items():
        if normalize_name(name) == normalize_name("aorta"):
            lut[AORTA] = native
    return lut


def generate_case(manifest: Manifest, case: Case, index: int) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """(intensity image, native label image, geometry) of one synthetic case, deterministic per case id."""
    rng = np.random.default_rng(zlib.crc32(f"{manifest.key}/{case.case_id}".encode()))
    geometry = case_grid(PROFILES[manifest.key], index, rng)
    labels, body = paint(physical_points(geometry), rng)
    look = appearance()
    modality = look[manifest.modality]
    value_lut = np.full(256, float(modality["body"]), dtype=np.float32)
    for organ in load_taxonomy().organs:
        value_lut[organ.id] = modality["organs"][organ.name]
    value_lut[AORTA] = modality["other"]["aorta"]
    intensities = value_lut[labels]
    intensities[~body] = modality["air"]
    noise = rng.integers(-look["noise"], look["noise"] + 1, size=labels.shape)
    intensities = intensities + noise
    image = intensities.astype(np.int16) if manifest.modality == "CT" else intensities.astype(np.float32)
    native = _native_lut(manifest)[labels]
    native = native.astype(np.uint8) if native.max() < 256 else native
    return image, native.astype(np.uint8), geometry


def synthesize(out_dir: Path, *, benchmark: str = "synthetic", keys: list[str] | None = None,
               force: bool = False, progress=None) -> list[Path]:
    """Write every synthetic case under `out_dir` (the data root); skips finished cases unless `force`."""
    written: list[Path] = []
    for manifest in load_benchmark(benchmark, keys=keys):
        for index, case in enumerate(manifest.cases):
            image_path, label_path = out_dir / case.image, out_dir / case.label
            if not force and image_path.is_file() and label_path.is_file():
                continue
            image, labels, geometry = generate_case(manifest, case, index)
            write_image_atomic(image, geometry, image_path)
            write_image_atomic(labels, geometry, label_path)
            written += [image_path, label_path]
            if progress:
                progress(manifest.key, case.case_id)
    return written

