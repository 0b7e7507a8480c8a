"""Every exception of the harness, the failure kinds of a case, and the exit codes: one tree.

Two families, kept apart on purpose (as Grand-Challenge's backends do):
- `HarnessError` subclasses stop a whole command (no daemon, unreadable manifest, bad flags).
  Their message says what is wrong and what to do next; the CLI prints it on one line and exits
  with the class's `exit_code`, so a script can tell a typo from a missing engine or a lost cluster.
- `CaseFailed` is a *value-like* exception: one case could not be scored. The caller turns it into
  a failed case record (status "failed", organs scored 0, flagged) and goes on with the others. Its
  `kind` is a `FailureKind`, the closed list that results.schema.json's `error_kind` enum follows.
"""

from __future__ import annotations

import enum

from harness.text import printable


class ExitCode(enum.IntEnum):
    """What `harness` returns; README's "Commands" section lists the same table."""

    OK = 0
    FAILED_CASES = 1  # the command ran; some case failed, some check or verification found a problem
    USAGE = 2  # bad flags or bad input: unreadable manifest, invalid JSON, unknown image, bad results files
    ENVIRONMENT = 3  # this machine cannot run it: no Docker engine, no NVIDIA runtime, a missing dependency
    CLUSTER = 4  # the Dask scheduler cannot be reached or was lost, no worker can run the tasks
    INTERRUPTED = 130  # Ctrl-C or SIGTERM; finished cases are saved


class FailureKind(str, enum.Enum):
    """Why one case failed: a stable machine-readable reason stored as `error_kind` in results.

    A `str` enum, so records hold the same plain strings as before (`FailureKind.CRASH == "crash"`).
    Add a member here and it is accepted by the results schemas (a test keeps them equal).
    """

    # the participant's container (runner)
    TIME_LIMIT = "time_limit"
    MEMORY_LIMIT = "memory_limit"
    CRASH = "crash"
    NO_OUTPUT = "no_output"
    UNSUPPORTED_OUTPUT = "unsupported_output"
    TOO_MANY_OUTPUTS = "too_many_outputs"
    SYMLINK_IN_OUTPUT = "symlink_in_output"
    SPECIAL_FILE_IN_OUTPUT = "special_file_in_output"
    OUTPUT_TOO_LARGE = "output_too_large"
    START_FAILED = "start_failed"
    # the output reader's refusals of untrusted bytes (before any pixel is read)
    UNSAFE_METAIMAGE = "unsafe_metaimage"
    UNSAFE_OUTPUT_PATH = "unsafe_output_path"
    OUTPUT_TOO_DEEP = "output_too_deep"
    OUTPUT_PATH_TOO_LONG = "output_path_too_long"
    OUTPUT_TOO_MANY_FILES = "output_too_many_files"
    PREDICTION_TOO_LARGE = "prediction_too_large"
    # an exception no check foresaw, caught per case so the run goes on
    HARNESS_ERROR = "harness_error"
    # the prediction (scoring)
    MISSING_PREDICTION = "missing_prediction"
    UNREADABLE_PREDICTION = "unreadable_prediction"
    GEOMETRY_MISMATCH = "geometry_mismatch"
    NON_INTEGER_LABELS = "non_integer_labels"
    NEGATIVE_LABELS = "negative_labels"
    UNKNOWN_LABELS = "unknown_labels"
    UNSUPPORTED_PIXEL_TYPE = "unsupported_pixel_type"
    SCORING_ERROR = "scoring_error"
    # the ground truth (scoring) and the source data (prepare)
    MISSING_GROUND_TRUTH = "missing_ground_truth"
    UNREADABLE_GROUND_TRUTH = "unreadable_ground_truth"
    UNREADABLE_SOURCE = "unreadable_source"
    INCONSISTENT_SIDES = "inconsistent_sides"
    # Grand-Challenge algorithm jobs (gc-evaluate)
    JOB_FAILED = "job_failed"
    INVALID_JOB = "invalid_job"

    def __str__(self) -> str:  # f"{kind}" and json.dumps give the plain value, as the old strings did
        return self.value


class HarnessError(Exception):
    """A problem that stops the whole command; the message is shown to the user as is."""

    exit_code: ExitCode = ExitCode.USAGE

    def __str__(self) -> str:
        return printable(super().__str__())  # it may quote image labels: never print raw escapes


class SchemaError(HarnessError):
    """A JSON document does not follow its schema (the message names the file and the JSON path)."""


class LabelMapError(HarnessError):
    """A label map cannot be turned into benchmark ids (conflict, no benchmark organ, ambiguity)."""


class ManifestError(HarnessError):
    """A manifest is missing, invalid, or points at files that are not there."""


class EnvironmentProblem(HarnessError):
    """This machine lacks something the command needs (an engine, a runtime, a library), not a user error."""

    exit_code = ExitCode.ENVIRONMENT


class DockerUnavailable(EnvironmentProblem):
    """No Docker engine answers."""


class RunStopped(HarnessError):
    """The run is stopping (error or Ctrl-C): a staged step does not start its container."""

    exit_code = ExitCode.INTERRUPTED


class ClusterError(HarnessError):
    """The Dask scheduler cannot be reached or was lost, or no worker can run the run's tasks."""

    exit_code = ExitCode.CLUSTER


# ---------------------------------------------------------------- publishing


class LeaderboardError(HarnessError):
    """The given results cannot be merged into one leaderboard (the message says which and why)."""


class GroundTruthError(HarnessError):
    """The ground-truth folder is unusable: the organizer's upload must be fixed (nothing was scored)."""


class PredictionsError(HarnessError):
    """predictions.json is missing or is not a list of jobs: nothing can be evaluated."""


class EvaluationSetupError(HarnessError):
    """No job matches the ground truth, or no job's output is found: a phase set up wrong, not a score of 0."""


# ---------------------------------------------------------------- distributed runs
# Raised in Dask tasks on a worker and acted upon by the client. They cross process and machine
# boundaries (pickled by Dask), so each keeps its message and the worker's address as plain
# constructor arguments. A `WorkerUnfit` says "this worker cannot run tasks of this run" (its Docker
# engine is missing, it sees other data or another image): the client sends its tasks to other
# workers. `ImageNotAvailable` says "this worker cannot read the image tarball": the client ships it.


class WorkerError(ClusterError):
    def __init__(self, message: str, worker: str = "") -> None:
        super().__init__(message, worker)
        self.message = message
        self.worker = worker

    def __str__(self) -> str:
        return self.message


class WorkerUnfit(WorkerError):
    """This worker cannot run this run's tasks; its tasks go to other workers."""


class DockerMissingOnWorker(WorkerUnfit):
    """No Docker engine answers on the worker's node."""


class DataRootMismatch(WorkerUnfit):
    """The data root on the worker's node is missing files or holds other content than the manifest says."""


class ImageMismatch(WorkerUnfit):
    """The image the worker loaded is not the image the client resolved (another tarball at that path)."""


class ImageNotAvailable(WorkerError):
    """The worker cannot read the image tarball (no shared path): the client ships it."""


# ---------------------------------------------------------------- image headers


class DirectionNotRepairable(ValueError):
    """The file is not a NIfTI whose direction can honestly be approximated by a rotation."""


# ---------------------------------------------------------------- one case


class CaseFailed(Exception):
    """One case failed; `kind` is a stable machine-readable reason, `message` is for humans.

    The message is made printable here: it often quotes what a container wrote.
    """

    def __init__(self, kind: FailureKind, message: str, *, details: dict | None = None) -> None:
        message = printable(message)  # it quotes container output: never store or print raw escapes
        super().__init__(message)
        self.kind = FailureKind(kind)  # an unknown kind fails here, where it is made, not in the schema check
        self.message = message
        self.details = details or {}
