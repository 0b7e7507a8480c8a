"""Tiny stand-ins for the seven downloads, laid out and labelled as each dataset publishes itself.

Every case is a 16x16x12 grid (4 x 4 x 5 mm) holding ten box-shaped organs placed in the PATIENT's
frame (LPS mm relative to the patient's centre), so the same anatomy can be stored in any
orientation or position and the expected ground truth is known exactly. Box edges fall between
voxel centres, so no voxel is ambiguous. Where boxes overlap (liver and gallbladder) the smaller
box wins, as the TotalSegmentator merge rule does, so one expected volume serves every source.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np

from harness.data.synth import physical_points
from harness.imageio import Geometry, write_image
from harness.labelmap import load_shipped_label_map, shipped_mapping

SIZE = (16, 16, 12)
SPACING = (4.0, 4.0, 5.0)

#: organ -> ((x0, x1), (y0, y1), (z0, z1)) in mm, LPS, relative to the patient's centre; x+ = patient LEFT.
ORGANS: dict[str, tuple[tuple[float, float], ...]] = {
    "liver": ((-32, -8), (-20, 4), (-5, 20)),
    "spleen": ((16, 32), (0, 16), (0, 15)),
    "kidney_right": ((-28, -16), (8, 24), (-25, -5)),
    "kidney_left": ((16, 28), (8, 24), (-25, -5)),
    "gallbladder": ((-16, -4), (-20, -8), (-10, 5)),  # overlaps the liver: the smaller box wins
    "stomach": ((0, 16), (-20, -4), (0, 20)),
    "pancreas": ((-4, 12), (-4, 4), (-15, -5)),
    "adrenal_gland_right": ((-16, -8), (8, 16), (-5, 5)),
    "adrenal_gland_left": ((8, 16), (8, 16), (-5, 5)),
    "esophagus": ((-4, 4), (4, 12), (10, 30)),
}
#: a structure that is not a benchmark organ (must become background), away from every organ
EXTRA_BOX = ((-4, 4), (12, 20), (-25, 5))

DIRECTIONS = {
    "lps": np.eye(3),
    "ras": np.diag([-1.0, -1.0, 1.0]),  # how most NIfTI files look through ITK: left-right flipped in array order
}


def grid(orientation: str = "lps", centre=(0.0, 0.0, 0.0)) -> Geometry:
    direction = DIRECTIONS[orientation]
    half = direction @ (np.array(SPACING) * (np.array(SIZE) - 1) / 2)
    origin = np.asarray(centre, dtype=float) - half
    return Geometry(size_xyz=SIZE, spacing_xyz=SPACING, origin_xyz=tuple(float(o) for o in origin),
                    direction=tuple(float(d) for d in direction.ravel()))


def centre_of(geometry: Geometry) -> np.ndarray:
    direction = np.asarray(geometry.direction).reshape(3, 3)
    return np.asarray(geometry.origin_xyz) + direction @ (np.array(geometry.spacing_xyz) * (np.array(SIZE) - 1) / 2)


def _box_mask(geometry: Geometry, box) -> np.ndarray:
    x, y, z = physical_points(geometry)
    cx, cy, cz = centre_of(geometry)
    (x0, x1), (y0, y1), (z0, z1) = box
    return ((x - cx >= x0) & (x - cx < x1)) & ((y - cy >= y0) & (y - cy < y1)) & ((z - cz >= z0) & (z - cz < z1))


def organ_mask(geometry: Geometry, organ: str) -> np.ndarray:
    return _box_mask(geometry, ORGANS[organ])


def _volume(box) -> float:
    return float(np.prod([hi - lo for lo, hi in box]))


def paint(geometry: Geometry, ids: dict[str, int], *, extra_id: int | None = None,
          omit: tuple[str, ...] = ()) -> np.ndarray:
    """Organ ids painted largest box first (smaller wins overlaps); `extra_id` paints the non-organ box."""
    out = np.zeros(geometry.shape_array, dtype=np.uint8)
    for organ in sorted(ORGANS, key=lambda o: -_volume(ORGANS[o])):
        if organ not in omit:
            out[organ_mask(geometry, organ)] = ids[organ]
    if extra_id is not None:
        out[_box_mask(geometry, EXTRA_BOX)] = extra_id
    return out


def benchmark_ids() -> dict[str, int]:
    return {name: i for i, name in load_shipped_label_map("a-eval").labels.items()}


def expected_labels(geometry: Geometry, *, omit: tuple[str, ...] = ()) -> np.ndarray:
    return paint(geometry, benchmark_ids(), omit=omit)


def native_ids(map_name: str) -> dict[str, int]:
    """Organ name -> the source's native id, from the shipped label map."""
    organs = {i: name for name, i in benchmark_ids().items()}
    return {organs[b]: native for native, b in shipped_mapping(map_name).native_to_benchmark.items()}


def id_of(map_name: str, structure: str) -> int:
    return next(i for i, name in load_shipped_label_map(map_name).labels.items() if name == structure)


def image(geometry: Geometry, modality: str = "CT") -> np.ndarray:
    """Something image-like and case-specific: a ramp (its bytes must reach the data root unchanged)."""
    ramp = np.arange(np.prod(geometry.shape_array)).reshape(geometry.shape_array) % 97
    return ramp.astype(np.int16) if modality == "CT" else (ramp * 3.5).astype(np.float32)


def write(path: Path, array: np.ndarray, geometry: Geometry) -> Path:
    write_image(array, geometry, path)
    return path


#: How far the sheared fixtures' sform is from orthonormal (fraction of a voxel edge): enough for ITK to
#: refuse the file (it tolerates about 1e-5), small like TotalSegmentator's real headers.
SHEAR = 1e-3
RAS_FROM_LPS = np.diag([-1.0, -1.0, 1.0])


def sheared_affine(geometry: Geometry, shear: float = SHEAR) -> np.ndarray:
    """The NIfTI (RAS) sform of `geometry`, with its axes tilted by `shear`: no longer orthonormal."""
    columns = np.asarray(geometry.direction).reshape(3, 3) * np.asarray(geometry.spacing_xyz)
    affine = np.eye(4)
    affine[:3, :3] = RAS_FROM_LPS @ columns
    affine[:3, 3] = RAS_FROM_LPS @ np.asarray(geometry.origin_xyz)
    affine[0, 2] += shear * geometry.spacing_xyz[2]  # the z axis leans towards x
    affine[1, 0] += shear * geometry.spacing_xyz[0]  # the x axis leans towards y
    return affine


def write_sheared(path: Path, array: np.ndarray, geometry: Geometry, shear: float = SHEAR) -> Path:
    """A NIfTI as TotalSegmentator's unreadable subjects are: a slightly non-orthonormal sform, qform_code 0.

    Written with nibabel (SimpleITK cannot write such a header); `array` is in (z, y, x) order.
    """
    import nibabel as nib

    affine = sheared_affine(geometry, shear)
    image = nib.Nifti1Image(np.ascontiguousarray(array.transpose(2, 1, 0)), affine)
    image.header.set_zooms(geometry.spacing_xyz)
    image.set_sform(affine, code=1)  # NIFTI_XFORM_SCANNER_ANAT
    image.set_qform(None, code=0)  # no qform to fall back on
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(image, str(path))
    return path


# ---------------------------------------------------------------- the downloads


def make_flare22(root: Path, numbers=(1, 2, 3), *, testing=(), labels_at: Path | None = None) -> Path:
    """FLARE22 release: Validation/FLARETs_<n>_0000.nii.gz, labels in their own folder (or at `labels_at`);
    training distractors; `testing` numbers: the challenge's unlabelled Testing/ images (same prefix)."""
    geometry = grid("ras")
    labels = labels_at or root / "Validation-Public-Labels"
    for n in numbers:
        write(root / "Validation" / f"FLARETs_{n:04d}_0000.nii.gz", image(geometry), geometry)
        write(labels / f"FLARETs_{n:04d}.nii.gz",
              paint(geometry, native_ids("flare22"), extra_id=id_of("flare22", "aorta")), geometry)
    for n in testing:
        write(root / "Testing" / f"FLARETs_{n:04d}_0000.nii.gz", image(geometry), geometry)
    labelled = root / "Training" / "FLARE22_LabeledCase50"
    write(labelled / "images" / "FLARE22_Tr_0001_0000.nii.gz", image(geometry), geometry)
    write(labelled / "labels" / "FLARE22_Tr_0001.nii.gz", paint(geometry, native_ids("flare22")), geometry)
    return root


def make_amos(root: Path, ct=(8, 13), mr=(507, 510)) -> Path:
    """amos22/: CT and MR validation scans mixed in imagesVa/labelsVa, training scans beside them."""
    base = root / "amos22"
    geometry = grid("ras")
    for number in (*ct, *mr):
        modality = "MR" if number >= 500 else "CT"
        write(base / "imagesVa" / f"amos_{number:04d}.nii.gz", image(geometry, modality), geometry)
        write(base / "labelsVa" / f"amos_{number:04d}.nii.gz",
              paint(geometry, native_ids("amos"), extra_id=id_of("amos", "aorta")), geometry)
    write(base / "imagesTr" / "amos_0001.nii.gz", image(geometry), geometry)
    write(base / "labelsTr" / "amos_0001.nii.gz", paint(geometry, native_ids("amos")), geometry)
    (base / "dataset.json").write_text('{"name": "AMOS", "numTraining": 1}\n')
    return root


def word_native(geometry: Geometry, *, omit: tuple[str, ...] = ()) -> np.ndarray:
    """WORD labels as published: both adrenals share id 12."""
    ids = native_ids("word_split")
    ids["adrenal_gland_right"] = ids["adrenal_gland_left"] = id_of("word", "adrenal")
    return paint(geometry, ids, extra_id=id_of("word", "duodenum"), omit=omit)


def make_word(root: Path, cases: dict[int, Geometry], *, labels_at: Path | None = None) -> Path:
    """WORD-V0.1.0/: imagesTs (the test set) beside imagesTr/labelsTr; the test labels (their own archive,
    WORD_V0.1.0_labelsTs.zip -> labelsTs/) unpacked inside WORD-V0.1.0/, or at `labels_at` if given."""
    base = root / "WORD-V0.1.0"
    labels = labels_at or base / "labelsTs"
    for number, geometry in cases.items():
        write(base / "imagesTs" / f"word_{number:04d}.nii.gz", image(geometry), geometry)
        write(labels / f"word_{number:04d}.nii.gz", word_native(geometry), geometry)
    train = grid("lps")
    write(base / "imagesTr" / "word_0100.nii.gz", image(train), train)
    write(base / "labelsTr" / "word_0100.nii.gz", word_native(train), train)
    return root


def make_totalseg(root: Path, splits: dict[str, str], *, modality: str = "CT",
                  missing: dict[str, tuple[str, ...]] | None = None, sheared: tuple[str, ...] = (),
                  shear: float = SHEAR) -> Path:
    """Totalsegmentator_dataset_v201/ (or the MRI one): meta.csv (';', UTF-8 BOM) and s<nnnn>/segmentations/*.nii.gz.

    Subjects in `sheared` have every file (image and structure files) written with the same slightly
    non-orthonormal sform and no qform, as the real release's unreadable subjects.
    """
    base = root / ("Totalsegmentator_dataset_v201" if modality == "CT" else "TotalsegmentatorMRI_dataset_v100")
    rows = ["image_id;age;gender;institute;study_type;split"]
    geometry = grid("ras")
    for subject, split in splits.items():
        rows.append(f"{subject};63;m;A;ct abdomen;{split}")
        put = (lambda p, a, g: write_sheared(p, a, g, shear)) if subject in sheared else write
        put(base / subject / ("ct.nii.gz" if modality == "CT" else "mri.nii.gz"), image(geometry, modality), geometry)
        for organ in ORGANS:
            if organ not in (missing or {}).get(subject, ()):
                put(base / subject / "segmentations" / f"{organ}.nii.gz",
                    organ_mask(geometry, organ).astype(np.uint8), geometry)
        for other in ("aorta", "urinary_bladder"):
            put(base / subject / "segmentations" / f"{other}.nii.gz",
                _box_mask(geometry, EXTRA_BOX).astype(np.uint8), geometry)
    base.mkdir(parents=True, exist_ok=True)
    (base / "meta.csv").write_text("\n".join(rows) + "\n", encoding="utf-8-sig")
    return root


def make_btcv(root: Path, numbers=(1, 2, 3)) -> Path:
    """Abdomen/RawData/Training/img/img<n>.nii.gz with label/label<n>.nii.gz; Testing/ has no labels."""
    base = root / "Abdomen" / "RawData"
    geometry = grid("lps")
    for n in numbers:
        write(base / "Training" / "img" / f"img{n:04d}.nii.gz", image(geometry), geometry)
        write(base / "Training" / "label" / f"label{n:04d}.nii.gz",
              paint(geometry, native_ids("btcv"), extra_id=id_of("btcv", "aorta")), geometry)
    write(base / "Testing" / "img" / "img0061.nii.gz", image(geometry), geometry)
    return root


def tree_digest(root: Path) -> dict[str, tuple]:
    """Every file and folder under `root` with content hash, size and modification time."""
    state: dict[str, tuple] = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs:
            state[os.path.relpath(os.path.join(folder, name), root) + "/"] = ()
        for name in files:
            path = Path(folder, name)
            stat = path.stat()
            state[str(path.relative_to(root))] = (hashlib.sha256(path.read_bytes()).hexdigest(), stat.st_size,
                                                   stat.st_mtime_ns, stat.st_mode)
    return state
