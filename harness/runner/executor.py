"""The executor interface of a run: where container steps and scoring steps run (this machine, or Dask).

The driver (`harness.runner.driver.SubmissionRun`) owns the run's logic: which cases to run,
what a container result becomes (a failed record, or a scoring job), the one results file, the
progress. An executor owns only *where* steps run and how they are waited for, as
Grand-Challenge's component Executor does. Two implementations:
- `harness.runner.local.LocalExecutor`: container steps in a small thread pool sharing one
  engine slot (the next case is staged, and the last one collected, while a container runs),
  scoring in a process pool;
- `harness.distributed.runner.DaskExecutor`: one Dask task per step, on workers with a container
  (or GPU) resource, with the infrastructure's failures (dead workers, unfit nodes) handled there.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from harness.manifest import InputSocket

if TYPE_CHECKING:
    from harness.manifest import Case, Manifest
    from harness.runner.run import ContainerResult, ResolvedSubmission, RunRequest
    from harness.scoring.case import CaseJob


@dataclass(frozen=True)
class CaseStep:
    """Run the container on one case (Grand-Challenge protocol)."""

    key: str  # test set
    case_id: str
    image_relative: str  # the case's image, relative to the data root
    socket: InputSocket

    @property
    def label(self) -> str:
        return self.case_id


@dataclass(frozen=True)
class SetStep:
    """Run the container once on every given case of a test set (FLARE protocol)."""

    key: str
    cases: tuple[tuple[str, str], ...]  # (case id, image relative to the data root)

    @property
    def label(self) -> str:
        return "set"


ContainerStep = CaseStep | SetStep


@dataclass(frozen=True)
class Completed:
    """One finished step: the container results of a container step, or the record of a scoring step."""

    key: str
    containers: "tuple[ContainerResult, ...]" = ()
    record: dict | None = None


class Executor(Protocol):
    def resolve(self, request: "RunRequest") -> "ResolvedSubmission":
        """Read the image (labels, label map) where containers will run; the executor keeps the result."""

    def begin_set(self, manifest: "Manifest", cases: "list[Case]") -> None:
        """The container steps of `cases` of this test set follow."""

    def submit_container(self, step: ContainerStep) -> None: ...

    def submit_scoring(self, key: str, job: "CaseJob") -> None: ...

    def busy(self) -> bool:
        """Some submitted step has not been collected yet."""

    def collect(self, timeout: float) -> list[Completed]:
        """The steps finished since the last call, waiting up to `timeout` s for at least one."""

    def stop(self) -> None:
        """An error or Ctrl-C: nothing new starts, running containers are stopped, scratch removed."""

    def close(self) -> None:
        """The run is over (every step collected)."""

    def not_run(self) -> list[str]:
        """Steps given up for reasons of the infrastructure ('test set/case: why'), to report at the end."""


def steps_for(manifest: "Manifest", cases: "list[Case]", protocol: str) -> list[ContainerStep]:
    """The container steps of these cases: one per case (gc), or one for the test set (flare)."""
    if protocol == "gc":
        return [CaseStep(key=manifest.key, case_id=c.case_id, image_relative=c.image, socket=manifest.input_socket)
                for c in cases]
    return [SetStep(key=manifest.key, cases=tuple((c.case_id, c.image) for c in cases))]
