"""Progress of `harness run` (local or distributed) that a person can trust.

On a terminal: one bar per test set, closed (its clock stopped) the moment its last case is in,
and an overall bar over every case of the run with an ETA. Anywhere else (a log file, CI): one
plain line per finished case, with the same counts and ETA, and no escape sequences.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _clock(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class RunProgress:
    """`start_set(key, done, total)` for each test set first, then `case_done(key, record)` per case."""

    def __init__(self, *, enabled: bool, stream: TextIO | None = None, bars: bool | None = None) -> None:
        self._enabled = enabled
        self._stream = stream or sys.stderr
        self._bars = (self._stream.isatty() and sys.stdout.isatty()) if bars is None else bars
        self._counts: dict[str, list[int]] = {}  # key -> [done, total]
        self._set_bars: dict = {}
        self._overall = None
        self._started = time.monotonic()
        self._done_here = 0  # cases finished by this run (not resumed ones): the ETA's rate

    def start_set(self, key: str, done: int, total: int) -> None:
        self._counts[key] = [done, total]
        if not (self._enabled and self._bars):
            return
        from tqdm import tqdm

        if self._overall is None:
            self._overall = tqdm(total=0, desc=f"{'all':<12}", unit="case", position=0, file=self._stream,
                                 dynamic_ncols=True)
        self._overall.total += total
        self._overall.update(done)
        bar = self._set_bars[key] = tqdm(total=total, initial=done, desc=f"{key:<12}", unit="case",
                                         position=len(self._set_bars) + 1, file=self._stream, dynamic_ncols=True)
        if done >= total:
            bar.close()

    def case_done(self, key: str, record: dict) -> None:
        counts = self._counts.setdefault(key, [0, 0])
        counts[0] += 1
        self._done_here += 1
        if not self._enabled:
            return
        if self._bars:
            self._overall.update(1)
            bar = self._set_bars[key]
            bar.update(1)
            if counts[0] >= counts[1]:
                bar.close()  # the set is done: its elapsed time stops here
            return
        done = sum(c[0] for c in self._counts.values())
        total = sum(c[1] for c in self._counts.values())
        elapsed = time.monotonic() - self._started
        eta = _clock(elapsed / self._done_here * (total - done)) if total > done else "0:00:00"
        status = record["status"] if record["status"] == "ok" else f"failed ({record.get('error_kind')})"
        print(f"{key} {record['case_id']}: {status}  [{key} {counts[0]}/{counts[1]}, all {done}/{total}, "
              f"elapsed {_clock(elapsed)}, ETA {eta}]", file=self._stream, flush=True)

    def close(self) -> None:
        for bar in self._set_bars.values():
            bar.close()
        if self._overall is not None:
            self._overall.close()
