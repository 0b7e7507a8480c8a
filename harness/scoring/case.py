"""Score one case: ground truth and prediction files in, a case record out.

The glue between files and `metrics/`: read both images, check the prediction's grid, map both to
benchmark ids, and call `metrics.score_case` with the spacing in array order and the
superior-inferior axis decided from the ground truth's direction cosines. Any problem becomes a
failed record (organs scored 0, flagged) instead of an exception, so a batch always goes on.

The scoring kernels (numba) are imported at the first score, not with this module: the driver
imports it for `CaseJob` alone, and numba would cost it 0.5-1 s of start-up.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import metrics
from metrics.options import EmptyPolicy

from harness.errors import CaseFailed, FailureKind
from harness.imageio import LabelVolume, image_suffix, read_image
from harness.labelmap import LabelMapping
from harness.scoring import nifti_gz
from harness.scoring.outputs import prediction_in_benchmark_ids, read_prediction
from harness.results import METRIC_NAMES, failed_record, ok_record
from harness.taxonomy import load_taxonomy


@dataclass(frozen=True)
class ScoreSettings:
    empty_policy: EmptyPolicy = EmptyPolicy.AEVAL
    metrics: tuple[str, ...] = METRIC_NAMES

    def to_document(self) -> dict:
        return {"empty_policy": self.empty_policy.value, "metrics": list(self.metrics)}


@dataclass(frozen=True)
class CaseJob:
    """Everything a worker process needs to score one case (picklable)."""

    case_id: str
    gt_path: Path
    pred_path: Path | None
    gt_mapping: LabelMapping
    pred_mapping: LabelMapping
    settings: ScoreSettings = field(default_factory=ScoreSettings)
    runtime: dict | None = None
    missing_reason: str | None = None
    gc_output: bool = False  # Grand-Challenge accepts only uint8/int8 segmentations: hold outputs to that


def read_ground_truth(path: Path, *, case_id: str) -> LabelVolume:
    """The ground truth's voxels and grid: a .nii.gz read strictly (a truncated download fails the
    case instead of scoring against stale memory, which ITK returns for it), a .nii's length checked
    against its header first (ITK passes a cut one too), anything else by ITK."""
    if image_suffix(path) == ".nii.gz" and Path(path).is_file():
        volume = nifti_gz.read_volume(Path(path), case_id=case_id, role=nifti_gz.GROUND_TRUTH)
        if volume is not None:
            return volume
    if image_suffix(path) == ".nii" and Path(path).is_file():
        nifti_gz.check_uncompressed_length(Path(path), case_id=case_id, role=nifti_gz.GROUND_TRUTH)
    return LabelVolume.of(read_image(path, case_id=case_id, role="ground truth", kind=FailureKind.UNREADABLE_GROUND_TRUTH))


def score_files(job: CaseJob) -> dict:
    """A case record (status ok or failed); never raises for a problem with this one case."""
    organs = list(load_taxonomy().organ_names)
    try:
        if job.pred_path is None:
            raise CaseFailed(FailureKind.MISSING_PREDICTION, job.missing_reason or f"case {job.case_id}: no prediction")
        truth = read_ground_truth(job.gt_path, case_id=job.case_id)
        geometry = truth.geometry
        gt = job.gt_mapping.apply(truth.voxels, case_id=job.case_id, source=f"ground truth {job.gt_path}")
        prediction = read_prediction(job.pred_path, case_id=job.case_id, reference=geometry, gc_output=job.gc_output)
        pred = prediction_in_benchmark_ids(prediction, job.pred_mapping, case_id=job.case_id, path=job.pred_path)
        scores = metrics.score_case(gt, pred, spacing_mm=geometry.spacing_array, organs=load_taxonomy().metric_specs(),
                            si_axis=geometry.si_array_axis(), empty_policy=job.settings.empty_policy,
                            metrics=job.settings.metrics)
    except CaseFailed as failure:
        return failed_record(job.case_id, kind=failure.kind, message=failure.message, organs=organs,
                             metrics=job.settings.metrics, runtime=job.runtime)
    except MemoryError:
        return failed_record(job.case_id, kind=FailureKind.SCORING_ERROR, message=f"case {job.case_id}: out of memory while scoring",
                             organs=organs, metrics=job.settings.metrics, runtime=job.runtime)
    return ok_record(job.case_id, scores, runtime=job.runtime)
