"""The label-mapping layer: an image's own label ids -> the benchmark's ten organ ids.

A segmentation model writes whatever ids its training set used (FLARE22's liver is 1, AMOS's is 6,
STU-Net's TotalSegmentator checkpoints write 40). Scoring such output against the benchmark's ids
without translating it silently produces garbage. This layer makes the translation explicit and
checked: every image declares a label map (id -> organ name), names are matched to the taxonomy
through a curated synonym table, and the conversion is one lookup-table pass over the volume.

Rules (each violation is a clear error naming the map and the id):
- two ids claiming the same benchmark organ: error (a map must be a function onto organs);
- a name that refers to organs ambiguously (one "adrenal" for both sides): error with a hint;
- a map that names no benchmark organ at all: error (almost certainly the wrong map);
- names outside the taxonomy (aorta, duodenum, ...) map to background and are reported once;
- ids present in an image but absent from its map: the case fails (see `apply`).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from harness.errors import CaseFailed, FailureKind, LabelMapError
from harness.jsonio import read_json, validate
from harness.taxonomy import Taxonomy, load_taxonomy

#: Marks ids that the label map does not declare; never a valid benchmark id.
UNDECLARED = 255
#: Caps on a label map, which may come from an image (untrusted metadata): its size as JSON, and the
#: number of ids it lists (TotalSegmentator's largest maps list ~120; whole-body models a few hundred).
MAX_LABEL_MAP_BYTES = 1024 * 1024
MAX_LABEL_MAP_IDS = 4096


@dataclass(frozen=True)
class LabelMap:
    """What each integer id of a label image means. `labels` excludes background (0)."""

    name: str
    labels: dict[int, str]
    description: str = ""

    @classmethod
    def from_document(cls, document: dict, *, where: str) -> "LabelMap":
        """Check a parsed label map: its id count first (cheap), then its schema, stopping at the first error."""
        labels = document.get("labels") if isinstance(document, dict) else None
        if isinstance(labels, dict) and len(labels) > MAX_LABEL_MAP_IDS:
            raise LabelMapError(f"{where}: the label map lists {len(labels)} ids; at most {MAX_LABEL_MAP_IDS} "
                                "are accepted")
        validate(document, "label_map", where=where, first_only=True)
        return cls(name=document["name"], labels={int(k): v for k, v in document["labels"].items()},
                   description=document.get("description", ""))

    def to_document(self) -> dict:
        return {"name": self.name, "description": self.description,
                "labels": {str(k): v for k, v in sorted(self.labels.items())}}


def shipped_label_map_names() -> list[str]:
    folder = resources.files("ground_truth_manifests").joinpath("label_maps")
    return sorted(p.name.removesuffix(".json") for p in folder.iterdir() if p.name.endswith(".json"))


@functools.cache
def load_shipped_label_map(name: str) -> LabelMap:
    """A label map shipped in ground_truth_manifests/label_maps/ (e.g. "flare22", "stunet_totalseg_v1")."""
    path = resources.files("ground_truth_manifests").joinpath("label_maps", f"{name}.json")
    if not path.is_file():
        raise LabelMapError(f"no shipped label map named '{name}' (shipped: {', '.join(shipped_label_map_names())})")
    return LabelMap.from_document(read_json(path), where=str(path))


def resolve_label_map(spec: str) -> LabelMap:
    """A label map from a shipped name, a JSON file path, or an inline JSON document (as in image labels)."""
    spec = spec.strip()
    if not spec:
        raise LabelMapError("empty label map: give a shipped name, a JSON file or an inline JSON document")
    if len(spec.encode()) > MAX_LABEL_MAP_BYTES:
        raise LabelMapError(f"label map of {len(spec.encode())} bytes; at most {MAX_LABEL_MAP_BYTES} are accepted")
    if spec.startswith("{"):
        try:
            document = json.loads(spec)
        except json.JSONDecodeError as exc:
            raise LabelMapError(f"inline label map is not valid JSON: {exc}") from exc
        return LabelMap.from_document(document, where="inline label map")
    path = Path(spec)
    if path.suffix == ".json" or path.exists():
        if not path.is_file():
            raise LabelMapError(f"label map file {path} does not exist")
        if path.stat().st_size > MAX_LABEL_MAP_BYTES:
            raise LabelMapError(f"label map file {path} is {path.stat().st_size} bytes; at most "
                                f"{MAX_LABEL_MAP_BYTES} are accepted")
        return LabelMap.from_document(read_json(path), where=str(path))
    return load_shipped_label_map(spec)


@dataclass(frozen=True)
class LabelMapping:
    """A label map resolved against the taxonomy: a lookup table from native ids to benchmark ids."""

    label_map: LabelMap
    lut: np.ndarray  # uint8, index = native id, value = benchmark id, 0 background, UNDECLARED unknown
    native_to_benchmark: dict[int, int]
    unmapped_names: dict[int, str] = field(default_factory=dict)

    def notes(self) -> list[str]:
        """One line reporting the names that count as background (said once per map, not per case)."""
        if not self.unmapped_names:
            return []
        listed = ", ".join(f"{i} {n}" for i, n in sorted(self.unmapped_names.items()))
        return [f"label map '{self.label_map.name}': not benchmark organs, scored as background: {listed}"]

    def apply(self, volume: np.ndarray, *, case_id: str = "?", source: str = "label image") -> np.ndarray:
        """Convert a native label volume to benchmark ids in one lookup-table pass.

        Raises CaseFailed (kind non_integer_labels / negative_labels / unknown_labels) naming the case,
        the file and the offending values.
        """
        if not np.issubdtype(volume.dtype, np.integer):
            raise CaseFailed(FailureKind.NON_INTEGER_LABELS,
                             f"case {case_id}: {source} has {volume.dtype} voxels; a label image must hold integers")
        if volume.size == 0:
            return volume.astype(np.uint8)
        from harness import label_lookup  # compiled kernels: only a process that maps volumes loads them
        if volume.dtype.isnative:
            mapped = np.empty(volume.shape, np.uint8)  # numpy's allocation: huge pages, a fraction of the faults
            if volume.dtype == np.uint8 and volume.flags.c_contiguous:
                clean = label_lookup.lookup_bytes(volume.reshape(-1), self._byte_lut, UNDECLARED, mapped.reshape(-1))
            else:
                clean = label_lookup.lookup(volume.reshape(-1), self.lut, UNDECLARED, mapped.reshape(-1))
            if clean:
                return mapped
        # something is wrong (or the byte order is foreign): find out what, and say it
        low, high = int(volume.min()), int(volume.max())
        if low < 0:
            raise CaseFailed(FailureKind.NEGATIVE_LABELS, f"case {case_id}: {source} holds negative label {low}")
        if high >= len(self.lut):
            values = np.unique(volume[volume >= len(self.lut)])
            raise CaseFailed(FailureKind.UNKNOWN_LABELS, _unknown_message(case_id, source, values, self.label_map))
        mapped = self.lut[volume]
        if self._has_undeclared and (bad := mapped == UNDECLARED).any():
            raise CaseFailed(FailureKind.UNKNOWN_LABELS, _unknown_message(case_id, source, np.unique(volume[bad]),
                                                                self.label_map))
        return mapped

    @functools.cached_property
    def _has_undeclared(self) -> bool:
        return bool((self.lut == UNDECLARED).any())

    @functools.cached_property
    def _byte_lut(self) -> np.ndarray:
        """The table for every byte value (ids past the map's largest are undeclared)."""
        table = np.full(256, UNDECLARED, dtype=np.uint8)
        table[:min(256, len(self.lut))] = self.lut[:256]
        return table


def _unknown_message(case_id: str, source: str, values: np.ndarray, label_map: LabelMap) -> str:
    shown = ", ".join(str(int(v)) for v in values[:10]) + (" ..." if len(values) > 10 else "")
    return (f"case {case_id}: {source} holds label ids not declared by label map '{label_map.name}': {shown} "
            f"(declared: 0 and {min(label_map.labels)}..{max(label_map.labels)} as listed in the map)")


def build_mapping(label_map: LabelMap, taxonomy: Taxonomy | None = None) -> LabelMapping:
    """Resolve a label map against the taxonomy; raise LabelMapError for conflicts and useless maps."""
    taxonomy = taxonomy or load_taxonomy()
    lut = np.full(max(label_map.labels) + 1, UNDECLARED, dtype=np.uint8)
    lut[0] = 0
    native_to_benchmark: dict[int, int] = {}
    claimed: dict[str, int] = {}
    unmapped: dict[int, str] = {}
    for native_id, name in sorted(label_map.labels.items()):
        if (hint := taxonomy.ambiguity(name)) is not None:
            raise LabelMapError(f"label map '{label_map.name}': id {native_id} '{name}' is ambiguous: {hint}")
        organ = taxonomy.resolve(name)
        if organ is None:
            lut[native_id] = 0
            if not taxonomy.is_background(name):
                unmapped[native_id] = name
            continue
        if organ.name in claimed:
            raise LabelMapError(f"label map '{label_map.name}': ids {claimed[organ.name]} and {native_id} both "
                                f"claim benchmark organ '{organ.name}' ('{label_map.labels[claimed[organ.name]]}' "
                                f"and '{name}'); a map must name each organ at most once")
        claimed[organ.name] = native_id
        lut[native_id] = organ.id
        native_to_benchmark[native_id] = organ.id
    if not claimed:
        raise LabelMapError(f"label map '{label_map.name}' names no benchmark organ (it lists "
                            f"{', '.join(list(label_map.labels.values())[:6])}...); benchmark organs are "
                            f"{', '.join(taxonomy.organ_names)}: is this the right map?")
    return LabelMapping(label_map=label_map, lut=lut, native_to_benchmark=native_to_benchmark,
                        unmapped_names=unmapped)


@functools.cache
def shipped_mapping(name: str) -> LabelMapping:
    return build_mapping(load_shipped_label_map(name))
