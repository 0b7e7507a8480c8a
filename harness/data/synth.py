"""`harness data synth`: the embedded synthetic benchmark, generated deterministically, in two sizes.

Seven test sets in miniature, named, laid out and labelled like their sources (the case lists and
paths come from ground_truth_manifests/synthetic/, the one source of truth), so every command of the
harness runs with no download. Each case is the phantom of `phantom.py` sampled on a grid with the
source's typical anisotropic spacing and orientation (RAS-stored NIfTI, LPS, oblique, coronal MR),
a field of view that sometimes leaves organs out, and organ-specific intensities (HU for CT, MR-like
units for MR) from synthetic_appearance.json, so that a correct algorithm can recover the organs.

`--scale full` samples the same phantom on each source's real grid (FULL_PROFILES: 512 x 512 CT
slices at 0.7-1 mm, 2.5-3 mm apart, 1.5 mm isotropic TotalSegmentator, ...) so that timings mean
what a user will see, and writes the data root's own manifests (`<out>/manifests/`) so the root is a
benchmark by itself. The miniature stays the default (tests, quickstart).
"""

from __future__ import annotations

import json
import re
import zlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from harness.data.phantom import AORTA, paint_boxes
from harness.data.prepare.pipeline import MANIFESTS_DIR
from harness.errors import HarnessError
from harness.imageio import Geometry, write_image_atomic
from harness.jsonio import read_json, write_json_atomic
from harness.manifest import Case, Manifest, load_benchmark, sha256_file
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


# Full size (`--scale full`): each source's typical grid. Figures used (the real sets vary case by case):
# - FLARE22: abdominal CT, 512 x 512 axial slices; FLARE's own example case is 0.8 x 0.8 x 2.5 mm
#   (https://flare22.grand-challenge.org/Home describes the 2300-scan multi-centre CT set).
# - AMOS 2022 (arXiv 2206.08023): 500 CT + 100 MR scans, 74K annotated slices in all, i.e. ~120 slices
#   per scan; CT 512 x 512 at ~0.7 mm; MR smaller matrices at coarser in-plane spacing.
# - WORD (arXiv 2111.02403): 150 CT volumes, 30495 slices (~200 per volume), 512 x 512, ~0.98 mm
#   in-plane, 2.5-3 mm slices.
# - TotalSegmentator CT v2 and MRI: the released images and models work at 1.5 mm isotropic
#   (https://atlas.rsna.org/cards/2909f4ab-0035-47a3-b244-6f0dd7154040: "1.5-mm isotropic resolution");
#   whole-body fields of view, the MR set partly coronal.
# - BTCV (https://www.emergentmind.com/topics/btcv-dataset): 30 portal-venous CTs, 512 x 512, 80-225
#   slices of 1-6 mm (0.54-0.98 mm in-plane in its challenge description).
# Fields of view along the patient's superior-inferior axis are longer than the miniature's (real
# scans reach from the pelvis to the lower chest), with the same kinds of cuts that leave organs out.
_FULL_BIG = (-230.0, 150.0)        # pelvis to lower chest: every organ present
_UPPER_CUT_BIG = (-300.0, 25.0)    # top cut: adrenals, esophagus, most of the spleen absent
_LOWER_CUT_BIG = (30.0, 260.0)     # bottom cut: kidneys, gallbladder mostly absent
_CHEST_BIG = (95.0, 340.0)         # chest: most organs absent from GT

FULL_PROFILES: dict[str, GridProfile] = {
    "flare22": GridProfile((0.8, 0.8, 2.5), 512, PROFILES["flare22"].orientations,
                           (_FULL_BIG, _FULL_BIG, _UPPER_CUT_BIG, _FULL_BIG)),
    "amos_ct": GridProfile((0.7, 0.7, 3.0), 512, PROFILES["amos_ct"].orientations,
                           (_FULL_BIG, _FULL_BIG, _FULL_BIG, _LOWER_CUT_BIG)),
    "word": GridProfile((0.98, 0.98, 2.5), 512, PROFILES["word"].orientations,
                        ((-300.0, 200.0), (-300.0, 200.0), (-300.0, 200.0), _UPPER_CUT_BIG)),
    "totalseg_ct": GridProfile((1.5, 1.5, 1.5), 280, PROFILES["totalseg_ct"].orientations,
                               ((-230.0, 220.0), _LOWER_CUT_BIG, (-230.0, 220.0), _CHEST_BIG)),
    "btcv": GridProfile((0.78, 0.78, 3.0), 512, PROFILES["btcv"].orientations,
                        ((-260.0, 180.0), (-260.0, 180.0), _UPPER_CUT_BIG, (-260.0, 180.0))),
    "amos_mr": GridProfile((1.25, 1.25, 3.0), 320, PROFILES["amos_mr"].orientations,
                           ((-150.0, 150.0), (-95.0, 25.0), (-150.0, 150.0), (-150.0, 150.0))),
    "totalseg_mr": GridProfile((1.5, 1.5, 1.5), 256, PROFILES["totalseg_mr"].orientations,
                               (_FULL_BIG, _CHEST_BIG, _LOWER_CUT_BIG, _UPPER_CUT_BIG)),
}
#: Grid profiles per scale: "mini" (the embedded miniature, default) or "full" (real sizes).
SCALES: dict[str, dict[str, GridProfile]] = {"mini": PROFILES, "full": FULL_PROFILES}


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


def physical_points(geometry: Geometry, box: tuple[tuple[int, int], ...] | None = None
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Physical (x, y, z) of every voxel (of `box`, half-open index ranges in (z, y, x) array order),
    as broadcastable arrays in numpy (z, y, x) index order."""
    nk, nj, ni = geometry.shape_array
    (k0, k1), (j0, j1), (i0, i1) = box or ((0, nk), (0, nj), (0, ni))
    k, j, i = np.ogrid[k0:k1, j0:j1, i0:i1]
    d = np.asarray(geometry.direction).reshape(3, 3)
    s = geometry.spacing_xyz
    o = geometry.origin_xyz
    return tuple(o[r] + d[r, 0] * s[0] * i + d[r, 1] * s[1] * j + d[r, 2] * s[2] * k for r in range(3))


def index_box(geometry: Geometry, lo_mm: np.ndarray, hi_mm: np.ndarray) -> tuple[tuple[int, int], ...]:
    """The (z, y, x) array-index box (half-open, clipped to the grid, maybe empty) covering a physical box."""
    corners = np.array(np.meshgrid(*zip(lo_mm, hi_mm), indexing="ij")).reshape(3, -1)
    d = np.asarray(geometry.direction).reshape(3, 3)
    ijk = np.linalg.solve(d, corners - np.asarray(geometry.origin_xyz)[:, None]) / np.asarray(geometry.spacing_xyz)[:, None]
    lo = np.floor(ijk.min(axis=1)).astype(int) - 1
    hi = np.ceil(ijk.max(axis=1)).astype(int) + 2
    size = np.asarray(geometry.size_xyz)
    lo, hi = np.clip(lo, 0, size), np.clip(hi, 0, size)
    hi = np.maximum(hi, lo)
    return tuple((int(lo[a]), int(hi[a])) for a in (2, 1, 0))


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


def generate_case(manifest: Manifest, case: Case, index: int, *, scale: str = "mini"
                  ) -> tuple[np.ndarray, np.ndarray, Geometry]:
    """(intensity image, native label image, geometry) of one synthetic case, deterministic per case id.

    `scale` picks the grid ("mini" or "full", see SCALES); the phantom and its random draws are the
    same at both scales, so a full-size case is the miniature's anatomy sampled finely.
    """
    profiles = _profiles(scale)
    rng = np.random.default_rng(zlib.crc32(f"{manifest.key}/{case.case_id}".encode()))
    geometry = case_grid(profiles[manifest.key], index, rng)
    labels, body = paint_boxes(lambda box: physical_points(geometry, box), geometry.shape_array,
                               lambda lo, hi: index_box(geometry, lo, hi), rng)
    look = appearance()
    modality = look[manifest.modality]
    value_lut = np.full(256, float(modality["body"]), dtype=np.float32)
    for organ in load_taxonomy().organs:
        value_lut[organ.id] = modality["organs"][organ.name]
    value_lut[AORTA] = modality["other"]["aorta"]
    intensities = value_lut[labels]
    intensities[~body] = modality["air"]
    if scale == "mini":
        noise = rng.integers(-look["noise"], look["noise"] + 1, size=labels.shape)
        intensities = intensities + noise
    else:  # same noise law in a small dtype and in place: full-size volumes hold ~50 M voxels
        intensities += rng.integers(-look["noise"], look["noise"] + 1, size=labels.shape, dtype=np.int8)
    image = intensities.astype(np.int16) if manifest.modality == "CT" else intensities.astype(np.float32)
    native = _native_lut(manifest)[labels]
    return image, native.astype(np.uint8), geometry


def _profiles(scale: str) -> dict[str, GridProfile]:
    if scale not in SCALES:
        raise HarnessError(f"unknown synthetic scale '{scale}' (choose from {', '.join(SCALES)})")
    return SCALES[scale]


_NUMBER = re.compile(r"\d+")


def full_case_list(manifest: Manifest, count: int) -> list[Case]:
    """`count` cases named like the source's: the miniature's own cases first, then more by number.

    Further cases take the next free numbers after the miniature's last case id, with the same
    zero-padding, in the id and both file paths (e.g. amos_0030 -> imagesVa/amos_0031.nii.gz).
    """
    if count < 1:
        raise HarnessError(f"--cases must be at least 1, got {count}")
    cases = list(manifest.cases[:count])
    last = manifest.cases[-1]
    digits = _NUMBER.findall(last.case_id)[-1]
    number = int(digits)
    while len(cases) < count:
        number += 1
        new = f"{number:0{len(digits)}d}"
        cases.append(Case(case_id=_NUMBER.sub(lambda m: new if m.group() == digits else m.group(), last.case_id),
                          image=last.image.replace(digits, new), label=last.label.replace(digits, new)))
    return cases


def _write_case(manifest: Manifest, case: Case, index: int, out_dir: Path, scale: str) -> None:
    image, labels, geometry = generate_case(manifest, case, index, scale=scale)
    write_image_atomic(image, geometry, out_dir / case.image)
    write_image_atomic(labels, geometry, out_dir / case.label)


def _write_manifest(manifest: Manifest, cases: list[Case], out_dir: Path) -> Path:
    """The data root's own manifest of a full-size set (`<out>/manifests/<key>.json`, like prepare's)."""
    document = read_json(manifest.path, "manifest")
    document["description"] = document.get("description", "").replace("Synthetic miniature", "Synthetic full-size", 1) \
        + " Full-size grid (`harness data synth --scale full`)."
    document["expected_case_count"] = len(cases)
    document["cases"] = [{"case_id": c.case_id, "image": c.image, "label": c.label,
                          "image_sha256": sha256_file(out_dir / c.image),
                          "label_sha256": sha256_file(out_dir / c.label)} for c in cases]
    path = out_dir / MANIFESTS_DIR / f"{manifest.key}.json"
    write_json_atomic(path, document, "manifest")
    return path


def synthesize(out_dir: Path, *, benchmark: str = "synthetic", keys: list[str] | None = None,
               force: bool = False, progress=None, scale: str = "mini", cases: int | None = None) -> list[Path]:
    """Write every synthetic case under `out_dir` (the data root); skips finished cases unless `force`.

    scale="mini" (default): the embedded miniature, cases as listed in the shipped `benchmark`.
    scale="full": each source's real grid (FULL_PROFILES), `cases` per test set (default: as many as
    the miniature lists), and the data root's own manifests in `<out_dir>/manifests/`, so that
    `harness run|evaluate --data-root <out_dir>` uses them without --benchmark. Returns the image
    and label paths written.
    """
    _profiles(scale)
    if scale == "mini" and cases is not None:
        raise HarnessError("--cases applies to --scale full only (the miniature's cases are fixed)")
    written: list[Path] = []
    for manifest in load_benchmark(benchmark, keys=keys):
        listed = list(manifest.cases) if scale == "mini" else full_case_list(manifest, cases or len(manifest.cases))
        for index, case in enumerate(listed):
            image_path, label_path = out_dir / case.image, out_dir / case.label
            if force or not (image_path.is_file() and label_path.is_file()):
                _write_case(manifest, case, index, out_dir, scale)
                written += [image_path, label_path]
            if progress:
                progress(manifest.key, case.case_id)
        if scale == "full":
            _write_manifest(manifest, listed, out_dir)
    return written
