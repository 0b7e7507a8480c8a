"""`harness data verify`: is the data root exactly what its manifests say, before anyone scores against it?

Checked per test set: the manifest loads, its case count equals its expected_case_count. Per case:
both files exist under the data root, their sha256 equals the manifest's (a null sha256, as in the
synthetic benchmark, means "not checked"), both are 3-D scalar images, the label lies on the image's
grid (same size, spacing, origin, direction), and every label value is declared by the manifest's
gt_label_map (0..10 for prepared sets). A header with non-orthonormal direction cosines is read (the
image-reading layer's fallback) but reported: prepare writes orthonormal headers, so participant
containers never see such a file. Each problem is one line naming the test set, the case and
the file, so a corrupted download or a hand-edited label is found before a leaderboard is wrong.
Manifests are read fresh (not from the loader's cache): verify usually runs right after prepare.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import SimpleITK as sitk

from harness.errors import HarnessError, ManifestError
from harness.imageio import Geometry, read_header_approximating, read_image_approximating
from harness.manifest import CANONICAL_ORDER, Case, Manifest, benchmark_dir, case_file, load_manifest_file, sha256_file


@dataclass(frozen=True)
class Problem:
    key: str
    message: str
    case_id: str | None = None
    path: str | None = None

    def line(self) -> str:
        where = self.key + (f" {self.case_id}" if self.case_id else "") + (f" {self.path}" if self.path else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class SetSummary:
    key: str
    cases: int
    expected: int
    problems: int
    checksums: int  # files whose sha256 was checked


@dataclass
class VerifyReport:
    problems: list[Problem] = field(default_factory=list)
    summaries: list[SetSummary] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def load_manifests(benchmark: str, keys: list[str] | None = None) -> tuple[list[Manifest], list[Problem]]:
    """The benchmark's manifests read fresh; an invalid manifest is a problem, an unknown key an error."""
    folder = benchmark_dir(benchmark)
    available = {p.stem: p for p in folder.glob("*.json")}
    if not available:
        raise ManifestError(f"{folder}: no manifest files (prepare a test set first, or pass --benchmark)")
    unknown = [k for k in keys or [] if k not in available]
    if unknown:
        raise HarnessError(f"unknown test set(s) {', '.join(unknown)} in {folder} "
                           f"(available: {', '.join(sorted(available, key=_order))})")
    manifests, problems = [], []
    for key in keys or sorted(available, key=_order):
        try:
            manifests.append(load_manifest_file.__wrapped__(available[key]))
        except ManifestError as error:
            problems.append(Problem(key, f"invalid manifest: {error}"))
    return manifests, problems


def _order(key: str) -> tuple[int, str]:
    return (CANONICAL_ORDER.index(key) if key in CANONICAL_ORDER else len(CANONICAL_ORDER), key)


def verify(benchmark: str, data_root: Path, *, keys: list[str] | None = None,
           progress: Callable[[str, str], None] | None = None) -> VerifyReport:
    manifests, problems = load_manifests(benchmark, keys)
    report = VerifyReport(problems=list(problems))
    for manifest in manifests:
        found = verify_manifest(manifest, data_root, progress=progress)
        report.problems += found
        checked = sum((c.image_sha256 is not None) + (c.label_sha256 is not None) for c in manifest.cases)
        report.summaries.append(SetSummary(manifest.key, len(manifest.cases), manifest.expected_case_count,
                                           len(found), checked))
    return report


def verify_manifest(manifest: Manifest, data_root: Path, *,
                    progress: Callable[[str, str], None] | None = None) -> list[Problem]:
    problems: list[Problem] = []
    if not manifest.cases:
        problems.append(Problem(manifest.key, f"{manifest.path} lists no cases: prepare it with `harness data "
                                              f"prepare {manifest.key} --source DIR --data-root R`"))
    elif len(manifest.cases) != manifest.expected_case_count:
        problems.append(Problem(manifest.key, f"{len(manifest.cases)} cases listed in {manifest.path}, "
                                              f"{manifest.expected_case_count} expected"))
    allowed = frozenset(manifest.gt_mapping.label_map.labels) | {0}
    for case in manifest.cases:
        problems += verify_case(manifest, case, data_root, allowed=allowed)
        if progress:
            progress(manifest.key, case.case_id)
    return problems


def verify_case(manifest: Manifest, case: Case, data_root: Path, *, allowed: frozenset[int]) -> list[Problem]:
    """Every problem of one case (files, checksums, readability, grid, label values)."""
    problems: list[Problem] = []

    def problem(message: str, relative: str | None) -> None:
        problems.append(Problem(manifest.key, message, case.case_id, relative))

    paths: dict[str, Path] = {}
    for role, relative, digest in (("image", case.image, case.image_sha256), ("label", case.label, case.label_sha256)):
        try:
            path = case_file(data_root, relative)
        except ManifestError as error:
            problem(str(error), relative)
            continue
        if not path.is_file():
            problem(f"{role} file missing under {data_root}", relative)
            continue
        if digest is not None and (actual := sha256_file(path)) != digest:
            problem(f"{role} sha256 {actual[:12]}... differs from the manifest's {digest[:12]}...: the file changed "
                    "since it was prepared (prepare it again with --force)", relative)
        paths[role] = path
    if len(paths) < 2:
        return problems
    image_grid = _header_geometry(paths["image"], lambda m: problem(m, case.image))
    label = _read(paths["label"], lambda m: problem(m, case.label))
    if image_grid is None or label is None:
        return problems
    if differences := image_grid.differences(Geometry.of(label)):
        problem("label is not on the image's grid: " + "; ".join(differences), case.label)
    problems += [Problem(manifest.key, m, case.case_id, case.label)
                 for m in _label_value_problems(sitk.GetArrayViewFromImage(label), allowed, manifest.gt_label_map)]
    return problems


def _header_geometry(path: Path, report: Callable[[str], None]) -> Geometry | None:
    try:
        info = read_header_approximating(path)
    except RuntimeError as error:
        report(f"unreadable image: {_reason(error)}")
        return None
    if info.dimension != 3 or info.components != 1:
        report(f"image is {info.dimension}-D with {info.components} components; expected 3-D")
        return None
    if info.approximation is not None:
        report(f"image header has non-orthonormal direction cosines ({info.approximation.describe()}): a prepared "
               "image carries an orthonormal header, so this file is not the one prepare wrote (prepare it again)")
    return info.geometry


def _read(path: Path, report: Callable[[str], None]) -> sitk.Image | None:
    try:
        image, approximation = read_image_approximating(path)
    except RuntimeError as error:
        report(f"unreadable label: {_reason(error)}")
        return None
    if image.GetDimension() != 3 or image.GetNumberOfComponentsPerPixel() != 1:
        report(f"label is {image.GetDimension()}-D with {image.GetNumberOfComponentsPerPixel()} components; "
               "expected 3-D")
        return None
    if approximation is not None:
        report(f"label header has non-orthonormal direction cosines ({approximation.describe()}); prepare writes "
               "orthonormal headers (prepare it again)")
    return image


def _reason(error: Exception) -> str:
    text = str(error).strip()
    return text.splitlines()[-1] if text else "unknown reader error"


def _label_value_problems(array: np.ndarray, allowed: frozenset[int], map_name: str) -> list[str]:
    if not np.issubdtype(array.dtype, np.integer):
        return [f"label voxels are {array.dtype}; a label image must hold integers"]
    if array.size == 0:
        return []
    low, high = int(array.min()), int(array.max())
    if low >= 0 and high < 1 << 16:
        counts = np.bincount(array.reshape(-1), minlength=high + 1)
        present = {int(v): int(counts[v]) for v in np.flatnonzero(counts)}
    else:
        values, counts = np.unique(array, return_counts=True)
        present = {int(v): int(n) for v, n in zip(values, counts)}
    outside = {v: n for v, n in present.items() if v not in allowed}
    if not outside:
        return []
    shown = ", ".join(f"{v} ({n} voxels)" for v, n in sorted(outside.items())[:10])
    return [f"label values outside gt_label_map '{map_name}' ({_describe(allowed)}): {shown}"]


def _describe(values: frozenset[int]) -> str:
    ordered = sorted(values)
    if ordered == list(range(ordered[0], ordered[-1] + 1)):
        return f"{ordered[0]}..{ordered[-1]}"
    return ", ".join(str(v) for v in ordered)
