"""The benchmark taxonomy (ten organs, ids, NSD tolerances, synonyms), read from its one data file.

`ground_truth_manifests/taxonomy.json` is the single source of truth; everything else (label
mapping, metrics' organ specs, results keys, leaderboards) asks this module.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from importlib import resources

from harness.jsonio import read_json

_ABBREVIATIONS = {"r": "right", "rt": "right", "l": "left", "lt": "left", "glands": "gland",
                  "kidneys": "kidney", "oesophagus": "esophagus"}


def normalize_name(name: str) -> str:
    """Canonical form of an organ name, so that "Kidney (R)", "kidney_R" and "right kidney" agree.

    Lower-case, every non-alphanumeric run becomes a separator, side abbreviations are spelled out,
    and the words are sorted, so word order ("right kidney" / "kidney right") does not matter.
    """
    words = [w for w in re.split(r"[^a-z0-9]+", name.lower()) if w]
    words = [_ABBREVIATIONS.get(w, w) for w in words]
    return " ".join(sorted(words))


@dataclass(frozen=True)
class Organ:
    id: int
    name: str
    nsd_tolerance_mm: float
    restrict_to_gt_extent: bool
    synonyms: tuple[str, ...]


@dataclass(frozen=True)
class Taxonomy:
    name: str
    organs: tuple[Organ, ...]
    background_names: frozenset[str]
    ambiguous_names: dict[str, str]

    @property
    def organ_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.organs)

    def by_name(self, name: str) -> Organ:
        for organ in self.organs:
            if organ.name == name:
                return organ
        raise KeyError(f"'{name}' is not a benchmark organ (known: {', '.join(self.organ_names)})")

    @functools.cached_property
    def _lookup(self) -> dict[str, Organ]:
        table: dict[str, Organ] = {}
        for organ in self.organs:
            for alias in (organ.name, *organ.synonyms):
                table[normalize_name(alias)] = organ
        return table

    def resolve(self, name: str) -> Organ | None:
        """The benchmark organ a native name stands for, or None for anything outside the taxonomy."""
        return self._lookup.get(normalize_name(name))

    def is_background(self, name: str) -> bool:
        return normalize_name(name) in {normalize_name(n) for n in self.background_names}

    def ambiguity(self, name: str) -> str | None:
        """A hint when `name` names benchmark organs without saying which (e.g. one 'adrenal' label)."""
        normalized = normalize_name(name)
        for ambiguous, hint in self.ambiguous_names.items():
            if normalize_name(ambiguous) == normalized:
                return hint
        return None

    def metric_specs(self):
        """The organs as `metrics.OrganSpec`s (label = benchmark id)."""
        from metrics import OrganSpec

        return [OrganSpec(label=o.id, name=o.name, tolerance_mm=float(o.nsd_tolerance_mm),
                          restrict_to_gt_extent=o.restrict_to_gt_extent) for o in self.organs]


@functools.cache
def load_taxonomy() -> Taxonomy:
    """The benchmark taxonomy shipped in ground_truth_manifests/taxonomy.json."""
    path = resources.files("ground_truth_manifests").joinpath("taxonomy.json")
    doc = read_json(path, "taxonomy")
    organs = tuple(Organ(id=o["id"], name=o["name"], nsd_tolerance_mm=o["nsd_tolerance_mm"],
                         restrict_to_gt_extent=o["restrict_to_gt_extent"], synonyms=tuple(o["synonyms"]))
                   for o in doc["organs"])
    ids = [o.id for o in organs]
    if len(set(ids)) != len(ids) or len({o.name for o in organs}) != len(organs):
        raise ValueError(f"{path}: organ ids and names must be unique")
    return Taxonomy(name=doc["name"], organs=organs, background_names=frozenset(doc["background_names"]),
                    ambiguous_names=dict(doc.get("ambiguous_names", {})))
