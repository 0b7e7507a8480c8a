"""Where a run writes what under OUT: one definition, used by the driver, the container steps and workers.

    OUT/results.json, OUT/results.cases.csv, OUT/summary.csv   the run's results (one writer: the driver)
    OUT/predictions/<test set>/<case id>.<suffix>              kept predictions
    OUT/logs/<test set>/<case id>.log                          container output tails (Grand-Challenge protocol)
    OUT/logs/<test set>/flare-run.log                          the one run of a test set (FLARE protocol)
    OUT/images/<image id>.tar                                  the image as Dask workers load it (distributed runs)

A plain frozen value, so it travels to Dask workers with their tasks: OUT is shared storage there.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

FLARE_LOG_NAME = "flare-run.log"


@dataclass(frozen=True)
class OutLayout:
    root: Path

    @property
    def results(self) -> Path:
        return self.root / "results.json"

    @property
    def summary_csv(self) -> Path:
        return self.root / "summary.csv"

    @property
    def images(self) -> Path:
        return self.root / "images"

    def predictions(self, key: str) -> Path:
        return self.root / "predictions" / key

    def case_log(self, key: str, case_id: str) -> Path:
        return self.root / "logs" / key / f"{case_id}.log"

    def set_log(self, key: str) -> Path:
        return self.root / "logs" / key / FLARE_LOG_NAME
