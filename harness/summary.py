"""Plain-text tables of a results document, for the terminal."""

from __future__ import annotations

from harness.results import METRIC_NAMES


def _cell(value: float | None, *, percent: bool = True) -> str:
    if value is None:
        return "   -  "
    return f"{100 * value:6.2f}" if percent else f"{value:6.3f}"


def results_table(document: dict, *, metric: str = "dice") -> str:
    """Organs down, test sets across, then CT/MR/All means: the paper's layout, in percent."""
    datasets = document["datasets"]
    if not datasets:
        return "(no test set scored)"
    keys = list(datasets)
    organs = list(next(iter(datasets.values()))["organs"])
    width = max(len(o) for o in organs + ["test set mean"]) + 1
    header = " " * width + " ".join(f"{k[:11]:>11}" for k in keys)
    lines = [f"{metric.upper()} (%)", header]
    for organ in organs:
        row = " ".join(f"{_cell(datasets[k]['organs'][organ][metric]):>11}" for k in keys)
        lines.append(f"{organ:<{width}}{row}")
    lines.append(f"{'test set mean':<{width}}" + " ".join(f"{_cell(datasets[k][metric]):>11}" for k in keys))
    failed = " ".join(f"{datasets[k]['n_failed']}/{datasets[k]['n_cases']}".rjust(11) for k in keys)
    lines.append(f"{'failed cases':<{width}}{failed}")
    aggregates = document["aggregates"]
    lines.append("   ".join(f"{group.upper()} mean {_cell(aggregates[group][metric]).strip()}"
                            for group in ("ct", "mr", "all") if aggregates[group]["datasets"]))
    return "\n".join(lines)


def case_table(scores: dict[str, dict]) -> str:
    metrics = [m for m in METRIC_NAMES if any(m in v for v in scores.values())]
    width = max(len(o) for o in scores) + 1
    lines = [" " * width + " ".join(f"{m:>9}" for m in metrics)]
    for organ, values in scores.items():
        cells = []
        for m in metrics:
            v = values.get(m)
            cells.append(f"{'-':>9}" if v is None else f"{v:9.4f}")
        lines.append(f"{organ:<{width}}" + " ".join(cells))
    return "\n".join(lines)
