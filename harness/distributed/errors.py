"""Errors raised in Dask tasks on a worker and acted upon by the client.

They cross process and machine boundaries (pickled by Dask), so each keeps its message and the
worker's address as plain constructor arguments. A `WorkerUnfit` says "this worker cannot run
tasks of this run" (its Docker engine is missing, it sees other data or another image): the client
sends its tasks to other workers. `ImageNotAvailable` says "this worker cannot read the image
tarball": the client ships it there.
"""

from __future__ import annotations

from harness.errors import HarnessError


class WorkerError(HarnessError):
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
