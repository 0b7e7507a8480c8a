"""One progress bar per test set, as `harness run` shows them (local or distributed)."""

from __future__ import annotations


class ProgressBars:
    """Callable as `progress(key, done, total)`; silent when disabled (--no-progress, --quiet)."""

    def __init__(self, *, enabled: bool) -> None:
        self._enabled = enabled
        self._bars: dict = {}

    def __call__(self, key: str, done: int, total: int) -> None:
        if not self._enabled:
            return
        bar = self._bars.get(key)
        if bar is None:
            from tqdm import tqdm

            bar = self._bars[key] = tqdm(total=total, desc=f"{key:<12}", unit="case")
        bar.n = done
        bar.refresh()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
