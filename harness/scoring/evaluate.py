"""`harness evaluate`: score a folder of prediction files against a test set's ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from harness.imageio import IMAGE_SUFFIXES
from harness.labelmap import LabelMapping
from harness.manifest import Manifest, case_file
from harness.results import ResultsStore
from harness.scoring.case import CaseJob, ScoreSettings
from harness.scoring.pool import ScoringPool


def find_prediction(folder: Path, case_id: str) -> tuple[Path | None, str | None]:
    """The one prediction file of a case (`<case_id>.nii.gz`, `.mha`, ...), or why there is none."""
    found = [folder / f"{case_id}{suffix}" for suffix in IMAGE_SUFFIXES if (folder / f"{case_id}{suffix}").is_file()]
    if not found:
        return None, (f"case {case_id}: no prediction file {case_id}.nii.gz / .mha (or another of "
                      f"{', '.join(IMAGE_SUFFIXES)}) in {folder}")
    if len(found) > 1:
        return None, f"case {case_id}: more than one prediction file: {', '.join(p.name for p in found)}"
    return found[0], None


def evaluate_folder(*, manifest: Manifest, predictions: Path, pred_mapping: LabelMapping, data_root: Path,
                    store: ResultsStore, settings: ScoreSettings, workers: int, retry_failed: bool = False,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Score every case of `manifest` not already in `store`; returns the written results document."""
    for note in pred_mapping.notes():
        store.add_note(f"predictions: {note}")
    done = store.finished(manifest.key, include_failed=not retry_failed)
    todo = [c for c in manifest.cases if c.case_id not in done]
    counter = {"n": 0}

    def on_record(key: str, record: dict) -> None:
        store.add(key, record)
        counter["n"] += 1
        if progress:
            progress(counter["n"], len(todo))

    with ScoringPool(workers=workers, on_record=on_record) as pool:
        for case in todo:
            pred_path, reason = find_prediction(predictions, case.case_id)
            job = CaseJob(case_id=case.case_id, gt_path=case_file(data_root, case.label), pred_path=pred_path,
                          gt_mapping=manifest.gt_mapping, pred_mapping=pred_mapping, settings=settings,
                          missing_reason=reason)
            pool.submit(manifest.key, job)
    return store.write()
