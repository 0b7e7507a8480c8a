"""Test-set manifests: what a test set is, read and validated from ground_truth_manifests/.

Manifests come in benchmarks (folders): `a-eval` (the seven real test sets, filled by
`harness data prepare`) and `synthetic` (the embedded miniature benchmark of `harness data synth`).
A manifest never holds an absolute path: files are relative to a data root given by `--data-root`
or the AEVAL_DATA_ROOT environment variable.
"""

from __future__ import annotations

import functools
import hashlib
import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from harness.errors import ManifestError, SchemaError
from harness.jsonio import read_json
from harness.labelmap import LabelMapping, shipped_mapping
from harness.nifti_direction import DirectionApproximation

DATA_ROOT_ENV = "AEVAL_DATA_ROOT"
BENCHMARK_ENV = "AEVAL_BENCHMARK"
DEFAULT_BENCHMARK = "a-eval"
MANIFESTS_DIR = "manifests"  # where `harness data prepare` writes a data root's own manifests
#: The paper's order of the seven test sets: five CT, then two MR.
CANONICAL_ORDER = ("flare22", "amos_ct", "word", "totalseg_ct", "btcv", "amos_mr", "totalseg_mr")


@dataclass(frozen=True)
class Case:
    case_id: str
    image: str
    label: str
    image_sha256: str | None = None
    label_sha256: str | None = None
    #: set when the source image's header direction was not orthonormal and prepare approximated it
    direction_approximated: DirectionApproximation | None = None

    @classmethod
    def from_doc(cls, doc: dict) -> "Case":
        approximated = doc.get("direction_approximated")
        return cls(**{**doc, "direction_approximated": DirectionApproximation(**approximated) if approximated else None})


@dataclass(frozen=True)
class Release:
    """The public release a test set is built from (schema: release)."""

    name: str
    test_cases: str
    case_list: tuple[str, ...] | None  # the benchmark's case ids where public; None otherwise
    archives: tuple[str, ...] = ()
    case_list_note: str | None = None

    @classmethod
    def from_doc(cls, doc: dict) -> "Release":
        listed = doc.get("case_list")
        return cls(name=doc["name"], test_cases=doc["test_cases"],
                   case_list=tuple(listed) if listed is not None else None,
                   archives=tuple(doc.get("archives", ())), case_list_note=doc.get("case_list_note"))


@dataclass(frozen=True)
class InputSocket:
    slug: str
    title: str
    relative_path: str


#: Grand-Challenge input socket of each modality; every manifest's `input_socket` is the one of its modality.
INPUT_SOCKETS = {"CT": InputSocket(slug="ct-image", title="CT Image", relative_path="images/ct"),
                 "MR": InputSocket(slug="mr-image", title="MR Image", relative_path="images/mr")}


@dataclass(frozen=True)
class Manifest:
    key: str
    dataset: str
    modality: str
    source_label_map: str
    gt_label_map: str
    expected_case_count: int
    input_socket: InputSocket
    cases: tuple[Case, ...]
    path: Path
    release: Release | None = None

    @property
    def gt_mapping(self) -> LabelMapping:
        return shipped_mapping(self.gt_label_map)

    def case(self, case_id: str) -> Case:
        for case in self.cases:
            if case.case_id == case_id:
                return case
        raise ManifestError(f"{self.path}: no case '{case_id}' in test set {self.key}")

    def check_complete(self) -> None:
        """A test set whose case count differs from its contract is an error (BENCHMARK.md section 1)."""
        if not self.cases:
            raise ManifestError(f"test set {self.key} ({self.path}) lists no cases yet: prepare it with "
                                f"`harness data prepare {self.key} --source DIR --data-root R`")
        if len(self.cases) != self.expected_case_count:
            raise ManifestError(f"test set {self.key}: {len(self.cases)} cases listed in {self.path}, "
                                f"{self.expected_case_count} expected")


def default_benchmark(data_root: Path | str | None = None) -> str:
    """The manifest set when no --benchmark is given: $AEVAL_BENCHMARK, else the prepared manifests
    that `harness data prepare` wrote into the data root (<root>/manifests), else the shipped a-eval."""
    if os.environ.get(BENCHMARK_ENV):
        return os.environ[BENCHMARK_ENV]
    root = data_root or os.environ.get(DATA_ROOT_ENV)
    if root and (Path(root) / MANIFESTS_DIR).is_dir():
        return str(Path(root) / MANIFESTS_DIR)
    return DEFAULT_BENCHMARK


def benchmark_dir(benchmark: str) -> Path:
    """Folder of a benchmark's manifests: a shipped name ("a-eval", "synthetic") or a path."""
    candidate = Path(benchmark)
    if candidate.is_dir():
        return candidate
    shipped = resources.files("ground_truth_manifests").joinpath(benchmark)
    if not shipped.is_dir():
        raise ManifestError(f"no benchmark '{benchmark}': give a shipped one ({', '.join(shipped_benchmarks())}) "
                            "or a folder of manifest JSON files")
    return Path(str(shipped))


def shipped_benchmarks() -> list[str]:
    root = resources.files("ground_truth_manifests")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in ("label_maps", "__pycache__"))


@functools.cache
def load_manifest_file(path: Path) -> Manifest:
    try:
        doc = read_json(path, "manifest")
    except SchemaError as exc:
        raise ManifestError(str(exc)) from exc
    ids = [c["case_id"] for c in doc["cases"]]
    if len(set(ids)) != len(ids):
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        raise ManifestError(f"{path}: duplicate case ids {', '.join(duplicates)}")
    if path.stem != doc["key"]:
        raise ManifestError(f"{path}: file name must be the key '{doc['key']}.json'")
    manifest = Manifest(key=doc["key"], dataset=doc["dataset"], modality=doc["modality"],
                        source_label_map=doc["source_label_map"], gt_label_map=doc["gt_label_map"],
                        expected_case_count=doc["expected_case_count"],
                        input_socket=InputSocket(**doc["input_socket"]),
                        cases=tuple(Case.from_doc(c) for c in doc["cases"]), path=path,
                        release=Release.from_doc(doc["release"]) if "release" in doc else None)
    manifest.gt_mapping  # a manifest whose label map does not resolve is unusable: fail at load
    return manifest


def load_benchmark(benchmark: str | None = None, *, keys: list[str] | None = None) -> list[Manifest]:
    """The manifests of a benchmark, in the paper's order, optionally only `keys`."""
    folder = benchmark_dir(benchmark or default_benchmark())
    available = {p.stem: p for p in sorted(folder.glob("*.json"))}
    if not available:
        raise ManifestError(f"{folder}: no manifest files")
    wanted = keys or sorted(available, key=_order)
    unknown = [k for k in wanted if k not in available]
    if unknown:
        raise ManifestError(f"unknown test set(s) {', '.join(unknown)} in {folder} "
                            f"(available: {', '.join(sorted(available, key=_order))})")
    return [load_manifest_file(available[k]) for k in wanted]


def _order(key: str) -> tuple[int, str]:
    return (CANONICAL_ORDER.index(key) if key in CANONICAL_ORDER else len(CANONICAL_ORDER), key)


def resolve_data_root(data_root: str | Path | None) -> Path:
    """The data root from the flag, else AEVAL_DATA_ROOT; never a path baked into a manifest."""
    value = data_root or os.environ.get(DATA_ROOT_ENV)
    if not value:
        raise ManifestError(f"no data root: pass --data-root or set {DATA_ROOT_ENV}")
    root = Path(value).expanduser()
    if not root.is_dir():
        raise ManifestError(f"data root {root} is not a folder")
    return root.resolve()


def case_file(root: Path, relative: str) -> Path:
    """A case file under the data root; refuses anything that resolves outside it (e.g. via symlinks)."""
    path = (root / relative).resolve()
    if root not in path.parents and path != root:
        raise ManifestError(f"{relative} resolves to {path}, outside the data root {root}")
    return path


def sha256_file(path: Path, *, chunk_bytes: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk_bytes):
            digest.update(block)
    return digest.hexdigest()
