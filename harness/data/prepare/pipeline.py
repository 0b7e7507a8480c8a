"""Prepare one test set: find its cases in the download, write image + benchmark-id label per case, fill its manifest.

The order of work is chosen so that nothing half-done looks done:
1. discover the cases (restricted to --cases, else to the benchmark's published case list where the
   shipped manifest has one) and check their count against the benchmark's contract BEFORE writing
   anything (a wrong or incomplete download is a command-stopping error, naming the release the
   benchmark was built from, unless the organizer overrides it);
2. per case: convert the label first (the step that can fail), then write label and image through
   temporary files, then record their sha256 in the manifest, rewritten atomically after every case,
   so an interrupted run resumes where it stopped;
3. a case whose files are present and match the sha256 recorded by the previous run is skipped
   (unless --force); a case that fails is reported and left out, the others go on.
The filled manifest goes to `<data root>/manifests/<key>.json` (the shipped one stays generic), so
`--benchmark <data root>/manifests` is the prepared benchmark.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from harness.data.prepare.common import (PREPARED_LABEL_MAP, Discovery, SourceAdapter, SourceCase,
                                         copy_image_atomic, output_paths, read_header, write_label_atomic)
from harness.data.prepare.sources import source_adapter
from harness.errors import CaseFailed, FailureKind, HarnessError, SchemaError
from harness.jsonio import read_json, write_json_atomic
from harness.manifest import MANIFESTS_DIR, Release, benchmark_dir, sha256_file

REPORT_NAME = "prepare-report.json"
TEMPLATE_BENCHMARK = "a-eval"


@dataclass(frozen=True)
class CaseOutcome:
    case_id: str
    status: str  # "prepared", "skipped" (already prepared and unchanged) or "failed"
    notes: tuple[str, ...] = ()
    problem: str | None = None


@dataclass
class PrepareReport:
    key: str
    source: Path
    data_root: Path
    manifest_path: Path
    found: int
    contract_count: int
    count_overridden: bool
    #: the public release the benchmark's test set is built from (the manifest's release.name)
    release: str | None = None
    notes: list[str] = field(default_factory=list)
    outcomes: list[CaseOutcome] = field(default_factory=list)

    def with_status(self, status: str) -> list[CaseOutcome]:
        return [o for o in self.outcomes if o.status == status]

    @property
    def ok(self) -> bool:
        return not self.with_status("failed")


def default_manifest_path(data_root: Path, key: str) -> Path:
    return data_root / MANIFESTS_DIR / f"{key}.json"


def prepare(key: str, *, source: Path, data_root: Path, force: bool = False, manifest_out: Path | None = None,
            allow_count_mismatch: bool = False, only_cases: Iterable[str] | None = None,
            labels: Path | None = None, progress: Callable[[str, str], None] | None = None) -> PrepareReport:
    """Prepare test set `key` from the download in `source` into `data_root`; see the module docstring.

    `labels`: a folder holding the test labels where the dataset publishes them apart from the images
    (WORD's WORD_V0.1.0_labelsTs.zip, FLARE22's validation labels); only read, like the source.
    """
    adapter = source_adapter(key)
    source = Path(source).expanduser().resolve()
    if not source.is_dir():
        raise HarnessError(f"source {source} is not a folder: give the unpacked {adapter.dataset} download")
    if labels is not None:
        if not adapter.takes_labels_dir:
            raise HarnessError(f"--labels is not used for {key}: {adapter.dataset} publishes its labels with the "
                               f"images ({adapter.layout})")
        labels = Path(labels).expanduser().resolve()
        if not labels.is_dir():
            raise HarnessError(f"--labels {labels} is not a folder: give the unpacked label archive's folder")
    data_root = Path(data_root).expanduser().resolve()
    manifest_path = _manifest_target(data_root, key, manifest_out)
    for read_only in (source, *([labels] if labels else [])):
        _refuse_overlap(read_only, data_root=data_root, outputs=[data_root / key, manifest_path.parent])
    data_root.mkdir(parents=True, exist_ok=True)
    template = read_json(benchmark_dir(TEMPLATE_BENCHMARK) / f"{key}.json", "manifest")
    release = Release.from_doc(template["release"]) if "release" in template else None

    discovery = adapter.discover(source, labels=labels)
    if only_cases is not None:
        _keep_only(discovery, list(only_cases), source=source)
    elif release is not None and release.case_list is not None:
        _keep_published(discovery, release)
    if discovery.found == 0:
        raise HarnessError(f"{key}: no test cases found under {source}; expected {adapter.layout}"
                           + "".join(f"; {note}" for note in discovery.notes))
    contract = template["expected_case_count"]
    if discovery.found != contract and not allow_count_mismatch:
        raise HarnessError(_count_message(key, adapter, source, discovery, contract, release))

    report = PrepareReport(key=key, source=source, data_root=data_root, manifest_path=manifest_path,
                           found=discovery.found, contract_count=contract,
                           count_overridden=discovery.found != contract, notes=list(discovery.notes),
                           release=release.name if release else None)
    previous = _previous_records(manifest_path, key, report)
    previous_notes = _previous_notes(data_root / key / REPORT_NAME)
    cases = {c.case_id: c for c in discovery.cases}
    records: dict[str, dict] = {}
    unvisited = {cid: rec for cid, rec in previous.items() if cid in cases}
    for case_id in discovery.case_ids():
        unvisited.pop(case_id, None)
        if case_id in discovery.broken:
            outcome = CaseOutcome(case_id, "failed", problem=f"case {case_id}: {discovery.broken[case_id]}")
        elif not force and _finished(data_root, previous.get(case_id), *output_paths(key, case_id)):
            records[case_id] = previous[case_id]
            outcome = CaseOutcome(case_id, "skipped", notes=previous_notes.get(case_id, ()))
        else:
            try:
                records[case_id], notes = _prepare_case(adapter, cases[case_id], data_root)
            except CaseFailed as failure:
                outcome = CaseOutcome(case_id, "failed", problem=failure.message)
            else:
                outcome = CaseOutcome(case_id, "prepared", notes=notes)
        report.outcomes.append(outcome)
        _write_manifest(manifest_path, template, report, {**unvisited, **records})
        if progress:
            progress(case_id, outcome.status)
    _write_report(data_root / key / REPORT_NAME, report)
    return report


def _prepare_case(adapter: SourceAdapter, case: SourceCase, data_root: Path) -> tuple[dict, tuple[str, ...]]:
    image_rel, label_rel = output_paths(adapter.key, case.case_id)
    header = read_header(case.image, case_id=case.case_id, role="image")
    geometry = header.geometry
    converted = adapter.convert(case, geometry, image_path=case.image)
    if converted.array.shape != geometry.shape_array:
        raise CaseFailed(FailureKind.GEOMETRY_MISMATCH, f"case {case.case_id}: converted label has shape "
                                              f"{converted.array.shape}, image {geometry.shape_array}")
    write_label_atomic(converted.array, geometry, data_root / label_rel)
    approximation = header.approximation
    copy_image_atomic(case.image, data_root / image_rel, clean_header=approximation is not None)
    record = {"case_id": case.case_id, "image": image_rel, "label": label_rel,
              "image_sha256": sha256_file(data_root / image_rel), "label_sha256": sha256_file(data_root / label_rel)}
    notes = converted.notes
    if approximation is not None:
        record["direction_approximated"] = approximation.record()
        notes = (f"image {case.image}: {approximation.describe()}; the prepared image carries the orthonormal "
                 "header", *notes)
    return record, notes


def _finished(data_root: Path, record: dict | None, image_rel: str, label_rel: str) -> bool:
    """Present and checksum-matching what the previous run recorded."""
    if not record or record.get("image") != image_rel or record.get("label") != label_rel:
        return False
    for relative, digest in ((image_rel, record.get("image_sha256")), (label_rel, record.get("label_sha256"))):
        path = data_root / relative
        if not digest or not path.is_file() or sha256_file(path) != digest:
            return False
    return True


def _manifest_target(data_root: Path, key: str, manifest_out: Path | None) -> Path:
    if manifest_out is None:
        return default_manifest_path(data_root, key)
    manifest_out = Path(manifest_out).expanduser().resolve()
    if manifest_out.is_dir():
        return manifest_out / f"{key}.json"
    if manifest_out.name != f"{key}.json":
        raise HarnessError(f"--manifest-out {manifest_out}: the file must be named {key}.json (manifests are found "
                           "by their key), or give a folder")
    return manifest_out


def _inside(path: Path, folder: Path) -> bool:
    path, folder = path.resolve(), folder.resolve()
    return path == folder or folder in path.parents


def _refuse_overlap(source: Path, *, data_root: Path, outputs: list[Path]) -> None:
    """Never write into the download (nor create the data root in it), nor read a download where outputs go."""
    for output in outputs:
        if _inside(output, source) or _inside(source, output):
            raise HarnessError(f"output folder {output} and source {source} overlap: prepare never writes into a "
                               "download; choose a data root (and --manifest-out) outside the source folder")
    if _inside(data_root, source):
        raise HarnessError(f"data root {data_root} lies inside the source {source}: prepare never writes into a "
                           "download; choose a data root outside it")


def _keep_only(discovery: Discovery, wanted: list[str], *, source: Path) -> None:
    """Restrict to an organizer's case list (e.g. the benchmark's 40 AMOS CTs out of 100)."""
    available = set(discovery.case_ids())
    absent = [c for c in wanted if c not in available]
    if absent:
        raise HarnessError(f"--cases lists {len(absent)} case(s) not found under {source}: "
                           f"{', '.join(absent[:10])}{' ...' if len(absent) > 10 else ''}")
    keep = set(wanted)
    left_out = len(available - keep)
    discovery.cases = [c for c in discovery.cases if c.case_id in keep]
    discovery.broken = {c: why for c, why in discovery.broken.items() if c in keep}
    if left_out:
        discovery.notes.append(f"--cases: took {len(keep)} listed case(s), left out {left_out} other(s)")


def _keep_published(discovery: Discovery, release: Release) -> None:
    """Restrict to the benchmark's published case list (shipped in the manifest template).

    Unlike --cases, a listed case that is not in the source is not an error here: the count check
    that follows says how many are missing, and small or partial downloads stay usable with
    --allow-count-mismatch.
    """
    listed = set(release.case_list or ())
    others = [c for c in discovery.case_ids() if c not in listed]
    if not others:
        return
    discovery.cases = [c for c in discovery.cases if c.case_id in listed]
    discovery.broken = {c: why for c, why in discovery.broken.items() if c in listed}
    discovery.notes.append(f"left out {len(others)} case(s) that are not in the benchmark's published list of "
                           f"{len(listed)} ({', '.join(others[:5])}{' ...' if len(others) > 5 else ''})")


def _count_message(key: str, adapter: SourceAdapter, source: Path, discovery: Discovery, contract: int,
                   release: Release | None) -> str:
    remarks = "; ".join(discovery.notes + [f"{len(discovery.broken)} of them incomplete"] * bool(discovery.broken))
    built_from = ""
    if release is not None:
        built_from = f" The benchmark's {key} is {release.test_cases}, from {release.name}."
        if release.case_list_note:
            built_from += f" {release.case_list_note}"
    return (f"{key}: found {discovery.found} test case(s) under {source}, the benchmark expects {contract}"
            f"{f' ({remarks})' if remarks else ''}.{built_from} Expected layout: {adapter.layout}. Check that the "
            "download is complete and the right release, pin the benchmark's cases with --cases FILE, or accept "
            "the count with --allow-count-mismatch (organizer override)")


def _previous_records(manifest_path: Path, key: str, report: PrepareReport) -> dict[str, dict]:
    if not manifest_path.is_file():
        return {}
    try:
        document = read_json(manifest_path, "manifest")
    except SchemaError as error:
        report.notes.append(f"previous manifest ignored, every case is prepared again: {error}")
        return {}
    if document["key"] != key:
        raise HarnessError(f"{manifest_path} is the manifest of '{document['key']}', not '{key}'")
    return {case["case_id"]: case for case in document["cases"]}


def _previous_notes(path: Path) -> dict[str, tuple[str, ...]]:
    try:
        document = read_json(path)
        return {cid: tuple(entry.get("notes", ())) for cid, entry in document.get("cases", {}).items()}
    except (SchemaError, AttributeError, TypeError):
        return {}


def _write_manifest(path: Path, template: dict, report: PrepareReport, records: dict[str, dict]) -> None:
    document = {**template, "gt_label_map": PREPARED_LABEL_MAP,
                "cases": [records[cid] for cid in sorted(records)]}
    if report.count_overridden:
        document["expected_case_count"] = report.found
        document["description"] = (template.get("description", "") + f" Organizer override "
                                   f"(--allow-count-mismatch): {report.found} cases in the source, "
                                   f"{report.contract_count} in the benchmark's contract.").strip()
    write_json_atomic(path, document, "manifest")


def _write_report(path: Path, report: PrepareReport) -> None:
    """What was decided per case (adrenal midlines, absent structures, overlaps): an audit trail."""
    write_json_atomic(path, {
        "key": report.key, "source": str(report.source), "found": report.found,
        "expected_case_count": report.contract_count, "count_overridden": report.count_overridden,
        "release": report.release,
        "notes": report.notes,
        "cases": {o.case_id: {"status": o.status, "notes": list(o.notes), "problem": o.problem}
                  for o in report.outcomes},
    })
