"""The ground-truth tarball of the Grand-Challenge evaluation, and how job inputs map onto it.

Grand-Challenge hands the evaluation container each algorithm job with the *name* of its input
image (`inputs[].image.name`, the file name the organizer uploaded to the archive) and nothing else
about the case. Names alone cannot say which test set a case belongs to (TotalSegmentator CT and
MRI both name cases s0011; their files are all `ct.nii.gz` / `mri.nii.gz`), so the tarball carries
an explicit index:

    ground_truth/                      extracted by the platform to /opt/ml/input/data/ground_truth/
      ground_truth.json                the index below
      labels/<test set>/<case id>.nii.gz   label files in the test set's native ids (any readable format)

    ground_truth.json = {
      "schema_version": 1,
      "benchmark": "a-eval",
      "test_sets": {"flare22": {"dataset": "FLARE22", "modality": "CT", "gt_label_map": "flare22",
                                "expected_case_count": 50}, ...},
      "cases": [{"image_name": "<name uploaded to the archive>", "test_set": "flare22",
                 "case_id": "FLARETs_0001", "label": "labels/flare22/FLARETs_0001.nii.gz"}, ...]
    }

`gt_label_map` is a shipped label map name or a JSON file inside the tarball (a path ending in
.json). A job matches a case when one of its input image names equals `image_name`, or equals it up
to the image extension (the platform may store an upload converted to .mha). `build_ground_truth`
writes the tarball's folder and the images to upload from the harness's own manifests and data
root, naming the images with opaque, stable UUIDs so that algorithms cannot tell test sets apart.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import jsonschema

from harness.errors import GroundTruthError
from harness.imageio import image_suffix
from harness.jsonio import read_json, write_json_atomic
from harness.labelmap import LabelMapping, build_mapping, resolve_label_map, shipped_mapping
from harness.manifest import INPUT_SOCKETS, Case, Manifest, case_file
from harness.results import RANKED_METRICS

INDEX_NAME = "ground_truth.json"
#: Keys of metrics.json's `aggregates` that a test set key must not shadow.
RESERVED_KEYS = frozenset({*RANKED_METRICS, "ct", "mr", "all", "organs", "n_cases", "n_failed", "n_jobs",
                           "n_unmatched_jobs"})

INDEX_SCHEMA = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "title": "Ground-truth index of the A-Eval Grand-Challenge evaluation (ground_truth.json)",
    "type": "object",
    "required": ["schema_version", "benchmark", "test_sets", "cases"],
    "properties": {
        "schema_version": {"const": 1},
        "benchmark": {"type": "string", "minLength": 1},
        "test_sets": {
            "type": "object", "minProperties": 1,
            "propertyNames": {"pattern": "^[a-z0-9_]+$"},
            "additionalProperties": {
                "type": "object",
                "required": ["dataset", "modality", "gt_label_map"],
                "properties": {
                    "dataset": {"type": "string"},
                    "modality": {"enum": ["CT", "MR"]},
                    "gt_label_map": {"type": "string", "minLength": 1},
                    "expected_case_count": {"type": "integer", "minimum": 1},
                },
                "additionalProperties": False,
            },
        },
        "cases": {
            "type": "array", "minItems": 1,
            "items": {
                "type": "object",
                "required": ["image_name", "test_set", "case_id", "label"],
                "properties": {
                    "image_name": {"type": "string", "minLength": 1, "pattern": "^[^/\\\\]+$"},
                    "test_set": {"type": "string"},
                    "case_id": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                    "label": {"type": "string", "pattern": "^(?!/)(?!.*(^|/)\\.\\.(/|$)).+$"},
                },
                "additionalProperties": False,
            },
        },
    },
    "additionalProperties": False,
}


@dataclass(frozen=True)
class GroundTruthCase:
    image_name: str
    test_set: str
    case_id: str
    label: Path


@dataclass(frozen=True)
class GroundTruth:
    """A loaded, checked ground-truth folder: test sets as manifests, cases, and their label mappings."""

    root: Path
    benchmark: str
    manifests: tuple[Manifest, ...]
    mappings: dict[str, LabelMapping]
    cases: tuple[GroundTruthCase, ...]

    @functools.cached_property
    def _ref_key(self) -> bytes:
        return hashlib.sha256((self.root / INDEX_NAME).read_bytes()).digest()

    def case_ref(self, case: GroundTruthCase) -> str:
        """An opaque reference to a case, published in metrics.json instead of its test set and id.

        It is a keyed hash (HMAC-SHA256) of "<test set>/<case id>" whose key is the digest of this
        ground truth's index: whoever holds the ground truth (the organizer) maps a reference back to
        its case (`harness leaderboard --gc-ground-truth`); a participant who sees metrics.json learns
        the score of each of its jobs but not which test set or case a job's input image was.
        """
        identity = f"{case.test_set}/{case.case_id}".encode("utf-8")
        return hmac.new(self._ref_key, identity, hashlib.sha256).hexdigest()[:32]

    def cases_by_ref(self) -> dict[str, GroundTruthCase]:
        return {self.case_ref(c): c for c in self.cases}

    def match(self, names: list[str]) -> list[GroundTruthCase]:
        """The cases whose image name is one of `names` (exactly, else up to the image extension)."""
        exact = {c.image_name: c for c in self.cases}
        found = [exact[n] for n in names if n in exact]
        if found:
            return found
        stems = {image_stem(c.image_name): c for c in self.cases}
        return [stems[image_stem(n)] for n in names if image_stem(n) in stems]


def image_stem(name: str) -> str:
    """The name without its image extension: `x.nii.gz`, `x.mha` and `x.tif` all give `x`."""
    suffix = image_suffix(name)
    return name[: -len(suffix)] if suffix else name


def _label_mapping(spec: str, root: Path) -> LabelMapping:
    if spec.endswith(".json"):
        return build_mapping(resolve_label_map(str(case_file(root, spec))))
    return shipped_mapping(spec)


def load_ground_truth(root: Path, *, benchmark: str | None = None) -> GroundTruth:
    """Read and check `root/ground_truth.json`; every problem is a GroundTruthError naming what to fix."""
    root = Path(root).resolve()
    index_path = root / INDEX_NAME
    if not index_path.is_file():
        raise GroundTruthError(f"no {INDEX_NAME} in the ground truth folder {root}: the ground-truth tarball must hold "
                               "the index (see containers/evaluation/README.md, or build it with "
                               "`harness gc-ground-truth`)")
    document = read_json(index_path)
    errors = sorted(jsonschema.Draft202012Validator(INDEX_SCHEMA).iter_errors(document), key=lambda e: e.path)
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(top level)"
        raise GroundTruthError(f"{index_path}: invalid at '{where}': {errors[0].message}")
    if benchmark is not None and document["benchmark"] != benchmark:
        raise GroundTruthError(f"{index_path} is the ground truth of benchmark {document['benchmark']!r}, "
                               f"not {benchmark!r}")
    reserved = sorted(set(document["test_sets"]) & RESERVED_KEYS)
    if reserved:
        raise GroundTruthError(f"{index_path}: test set key(s) {', '.join(reserved)} would collide with metrics.json "
                               "aggregate names: rename them")
    cases, problems = [], []
    seen_names: dict[str, str] = {}
    seen_ids: set[tuple[str, str]] = set()
    for entry in document["cases"]:
        key, case_id = entry["test_set"], entry["case_id"]
        where = f"case {key}/{case_id}"
        if key not in document["test_sets"]:
            problems.append(f"{where}: test set {key!r} is not declared in test_sets")
            continue
        if (key, case_id) in seen_ids:
            problems.append(f"{where}: listed twice")
        seen_ids.add((key, case_id))
        for name in {entry["image_name"], image_stem(entry["image_name"])}:
            if name in seen_names and seen_names[name] != where:
                problems.append(f"{where}: image name {entry['image_name']!r} is also {seen_names[name]}'s: "
                                "image names must be unique, extension aside")
            seen_names[name] = where
        label = case_file(root, entry["label"])
        if not label.is_file():
            problems.append(f"{where}: label file {entry['label']} is missing")
        cases.append(GroundTruthCase(image_name=entry["image_name"], test_set=key, case_id=case_id, label=label))
    manifests, mappings = [], {}
    for key, spec in document["test_sets"].items():
        listed = tuple(Case(case_id=c.case_id, image=c.image_name, label=str(c.label.relative_to(root)))
                       for c in cases if c.test_set == key)
        expected = spec.get("expected_case_count", len(listed))
        if len(listed) != expected:
            problems.append(f"test set {key}: {len(listed)} cases listed, expected_case_count is {expected}")
        if not listed:
            problems.append(f"test set {key}: no cases")
        mappings[key] = _label_mapping(spec["gt_label_map"], root)
        manifests.append(Manifest(key=key, dataset=spec["dataset"], modality=spec["modality"],
                                  source_label_map=spec["gt_label_map"], gt_label_map=spec["gt_label_map"],
                                  expected_case_count=expected, input_socket=INPUT_SOCKETS[spec["modality"]],
                                  cases=listed, path=index_path))
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise GroundTruthError(f"{index_path}: {shown}")
    manifests.sort(key=lambda m: m.modality != "CT")  # CT test sets first, as in the paper's tables
    return GroundTruth(root=root, benchmark=document["benchmark"], manifests=tuple(manifests), mappings=mappings,
                       cases=tuple(cases))


def opaque_image_name(*, benchmark: str, test_set: str, case_id: str, suffix: str) -> str:
    """A stable name that reveals nothing about the case (as `harness run` names its GC inputs)."""
    return f"{uuid.uuid5(uuid.NAMESPACE_URL, f'a-eval:{benchmark}/{test_set}/{case_id}')}{suffix}"


def build_ground_truth(*, manifests: list[Manifest], data_root: Path, benchmark: str, out: Path) -> dict:
    """Write `out/ground_truth/` (the tarball's content) and `out/archive_images/` (to upload).

    Labels are copied as they are (native ids; the index names each test set's label map), images
    are copied under their opaque upload names. Returns the index document.
    """
    gt_dir, upload_dir = Path(out) / "ground_truth", Path(out) / "archive_images"
    index = {"schema_version": 1, "benchmark": benchmark, "test_sets": {}, "cases": []}
    for manifest in manifests:
        manifest.check_complete()
        index["test_sets"][manifest.key] = {"dataset": manifest.dataset, "modality": manifest.modality,
                                            "gt_label_map": manifest.gt_label_map,
                                            "expected_case_count": manifest.expected_case_count}
        for case in manifest.cases:
            image, label = case_file(data_root, case.image), case_file(data_root, case.label)
            name = opaque_image_name(benchmark=benchmark, test_set=manifest.key, case_id=case.case_id,
                                     suffix=image_suffix(image) or image.suffix)
            label_rel = f"labels/{manifest.key}/{case.case_id}{image_suffix(label) or label.suffix}"
            for source, target in ((image, upload_dir / name), (label, gt_dir / label_rel)):
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(source, target)
            index["cases"].append({"image_name": name, "test_set": manifest.key, "case_id": case.case_id,
                                   "label": label_rel})
    write_json_atomic(gt_dir / INDEX_NAME, index)
    load_ground_truth(gt_dir, benchmark=benchmark)  # what we wrote must load
    return index
